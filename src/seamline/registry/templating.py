"""Jinja2 for prompt templates: sandboxed, bounded in time and size, undefined variables as
errors.

Templates come from users' repositories and, through the gateway, run on every request of a
shared server. Jinja's sandbox stops a template from reaching Python internals but not from
spending the server: ``{{ '%01000000000d' % 1 }}`` builds a gigabyte string, three nested
``range(100000)`` loops never end, and Jinja's optimiser even runs constant expressions at
*compile* time, that is at push. So, beyond the sandbox:

- nothing runs at compile time (``optimized=False``): pushing a template only parses it;
- every loop and every call spends from a per-render budget of steps and wall time
  (:data:`MAX_RENDER_STEPS`, :data:`MAX_RENDER_SECONDS`), checked as they run;
- every operation that can multiply a string or a list (``*``, ``+``, ``~``, ``%``,
  ``format``, ``center``, ``indent``, ``join``, ``replace``...) is checked *before* it
  allocates, against :data:`MAX_RENDERED_CHARS`; width and count arguments are capped;
- methods of strings, lists and dicts are an allow-list: ``s.ljust(10**9)`` is refused;
- the output is counted as it is produced;
- sources are capped (:data:`MAX_TEMPLATE_CHARS`), and compiled templates are cached by total
  source size, so distinct templates cannot grow a worker's memory without bound.

Templates that loop or define macros are the only ones whose cost is not linear in their
inputs; :func:`is_straight_line` tells a server which renders to move off its event loop.
"""

from __future__ import annotations

import re
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Rendered text longer than this is refused, and so is any intermediate string or list.
MAX_RENDERED_CHARS = 1_000_000
MAX_TEMPLATE_CHARS = 256_000  # one message's template: a long few-shot prompt fits
MAX_EXPONENT = 100
MAX_FIELD_WIDTH = 10_000  # widths and counts given to format, center, indent, batch...
# A render of a legitimate prompt takes well under a millisecond; these leave room for long
# loops over retrieved documents and stop a hostile template within a quarter second.
MAX_RENDER_STEPS = 1_000_000  # loop iterations plus calls
MAX_RENDER_SECONDS = 0.25
_YIELD_EVERY = 256  # steps between offers of the GIL to other threads
MAX_CACHED_SOURCE_CHARS = 32_000_000  # compiled templates kept per process, by source size

# Methods a template may call on its (JSON) variables; everything else is refused. None of
# these can return more than a small multiple of their input.
_SAFE_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        [
            "capitalize",
            "casefold",
            "count",
            "endswith",
            "find",
            "format",
            "format_map",
            "index",
            "isalnum",
            "isalpha",
            "isdigit",
            "islower",
            "isnumeric",
            "isspace",
            "istitle",
            "isupper",
            "join",
            "lower",
            "lstrip",
            "partition",
            "removeprefix",
            "removesuffix",
            "replace",
            "rfind",
            "rindex",
            "rpartition",
            "rsplit",
            "rstrip",
            "split",
            "splitlines",
            "startswith",
            "strip",
            "swapcase",
            "title",
            "upper",
        ]
    ),
    dict: frozenset({"get", "items", "keys", "values"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
}
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_NUMBERS = re.compile(r"\d+|\*")


class TemplateError(ValueError):
    """A template does not compile, or cannot render within its bounds."""


# -- the per-render budget ---------------------------------------------------------------


_current = threading.local()  # the deadline and step count of the render on this thread


def _spend() -> None:
    """Count a step of the render running on this thread; refuse once over budget."""
    budget: list[float] | None = getattr(_current, "budget", None)
    if budget is None:
        return
    budget[1] += 1
    if budget[1] > MAX_RENDER_STEPS:
        raise SecurityError(f"template runs over {MAX_RENDER_STEPS} steps")
    if time.monotonic() > budget[0]:  # ~50 ns: cheap enough for every step
        raise SecurityError(f"template runs over {MAX_RENDER_SECONDS} s")
    if not int(budget[1]) % _YIELD_EVERY:
        # Hand the GIL over now and then: a server renders loops on a worker thread, and
        # Python's 5 ms switch interval alone starves its event loop while one runs.
        time.sleep(0)


def _bounded_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _spend()
        yield item


# -- size checks, made before an operation allocates ------------------------------------


def _weight(value: Any) -> int:
    """Characters of strings plus items of containers, counted through nesting and stopping
    once over the limit: ``[[x, x], [x, x]]`` weighs what it would print, however few
    objects it holds."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += len(item)
            if total <= MAX_RENDERED_CHARS:
                stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= MAX_RENDERED_CHARS:
                stack.extend(item.keys())
                stack.extend(item.values())
        else:
            total += 1
        if total > MAX_RENDERED_CHARS:
            break
    return total


def _check_size(size: int, what: str) -> None:
    if size > MAX_RENDERED_CHARS:
        raise SecurityError(f"{what} would exceed {MAX_RENDERED_CHARS} characters or items")


def _checked(value: Any, what: str) -> Any:
    _check_size(_weight(value), what)
    return value


def _check_percent_format(template: str) -> None:
    for match in _PERCENT_SPEC.finditer(template):
        for number in match.groups():
            if number == "*" or (number is not None and int(number) > MAX_FIELD_WIDTH):
                raise SecurityError(f"format width over {MAX_FIELD_WIDTH}")


def _check_brace_format(template: str) -> None:
    for _, _, spec, _ in string.Formatter().parse(template):
        for number in _FORMAT_NUMBERS.findall(spec or ""):
            if number == "*" or int(number) > MAX_FIELD_WIDTH:
                raise SecurityError(f"format width over {MAX_FIELD_WIDTH}")


def _check_join(items: list[Any] | tuple[Any, ...], separator: Any) -> None:
    _check_size(_weight(items) + _weight(str(separator)) * len(items), "join")


def _check_replace(text: str, old: Any, new: Any) -> None:
    old, new = str(old), str(new)
    occurrences = text.count(old) if old else len(text) + 1
    _check_size(len(text) + occurrences * max(len(new) - len(old), 0), "replace")


def _checked_filter(name: str, apply: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter, with its amplifying arguments checked before it runs and its
    result weighed after."""
    skip = 1 if hasattr(apply, "jinja_pass_arg") else 0  # the environment or context

    def run(*args: Any, **kwargs: Any) -> Any:
        _spend()
        values = list(args[skip:])
        if values and name in ("join", "sum") and not isinstance(values[0], list | tuple):
            values[0] = list(values[0])  # a generator: weighed once, then handed on
        _check_filter_arguments(name, values, kwargs)
        return _checked(apply(*args[:skip], *values, **kwargs), f"filter {name}")

    run.__name__ = name
    if skip:
        run.jinja_pass_arg = apply.jinja_pass_arg  # type: ignore[attr-defined]
    return run


def _check_filter_arguments(name: str, values: list[Any], kwargs: dict[str, Any]) -> None:
    value = values[0] if values else None
    if name in _WIDTH_FILTERS:
        for argument in (*values[1:], *kwargs.values()):
            if isinstance(argument, int) and abs(argument) > MAX_FIELD_WIDTH:
                raise SecurityError(f"filter {name}: {argument} is over {MAX_FIELD_WIDTH}")
    if name == "format" and isinstance(value, str):
        _check_percent_format(value)
    elif name == "join" and isinstance(value, list | tuple):
        _check_join(value, values[1] if len(values) > 1 else kwargs.get("d", ""))
    elif name == "sum" and isinstance(value, list | tuple):
        _check_size(_weight(value), "sum")
    elif name == "replace" and isinstance(value, str) and len(values) >= 3:
        _check_replace(value, values[1], values[2])
    elif name == "indent" and isinstance(value, str):
        width = values[1] if len(values) > 1 else kwargs.get("width", 4)
        extra = len(width) if isinstance(width, str) else int(width or 0)
        _check_size(len(value) + (value.count("\n") + 1) * extra, "indent")


# Filters whose numeric arguments are widths or counts of what they produce.
_WIDTH_FILTERS = frozenset({"batch", "center", "indent", "slice", "truncate", "wordwrap"})


# -- the environment ---------------------------------------------------------------------


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles every ``for`` loop through :func:`_bounded_loop`, and weighs every ``~``
    concatenation and every list, tuple and dict literal as it is built."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Before generation: the generator collects the filters a template uses up front.
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None)
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._weighed(super().visit_Concat, node, frame)

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._weighed(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._weighed(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target: ``{% for a, b in pairs %}``
            super().visit_Tuple(node, frame)
        else:
            self._weighed(super().visit_Tuple, node, frame)

    def _weighed(self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame) -> None:
        self.write("environment.weighed(")
        visit(node, frame)
        self.write(")")


_LOOP_FILTER = "_seamline_bounded_loop"


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with the budget and size checks of this module's docstring."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, keep_trailing_newline=True, optimized=False)
        self.filters = {name: _checked_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP_FILTER] = _bounded_loop
        # lipsum(n) writes n paragraphs; cycler and joiner are of no use in a prompt.
        for name in ("lipsum", "cycler", "joiner"):
            self.globals.pop(name, None)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent over {MAX_EXPONENT}")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int):
                    _check_size(_weight(seq) * count, "repetition")
        if operator == "+" and isinstance(left, str | list | tuple):
            _check_size(_weight(left) + _weight(right), "concatenation")
        if operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return _checked(super().call_binop(context, operator, left, right), operator)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _spend()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str) and name == "join" and args:
            items = list(args[0])  # a generator: weighed once, then handed on
            _check_join(items, owner)
            args = (items, *args[1:])
        if isinstance(owner, str) and name == "replace" and len(args) >= 2:
            _check_replace(owner, args[0], args[1])
        return _checked(super().call(__context, __obj, *args, **kwargs), "a call")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if not callable(value) or isinstance(obj, LoopContext):
            return True
        for kind, allowed in _SAFE_METHODS.items():
            if isinstance(obj, kind):
                return attr in allowed
        return True

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_brace_format(value.__self__)
        return wrapped

    @staticmethod
    def weighed(value: Any) -> Any:
        return _checked(value, "a value")


_ENV = _BoundedSandbox()


# -- compiling, with a cache bounded by source size ---------------------------------------


@dataclass(frozen=True)
class _Compiled:
    template: Template
    variables: frozenset[str]
    straight_line: bool


_cache: OrderedDict[str, _Compiled] = OrderedDict()
_cached_chars = 0
_cache_lock = threading.Lock()


def _compiled(source: str) -> _Compiled:
    global _cached_chars
    with _cache_lock:
        found = _cache.get(source)
        if found is not None:
            _cache.move_to_end(source)
            return found
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"template over {MAX_TEMPLATE_CHARS} characters")
    try:
        tree = _ENV.parse(source)
        compiled = _Compiled(
            _ENV.from_string(tree),
            frozenset(meta.find_undeclared_variables(tree)),
            not any(True for _ in tree.find_all((nodes.For, nodes.Macro, nodes.CallBlock))),
        )
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    with _cache_lock:
        if source not in _cache:
            _cache[source] = compiled
            _cached_chars += len(source)
        while _cached_chars > MAX_CACHED_SOURCE_CHARS and _cache:
            evicted, _ = _cache.popitem(last=False)
            _cached_chars -= len(evicted)
    return compiled


def compile_template(source: str) -> Template:
    return _compiled(source).template


def template_variables(source: str) -> frozenset[str]:
    return _compiled(source).variables


def is_straight_line(source: str) -> bool:
    """No loops, macros or call blocks: rendering costs time linear in the template and its
    variables, so a server may render it in place."""
    return _compiled(source).straight_line


def render_template(source: str, variables: dict[str, Any]) -> str:
    """Render within :data:`MAX_RENDER_STEPS`, :data:`MAX_RENDER_SECONDS` and
    :data:`MAX_RENDERED_CHARS`; raises :class:`TemplateError` saying which bound was hit."""
    template = compile_template(source)
    outer = getattr(_current, "budget", None)  # a render inside a render shares its budget
    if outer is None:
        _current.budget = [time.monotonic() + MAX_RENDER_SECONDS, 0]
    try:
        parts: list[str] = []
        size = 0
        for part in template.generate(**variables):
            size += len(part)
            if size > MAX_RENDERED_CHARS:
                raise TemplateError(f"rendered prompt over {MAX_RENDERED_CHARS} characters")
            parts.append(part)
        return "".join(parts)
    except TemplateError:
        raise
    except (UndefinedError, SecurityError) as exc:
        raise TemplateError(f"template cannot render: {exc}") from None
    except Exception as exc:  # the template's own logic failed: None * 2, 1 / 0, ...
        raise TemplateError(f"template cannot render: {exc.__class__.__name__}: {exc}") from None
    finally:
        if outer is None:
            _current.budget = None
