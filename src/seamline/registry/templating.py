"""Jinja2 for prompt templates, sandboxed, with undefined variables as errors.

Templates come from users' repositories and, through the gateway, run on every request: the
sandbox stops a template from reaching Python internals, and strict undefined turns a missing
variable into an error instead of an empty string in a production prompt.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Rendered text longer than this is refused: a template on a shared gateway must not be able
# to build a gigabyte string ("{{ 'a' * 10**9 }}").
MAX_RENDERED_CHARS = 1_000_000
MAX_EXPONENT = 100


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` checked before they allocate."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent over {MAX_EXPONENT}")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > MAX_RENDERED_CHARS
                ):
                    raise SecurityError("repetition too long")
        return super().call_binop(context, operator, left, right)


_ENV = _BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True)


class TemplateError(ValueError):
    """A template does not compile or cannot render with the given variables."""


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    try:
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=4096)
def template_variables(source: str) -> frozenset[str]:
    try:
        return frozenset(meta.find_undeclared_variables(_ENV.parse(source)))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from None


def render_template(source: str, variables: dict[str, Any]) -> str:
    try:
        text = compile_template(source).render(**variables)
    except (UndefinedError, SecurityError) as exc:
        raise TemplateError(f"template cannot render: {exc}") from None
    except Exception as exc:  # the template's own logic failed: None * 2, 1 / 0, ...
        raise TemplateError(f"template cannot render: {exc.__class__.__name__}: {exc}") from None
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateError(f"rendered prompt over {MAX_RENDERED_CHARS} characters")
    return text
