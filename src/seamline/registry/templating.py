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

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


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
        return compile_template(source).render(**variables)
    except (UndefinedError, SecurityError) as exc:
        raise TemplateError(f"template cannot render: {exc}") from None
