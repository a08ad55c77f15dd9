"""Reading an OpenAI chat request: the checks a gateway must make before spending money.

Deliberately not a pydantic model of the whole OpenAI schema: upstreams accept fields that
move faster than any copy of their schema, so unknown fields pass through untouched, and
only what the gateway itself relies on is checked here, with OpenAI-style errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seamline.core.errors import InvalidInput
from seamline.gateway.stages.params import check_parameters

PROMPT_PREFIX = "prompt:"
DEFAULT_PROMPT_ALIAS = "production"
# Gateway-only fields: read here, never forwarded upstream.
LOCAL_FIELDS = ("seamline", "metadata")


@dataclass
class ChatRequest:
    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool
    prompt_name: str | None = None
    prompt_ref: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    session_id: str | None = None
    use_case: str | None = None
    use_cache: bool = True
    # What the caller marked untrusted (``seamline.untrusted``): indices into its own
    # ``messages`` (a pasted document, a web page in a user turn) and prompt variable names.
    untrusted_messages: frozenset[int] = frozenset()
    untrusted_variables: frozenset[str] = frozenset()


def _expect(body: dict[str, Any], name: str, types: tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    # JSON true is a Python int: refuse it where a number is expected.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise InvalidInput(f"'{name}' must be {what}", param=name, code="invalid_type")
    return value


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput(
            "'model' is required and must be a string",
            param="model",
            code="missing_model" if model is None else "invalid_type",
        )
    messages = body.get("messages")
    is_prompt = model.startswith(PROMPT_PREFIX)
    if messages is None and not is_prompt:
        raise InvalidInput("'messages' is required", param="messages", code="missing_messages")
    if messages is not None:
        if not isinstance(messages, list) or (not messages and not is_prompt):
            raise InvalidInput(
                "'messages' must be a non-empty array", param="messages", code="invalid_type"
            )
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidInput(
                    f"messages[{index}] must be an object with a 'role'",
                    param=f"messages[{index}]",
                    code="invalid_message",
                )
            content = message.get("content")
            if (
                content is not None
                and not isinstance(content, str)
                and not (isinstance(content, list) and all(isinstance(p, dict) for p in content))
            ):
                raise InvalidInput(
                    f"messages[{index}].content must be a string or an array of parts",
                    param=f"messages[{index}].content",
                    code="invalid_message",
                )
    stream = _expect(body, "stream", (bool,), "a boolean") or False
    options = _expect(body, "stream_options", (dict,), "an object") or {}
    tools = _expect(body, "tools", (list,), "an array") or []
    if not all(isinstance(t, dict) for t in tools):
        raise InvalidInput(
            "'tools' must be an array of tool objects", param="tools", code="invalid_type"
        )
    _expect(body, "user", (str,), "a string")
    check_parameters(body)
    metadata = _expect(body, "metadata", (dict,), "an object") or {}
    extension = _expect(body, "seamline", (dict,), "an object") or {}
    variables = extension.get("variables") or {}
    if not isinstance(variables, dict):
        raise InvalidInput("'seamline.variables' must be an object", param="seamline.variables")
    untrusted_messages, untrusted_variables = _untrusted(extension, messages or [])
    request = ChatRequest(
        body=body,
        model=model,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        variables=variables,
        user_id=_text(metadata.get("user_id") or body.get("user")),
        session_id=_text(metadata.get("session_id")),
        use_case=_text(metadata.get("use_case")),
        use_cache=extension.get("cache", True) is not False,
        untrusted_messages=untrusted_messages,
        untrusted_variables=untrusted_variables,
    )
    if is_prompt:
        reference = model[len(PROMPT_PREFIX) :]
        name, _, ref = reference.partition("@")
        if not name:
            raise InvalidInput(
                "use model 'prompt:NAME@ALIAS' or 'prompt:NAME@VERSION'",
                param="model",
                code="invalid_prompt_reference",
            )
        request.prompt_name, request.prompt_ref = name, ref or DEFAULT_PROMPT_ALIAS
    return request


def _untrusted(
    extension: dict[str, Any], messages: list[Any]
) -> tuple[frozenset[int], frozenset[str]]:
    """``seamline.untrusted``: message indices and variable names, checked."""
    marked = extension.get("untrusted") or []
    if not isinstance(marked, list):
        raise InvalidInput(
            "'seamline.untrusted' must be an array of message indices and variable names",
            param="seamline.untrusted",
        )
    indices, names = set(), set()
    for item in marked:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(messages):
            indices.add(item)
        else:
            raise InvalidInput(
                f"'seamline.untrusted' holds {str(item)[:40]!r}: each item must be the index "
                f"of one of the {len(messages)} messages or a variable's name",
                param="seamline.untrusted",
            )
    return frozenset(indices), frozenset(names)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:200]


def upstream_body(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The body to forward: gateway-only fields removed, ``changes`` applied."""
    forwarded = {k: v for k, v in body.items() if k not in LOCAL_FIELDS}
    forwarded.update(changes)
    return forwarded
