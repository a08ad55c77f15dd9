"""Prompt templates are bounded: a hostile template is refused quickly and cheaply, at push
and at render, and ordinary templates render as Jinja always did."""

from __future__ import annotations

import resource

import pytest

from seamline.registry.templating import (
    MAX_TEMPLATE_CHARS,
    TemplateError,
    compile_template,
    is_straight_line,
    render_template,
)

LOOP = "{% for i in range(100000) %}"
END = "{% endfor %}"
HOSTILE = {
    "percent-width": ("{{ '%01000000000d' % 1 }}", "format width"),
    "format-filter-width": ("{{ '%01000000000d'|format(1) }}", "format width"),
    "brace-width": ("{{ '{:1000000000}'.format(1) }}", "format width"),
    "two-nested-loops": (
        "{% for i in range(10000) %}{% for j in range(30000) %}{% endfor %}" + END,
        "runs over",
    ),
    "three-nested-loops": (LOOP * 3 + END * 3, "runs over"),
    "repetition": ("{{ 'a' * 10**9 }}", "repetition would exceed"),
    "list-of-references": ("{{ (['x' * 900000] * 1000000)|join }}", "would exceed"),
    "nested-literals": (
        "{% set a = ['x' * 400000, 'x' * 400000] %}{% set b = [a, a] %}{{ [b, b] }}",
        "would exceed",
    ),
    "doubling-namespace": (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "would exceed",
    ),
    "doubling-recursion": (
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}"
        "{% endmacro %}{{ d('x', 40) }}",
        "would exceed",
    ),
    "exponential-macro": (
        "{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}",
        "cannot render",
    ),
    "unsafe-method": ("{{ 'x'.ljust(1000000000) }}", "unsafe"),
    "center-width": ("{{ 'x'|center(1000000000) }}", "is over"),
    "replace-growth": ("{{ ('a' * 1000000)|replace('a', 'aaaa') }}", "replace would exceed"),
    "indent-growth": ("{{ ('\\n' * 500000)|indent(1000) }}", "indent would exceed"),
    "lipsum": ("{{ lipsum(1000000000) }}", "undefined"),
    "sum-of-lists": ("{{ ([['x'] * 1000] * 1000)|sum(start=[]) }}", "would exceed"),
}


@pytest.mark.parametrize("source, problem", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_template_is_refused_without_spending_the_server(
    source: str, problem: str
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    compile_template(source)  # pushing parses: nothing of the template runs
    with pytest.raises(TemplateError, match=problem):
        render_template(source, {})
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024  # the peak grew by less than 64 MiB


def test_compiling_runs_nothing_of_the_template() -> None:
    # Jinja's optimiser would fold this constant at compile time, that is at push.
    template = compile_template("{{ 'x%s' % 1 }}{{ 'y'|upper }}")
    assert template.render() == "x1Y"


def test_an_oversized_template_is_refused() -> None:
    with pytest.raises(TemplateError, match="template over"):
        compile_template("x" * (MAX_TEMPLATE_CHARS + 1))


def test_ordinary_templates_render_as_before() -> None:
    source = (
        "Hello {{ name|title }}!\n"
        "{% for doc in docs %}[{{ loop.index }}] {{ doc.text|trim }}\n{% endfor %}"
        "ids: {{ docs|map(attribute='id')|join(', ') }}; "
        "{{ '%5.2f'|format(score) }} {{ '{:>6}'.format('ok') }} {{ meta.items()|list|length }} "
        "{{ (['-'] * 3)|join }} {{ 'a,b'.split(',')|join('+') }}"
    )
    docs = [{"id": 1, "text": " first "}, {"id": 2, "text": "second"}]
    text = render_template(source, {"name": "ada", "docs": docs, "score": 3.14159, "meta": {}})
    assert text == ("Hello Ada!\n[1] first\n[2] second\nids: 1, 2;  3.14     ok 0 --- a+b")


def test_only_templates_that_loop_or_define_macros_leave_the_event_loop() -> None:
    assert is_straight_line("{{ question }}{% if context %}{{ context }}{% endif %}")
    assert not is_straight_line("{% for d in docs %}{{ d }}{% endfor %}")
    assert not is_straight_line("{% macro m() %}x{% endmacro %}{{ m() }}")
