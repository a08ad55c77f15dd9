"""The YAML file formats of artefacts, as pydantic models.

A file is one artefact; ``kind`` defaults to ``prompt``. Prompts and model configurations
have full schemas here; guard policies and eval sets have theirs in ``guards.policy`` and
``registry.eval_set``. The other kinds (index snapshots, routing rules) are versioned like
any artefact; their own issues give them their schemas.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seamline.guards.policy import GuardPolicySpec
from seamline.guards.spotlight import Spotlight
from seamline.registry.eval_set import EvalSetSpec
from seamline.registry.templating import compile_template, template_variables

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class ArtefactKind(StrEnum):
    PROMPT = "prompt"
    MODEL = "model"
    EVAL_SET = "eval_set"
    GUARD_POLICY = "guard_policy"
    INDEX = "index"
    ROUTE = "route"


def check_json_schema(schema: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(part) for part in exc.path)
        where = f" at {path}" if path else ""
        raise ValueError(f"{what} is not a valid JSON Schema{where}: {exc.message}") from None
    return schema


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a prompt file must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


VariableType = Literal["string", "integer", "number", "boolean", "list", "object"]


class VariableSpec(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    type: VariableType = "string"
    required: bool = True
    default: Any = None
    description: str = ""
    # Text from outside the conversation (retrieved chunks, web pages, emails, tool output):
    # guard policies scan it as untrusted content, where indirect injection hides.
    untrusted: bool = False


class MessageTemplate(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str

    @field_validator("content")
    @classmethod
    def _compiles(cls, content: str) -> str:
        compile_template(content)
        return content


class InlineModel(Strict):
    provider: str
    name: str


class Parameters(Strict):
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(gt=0)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        kind = value.get("type")
        if kind not in ("text", "json_object", "json_schema"):
            raise ValueError("response_format.type must be text, json_object or json_schema")
        if kind == "json_schema":
            schema = (value.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                raise ValueError("response_format.json_schema.schema must be an object")
            check_json_schema(schema, "response_format.json_schema.schema")
        return value


class ToolFunction(Strict):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        return check_json_schema(schema, "tool parameters")


class Tool(Strict):
    """An OpenAI function tool definition."""

    type: Literal["function"] = "function"
    function: ToolFunction


class RetrievalFilters(Strict):
    """Which chunks a call may retrieve: ``source``, a glob over their source's URI that may
    use the prompt's variables (``*/policies/{{ region }}/*``: a call sees its region's
    documents only); ``max_age_days``, documents changed within that many days of the
    call."""

    source: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    max_age_days: Annotated[float, Field(gt=0, le=36_500)] | None = None


class RetrievalSpec(Strict):
    """Retrieval on the gateway path: the index version to search, how many chunks, the
    query (a template over the prompt's variables), and the variable the chunks fill
    (each on its own paragraph, ``[chunk id] text``, marked untrusted for the guards)."""

    index: Annotated[str, Field(min_length=1, max_length=200)]  # NAME or NAME@ALIAS|VERSION
    k: Annotated[int, Field(ge=1, le=50)] = 5
    query: Annotated[str, Field(min_length=1, max_length=2000)] = "{{ question }}"
    variable: Name = "context"
    hybrid: bool = False
    filters: RetrievalFilters | None = None


class GateSpec(Strict):
    """Release thresholds on eval metrics: ``min`` for higher-is-better, ``max`` for lower."""

    min: dict[str, float] = Field(default_factory=dict)
    max: dict[str, float] = Field(default_factory=dict)


class PromptSpec(Strict):
    kind: Literal["prompt"] = "prompt"
    name: Name
    description: str = ""
    owner: str | None = None
    messages: Annotated[list[MessageTemplate], Field(min_length=1)]
    variables: list[VariableSpec] = Field(default_factory=list)
    model: Annotated[str, Field(max_length=200)] | InlineModel | None = None
    parameters: Parameters = Field(default_factory=Parameters)
    tools: list[Tool] = Field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    eval_set: Annotated[str, Field(max_length=200)] | None = None
    # The guard policy its calls run under (its production version, else its latest);
    # none named: the project's ``default`` policy, else the one seamline ships.
    guard_policy: Name | None = None
    # How untrusted variables are marked in the rendered prompt (``guards.spotlight``).
    spotlight: Spotlight = "off"
    gate: GateSpec | None = None
    retrieval: RetrievalSpec | None = None
    max_prompt_tokens: Annotated[int, Field(gt=0)] | None = None
    tags: list[str] = Field(default_factory=list)
    changelog: str = ""

    @field_validator("output_schema")
    @classmethod
    def _valid_output_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if schema is None else check_json_schema(schema, "output_schema")

    @model_validator(mode="after")
    def _variables_match_templates(self) -> PromptSpec:
        declared = [variable.name for variable in self.variables]
        duplicates = sorted({name for name in declared if declared.count(name) > 1})
        if duplicates:
            raise ValueError(f"variables declared twice: {', '.join(duplicates)}")
        used: set[str] = set()
        for message in self.messages:
            used |= template_variables(message.content)
        undeclared = sorted(used - set(declared))
        if undeclared:
            raise ValueError(
                f"templates use undeclared variables: {', '.join(undeclared)} "
                "(declare them under 'variables')"
            )
        if self.retrieval is not None:
            filters = self.retrieval.filters
            needed = {self.retrieval.variable} | template_variables(self.retrieval.query)
            if filters is not None and filters.source is not None:
                needed |= template_variables(filters.source)
            missing = sorted(needed - set(declared))
            if missing:
                raise ValueError(
                    f"retrieval uses undeclared variables: {', '.join(missing)} "
                    "(declare them under 'variables')"
                )
        tool_names = [tool.function.name for tool in self.tools]
        if len(tool_names) != len(set(tool_names)):
            raise ValueError("tool names must be unique")
        return self


class Prices(Strict):
    """USD per million tokens."""

    input: Annotated[float, Field(ge=0)] = 0.0
    output: Annotated[float, Field(ge=0)] = 0.0
    cached_input: Annotated[float, Field(ge=0)] | None = None


class ModelSpec(Strict):
    """A model configuration. Secrets never enter the registry: name the variable that holds
    the key (``api_key_env``); a literal ``api_key`` field is refused."""

    kind: Literal["model"]
    name: Name
    description: str = ""
    provider: str
    upstream_model: str
    base_url: str | None = None
    api_key_env: str | None = None
    adapter: str | None = None
    tokenizer: str | None = None
    parameters: Parameters = Field(default_factory=Parameters)
    prices: Prices = Field(default_factory=Prices)
    context_window: Annotated[int, Field(gt=0)] | None = None
    tier: str | None = None


class GenericSpec(BaseModel):
    """Index snapshots and routing rules: versioned as given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["index", "route"]
    name: Name
    description: str = ""


ArtefactSpec = PromptSpec | ModelSpec | GuardPolicySpec | EvalSetSpec | GenericSpec

SPEC_TYPES: dict[ArtefactKind, type[ArtefactSpec]] = {
    ArtefactKind.PROMPT: PromptSpec,
    ArtefactKind.MODEL: ModelSpec,
    ArtefactKind.GUARD_POLICY: GuardPolicySpec,
    ArtefactKind.EVAL_SET: EvalSetSpec,
    **{kind: GenericSpec for kind in (ArtefactKind.INDEX, ArtefactKind.ROUTE)},
}


def spec_type(kind: str) -> type[ArtefactSpec]:
    try:
        return SPEC_TYPES[ArtefactKind(kind)]
    except ValueError:
        known = ", ".join(k.value for k in ArtefactKind)
        raise ValueError(f"unknown kind {kind!r} (known: {known})") from None


def canonical_content(spec: ArtefactSpec) -> dict[str, Any]:
    """What is stored and hashed. Defaults are left out so that a field added to a schema
    later, with a default, does not change the hash of content pushed before it."""
    content: dict[str, Any] = {"kind": spec.kind}
    content.update(spec.model_dump(mode="json", exclude_defaults=True))
    return content


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, so prompts read (and diff) as they were written."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def content_as_yaml(content: dict[str, Any]) -> str:
    return yaml.dump(
        content, Dumper=_BlockStyleDumper, sort_keys=False, allow_unicode=True, width=100
    )


REFERENCE = re.compile(r"(?P<name>[a-z0-9][a-z0-9._-]{0,127})(?:@(?P<ref>[A-Za-z0-9_-]{1,64}))?")
