"""Reading a chat request for ``local-smollm2`` (on the event loop, before the model): the
grammars llguidance can and cannot enforce, and the logprobs options."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pytest

from seamline.core.errors import InvalidInput
from seamline.providers.local_chat import chat_call

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llguidance") is None and not os.environ.get("CI"),
    reason="grammars need 'pip install -e .[local]'",
)
ASK = [{"role": "user", "content": "hi"}]


def _tool(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}},
        {"type": "string", "pattern": "(?=a)b"},  # look-ahead
        {"$ref": "https://example.com/remote.json"},
    ],
)
def test_a_schema_llguidance_cannot_enforce_is_refused_naming_where_it_is(schema: Any) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    with pytest.raises(InvalidInput) as refused:
        chat_call({"messages": ASK, "response_format": response_format})
    assert (refused.value.code, refused.value.param) == (
        "unsupported_schema",
        "response_format.json_schema.schema",
    )
    with pytest.raises(InvalidInput) as refused:
        chat_call({"messages": ASK, "tools": [_tool(schema)], "tool_choice": "required"})
    assert (refused.value.code, refused.value.param) == (
        "unsupported_schema",
        "tools[0].function.parameters",
    )


def test_json_object_and_json_schema_get_grammars_and_text_gets_none() -> None:
    def grammar(response_format: Any) -> str | None:
        return chat_call({"messages": ASK, "response_format": response_format}).grammar

    assert grammar({"type": "text"}) is None and grammar(None) is None
    any_object = grammar({"type": "json_object"})
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    by_schema = grammar({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert any_object and by_schema and any_object != by_schema


def test_top_logprobs_needs_logprobs_as_openai_says() -> None:
    with pytest.raises(InvalidInput) as refused:
        chat_call({"messages": ASK, "top_logprobs": 2})
    assert refused.value.param == "top_logprobs"
    assert chat_call({"messages": ASK, "top_logprobs": 0}).top_logprobs is None
    assert chat_call({"messages": ASK, "logprobs": False}).top_logprobs is None
    assert chat_call({"messages": ASK, "logprobs": True}).top_logprobs == 0
    assert chat_call({"messages": ASK, "logprobs": True, "top_logprobs": 3}).top_logprobs == 3
