"""A prompt version as applications use it: render variables into messages and parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seamline.core.errors import InvalidInput
from seamline.guards.spotlight import spotlighted, with_instructions
from seamline.registry.specs import InlineModel, PromptSpec, VariableSpec
from seamline.registry.templating import TemplateError, is_straight_line, render_template

if TYPE_CHECKING:  # records imports this module
    from seamline.registry.records import VersionRecord

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list, tuple),
    "object": (dict,),
}


@dataclass(frozen=True)
class RenderedPrompt:
    """What goes to a model: messages, sampling parameters, tools and the output contract."""

    messages: list[dict[str, str]]
    parameters: dict[str, Any]
    model: str | None
    provider: str | None
    tools: list[dict[str, Any]] = field(default_factory=list)
    output_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Prompt:
    """One immutable prompt version, with where it came from (``alias`` when resolved by one)."""

    name: str
    version: int
    content_hash: str
    spec: PromptSpec
    alias: str | None = None

    @classmethod
    def from_content(
        cls, content: dict[str, Any], *, version: int, content_hash: str, alias: str | None = None
    ) -> Prompt:
        spec = PromptSpec.model_validate(content)
        return cls(spec.name, version, content_hash, spec, alias)

    @classmethod
    def from_record(cls, record: VersionRecord) -> Prompt:
        """The prompt version a registry record holds."""
        return cls.from_content(
            record.content, version=record.number, content_hash=record.content_hash
        )

    @property
    def is_straight_line(self) -> bool:
        """No template of it loops or defines macros: rendering takes time linear in its
        variables, so a server may render it in place rather than on a worker thread."""
        return all(is_straight_line(m.content) for m in self.spec.messages)

    @property
    def model_name(self) -> str | None:
        """The model this version names, if any."""
        model = self.spec.model
        return model.name if isinstance(model, InlineModel) else model

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias or self.version}"

    def render(self, **variables: Any) -> RenderedPrompt:
        """Validate ``variables`` against the declared ones (missing, unknown, wrong type) and
        render every message. Raises :class:`InvalidInput` naming the offending variable."""
        values = bind_variables(self.spec.variables, variables, prompt=self.ref)
        mode = self.spec.spotlight
        marked = [
            v.name
            for v in self.spec.variables
            if v.untrusted and isinstance(values.get(v.name), str)
        ]
        if mode != "off":
            values.update({name: spotlighted(values[name], mode) for name in marked})
        try:
            messages = [
                {"role": m.role, "content": render_template(m.content, values)}
                for m in self.spec.messages
            ]
        except TemplateError as exc:
            raise InvalidInput(f"prompt {self.ref}: {exc}", code="template_error") from None
        if mode != "off" and marked:
            messages = with_instructions(messages, mode)
        model = self.spec.model
        return RenderedPrompt(
            messages=messages,
            parameters=self.spec.parameters.model_dump(exclude_none=True),
            model=model.name if isinstance(model, InlineModel) else model,
            provider=model.provider if isinstance(model, InlineModel) else None,
            tools=[tool.model_dump(exclude_none=True) for tool in self.spec.tools],
            output_schema=self.spec.output_schema,
        )


def bind_variables(
    declared: list[VariableSpec], given: dict[str, Any], *, prompt: str
) -> dict[str, Any]:
    by_name = {variable.name: variable for variable in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise InvalidInput(
            f"prompt {prompt}: unknown variables: {', '.join(unknown)}", code="unknown_variable"
        )
    values: dict[str, Any] = {}
    for variable in declared:
        if variable.name in given:
            value = given[variable.name]
            if not _has_type(value, variable.type):
                raise InvalidInput(
                    f"prompt {prompt}: variable {variable.name!r} must be {variable.type}, "
                    f"got {type(value).__name__}",
                    code="invalid_variable",
                )
            values[variable.name] = value
        elif variable.default is not None or not variable.required:
            values[variable.name] = variable.default
        else:
            raise InvalidInput(
                f"prompt {prompt}: missing required variable {variable.name!r}",
                code="missing_variable",
            )
    return values


def _has_type(value: Any, type_name: str) -> bool:
    # bool is an int in Python; a JSON true must not pass as an integer or number.
    if isinstance(value, bool) and type_name != "boolean":
        return False
    return isinstance(value, _PYTHON_TYPES[type_name])
