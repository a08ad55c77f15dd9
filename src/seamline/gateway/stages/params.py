"""OpenAI's own checks on chat parameters, made at the door with OpenAI's error codes.

What OpenAI would refuse must not reach an upstream that might not: a negative or
2^63-1 ``max_tokens`` would reserve an absurd budget or run a local model for minutes,
``n=1000`` bills a thousand answers, an unknown role or a tool whose ``parameters`` is not a
JSON Schema makes some OpenAI-compatible servers answer 500. Ranges and codes follow OpenAI's
API reference and the errors it returns (``integer_below_min_value``, ...); fields the
gateway does not know pass through untouched.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import orjson

from seamline.core.errors import InvalidInput
from seamline.registry.specs import check_json_schema

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_INT32 = 2**31 - 1  # OpenAI refuses integers it cannot hold in 32 bits
MAX_CHOICES = 128  # OpenAI: "n" at most 128
MAX_STOP_SEQUENCES = 4
MAX_TOP_LOGPROBS = 20
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # OpenAI's pattern for function names
MAX_CHECKED_SCHEMAS = 1024  # tool schemas repeat call after call: check each once

# Inclusive ranges, from OpenAI's API reference.
_INTEGERS: dict[str, tuple[int, int]] = {
    "max_tokens": (1, MAX_INT32),
    "max_completion_tokens": (1, MAX_INT32),
    "n": (1, MAX_CHOICES),
    "top_logprobs": (0, MAX_TOP_LOGPROBS),
    "seed": (-(2**63), 2**63 - 1),
}
_NUMBERS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_checked_schemas: OrderedDict[bytes, None] = OrderedDict()


def check_parameters(body: dict[str, Any]) -> None:
    """Raise :class:`InvalidInput` naming the first parameter OpenAI would refuse."""
    for name, (low, high) in _INTEGERS.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput(f"'{name}' must be an integer", param=name, code="invalid_type")
        _in_range(name, value, low, high, "integer")
    for name, (lo, hi) in _NUMBERS.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidInput(f"'{name}' must be a number", param=name, code="invalid_type")
        _in_range(name, value, lo, hi, "decimal")
    if body.get("logprobs") is not None and not isinstance(body["logprobs"], bool):
        raise InvalidInput("'logprobs' must be a boolean", param="logprobs", code="invalid_type")
    _check_stop(body.get("stop"))
    for index, message in enumerate(body.get("messages") or []):
        role = message.get("role")
        if role not in ROLES:
            raise InvalidInput(
                f"Invalid value: {str(role)[:40]!r}. Supported values are: "
                + ", ".join(f"'{r}'" for r in sorted(ROLES)),
                param=f"messages[{index}].role",
                code="invalid_value",
            )
    for index, tool in enumerate(body.get("tools") or []):
        _check_tool(index, tool)
    response_format = body.get("response_format")
    if response_format is not None:
        _check_response_format(response_format)


def _in_range(name: str, value: float, low: float, high: float, kind: str) -> None:
    if value < low:
        raise InvalidInput(
            f"Invalid '{name}': {kind} below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            param=name,
            code=f"{kind}_below_min_value",
        )
    if value > high:
        raise InvalidInput(
            f"Invalid '{name}': {kind} above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            param=name,
            code=f"{kind}_above_max_value",
        )


def _check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidInput(
            "'stop' must be a string or an array of strings", param="stop", code="invalid_type"
        )
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidInput(
            f"'stop' holds at most {MAX_STOP_SEQUENCES} sequences",
            param="stop",
            code="array_above_max_length",
        )


def _check_tool(index: int, tool: dict[str, Any]) -> None:
    where = f"tools[{index}]"
    kind = tool.get("type", "function")
    if kind != "function":
        raise InvalidInput(
            f"Invalid value: {str(kind)[:40]!r}. Supported values are: 'function'.",
            param=f"{where}.type",
            code="invalid_value",
        )
    function = tool.get("function")
    if not isinstance(function, dict):
        raise InvalidInput(
            f"'{where}.function' is required", param=f"{where}.function", code="missing_required"
        )
    name = function.get("name")
    if not isinstance(name, str) or TOOL_NAME.fullmatch(name) is None:
        raise InvalidInput(
            f"Invalid '{where}.function.name': use a-z, A-Z, 0-9, _ and -, at most 64 characters",
            param=f"{where}.function.name",
            code="invalid_value",
        )
    if "parameters" in function:
        _check_json_schema(function["parameters"], f"{where}.function.parameters")


def _check_response_format(value: Any) -> None:
    kinds = ("text", "json_object", "json_schema")
    if not isinstance(value, dict) or value.get("type") not in kinds:
        raise InvalidInput(
            "'response_format.type' must be one of 'text', 'json_object', 'json_schema'",
            param="response_format.type",
            code="invalid_value",
        )
    if value["type"] == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidInput(
                "'response_format.json_schema' needs a 'name' and a 'schema'",
                param="response_format.json_schema",
                code="missing_required",
            )
        if "schema" in spec:
            _check_json_schema(spec["schema"], "response_format.json_schema.schema")


def _check_json_schema(schema: Any, param: str) -> None:
    """The registry's check (2020-12 meta-schema), made once per distinct schema."""
    if not isinstance(schema, dict):
        raise InvalidInput(f"'{param}' must be a JSON Schema object", param=param)
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    if key in _checked_schemas:
        _checked_schemas.move_to_end(key)
        return
    try:
        check_json_schema(schema, f"'{param}'")
    except ValueError as exc:
        raise InvalidInput(str(exc), param=param, code="invalid_schema") from None
    _checked_schemas[key] = None
    if len(_checked_schemas) > MAX_CHECKED_SCHEMAS:
        _checked_schemas.popitem(last=False)
