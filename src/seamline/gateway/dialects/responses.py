"""OpenAI's Responses API (``POST /v1/responses``) onto any upstream.

The OpenAI SDK's newer examples call ``client.responses.create``, ``.stream`` and ``.parse``:
``input`` items and ``instructions`` in, flat function tools, ``text.format`` for structured
output; typed ``output`` items back, streamed as typed events numbered by
``sequence_number``. This dialect carries all of that through the chat request path, so such
a client reaches any model the gateway serves, seamline prompts (``model:
"prompt:NAME@ALIAS"``) included.

What needs OpenAI's own state or tools is refused with a 400 naming the parameter, never
dropped: stored responses and conversations (``previous_response_id``, ``conversation``,
``item_reference`` items), hosted prompts, built-in tools (web search, file search, code
interpreter, computer use, MCP, ...), background mode, ``include``, reasoning summaries, log
probabilities and ``truncation: "auto"``. ``reasoning.effort`` becomes chat's
``reasoning_effort``. ``store`` (seamline keeps no responses to fetch later: the answer says
``store: false``), ``stream_options`` (obfuscation padding) and ``max_tool_calls`` (it counts
built-in tool calls only, and those are refused) do not change the answer and are not
forwarded.

The seam hands ``answer`` and ``writer`` the chat completion only, not the request, so the
response's echo of request settings (``tools``, ``tool_choice``, ``text``, ``temperature``,
...) holds neutral values; the SDK parses ``output`` with the arguments of its own call.
"""

from __future__ import annotations

from typing import Any

import orjson

from seamline.core.errors import InvalidInput, SeamlineError
from seamline.gateway.dialects.responses_output import ResponseStream, chat_to_response
from seamline.gateway.server.http import Scope, bearer_token
from seamline.gateway.stages.request import PROMPT_PREFIX

# Responses parameters with the same meaning in chat, under chat's name.
CARRIED = {
    "model": "model",
    "stream": "stream",
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_completion_tokens",
    "parallel_tool_calls": "parallel_tool_calls",
    "metadata": "metadata",  # read by the gateway (user_id, session_id, use_case)
    "user": "user",
    "safety_identifier": "safety_identifier",
    "prompt_cache_key": "prompt_cache_key",
    "prompt_cache_retention": "prompt_cache_retention",
    "service_tier": "service_tier",
    "seamline": "seamline",  # the gateway's own extension, as in chat
}
TRANSLATED = frozenset({"input", "instructions", "tools", "tool_choice", "text", "reasoning"})
# Bookkeeping of OpenAI's service that leaves the answer as it is (see the module docstring).
IGNORED = frozenset({"store", "stream_options", "max_tool_calls"})
# Values that mean "off" beside null, false, 0 and empty: a parameter sent with one of them
# asks for nothing, so it need not be refused.
OFF: dict[str, Any] = {"truncation": "disabled"}
NO_STORE = "seamline does not store responses yet"
REASONS = {
    "previous_response_id": f"{NO_STORE}: send the whole conversation in 'input' (the "
    "earlier output items included) instead of 'previous_response_id'",
    "conversation": f"{NO_STORE} or conversations: send the whole conversation in 'input'",
    "prompt": "OpenAI-hosted prompts are not available here; for a seamline prompt use "
    "model 'prompt:NAME@ALIAS' and extra_body={'seamline': {'variables': {...}}}",
    "background": f"background responses are polled from storage and {NO_STORE}",
    "include": "extra output data (logprobs, encrypted reasoning, tool results) cannot be carried",
    "top_logprobs": "log probabilities cannot be carried",
    "truncation": "only 'disabled' is supported: seamline does not truncate conversations",
}
ROLES = frozenset({"user", "system", "developer", "assistant"})
FUNCTION_TOOL_KEYS = frozenset({"type", "name", "description", "parameters", "strict"})


class ResponsesDialect:
    """One per call (``responses``): a Response echoes the settings it was asked with, so the
    dialect keeps them from :meth:`to_chat` for the answer or the stream."""

    route = "/v1/responses"

    def __init__(self) -> None:
        self.echo: dict[str, Any] = {}

    def credentials(self, scope: Scope) -> str | None:
        return bearer_token(scope)

    def to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = responses_to_chat(body)
        self.echo = echoed_settings(body)
        return chat

    def answer(self, completion: dict[str, Any], raw: bytes | None) -> bytes:
        return orjson.dumps(chat_to_response(completion, self.echo))

    def writer(self, model: str, include_usage: bool) -> ResponseStream:
        # Usage always arrives with response.completed: stream_options has no say.
        return ResponseStream(model, self.echo)

    def error_body(self, error: SeamlineError) -> dict[str, Any]:
        return error.to_dict()


# What a Response echoes of its request, as OpenAI's does (OpenAI also fills in its defaults;
# a setting not sent is echoed as not set).
ECHOED = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "reasoning",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
)


def echoed_settings(body: dict[str, Any]) -> dict[str, Any]:
    """The request's settings a Response repeats (``instructions`` when a string: OpenAI
    echoes input items given there as they came too)."""
    return {name: body[name] for name in ECHOED if body.get(name) is not None}


def _refuse(param: str, message: str, code: str = "unsupported_parameter") -> InvalidInput:
    return InvalidInput(f"{param}: {message}", param=param, code=code)


def _is_set(name: str, value: Any) -> bool:
    return value not in (None, False, "", [], {}) and value != OFF.get(name)


def responses_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request as an OpenAI chat body; raises InvalidInput naming what it cannot
    carry."""
    for name, value in body.items():
        known = name in CARRIED or name in TRANSLATED or name in IGNORED
        if not known and _is_set(name, value):
            raise _refuse(name, REASONS.get(name, "not supported on /v1/responses"))
    chat = {CARRIED[k]: v for k, v in body.items() if k in CARRIED and v is not None}
    max_output = body.get("max_output_tokens")
    if max_output is not None and (
        not isinstance(max_output, int) or isinstance(max_output, bool) or max_output < 1
    ):
        raise _refuse("max_output_tokens", "must be a positive integer", "invalid_value")
    model = body.get("model")
    messages = _instructions(body.get("instructions")) + _input(body.get("input"))
    is_prompt = isinstance(model, str) and model.startswith(PROMPT_PREFIX)
    if messages:
        chat["messages"] = messages
    elif not is_prompt:  # a seamline prompt brings its own messages
        raise InvalidInput("'input' is required", param="input", code="missing_required_parameter")
    if body.get("tools") is not None:
        tools = body["tools"]
        if not isinstance(tools, list):
            raise _refuse("tools", "must be an array", "invalid_type")
        chat["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("text") is not None:
        chat.update(_text_config(body["text"]))
    if body.get("reasoning") is not None:
        chat.update(_reasoning(body["reasoning"]))
    return chat


def _instructions(instructions: Any) -> list[dict[str, Any]]:
    if instructions is None or instructions == "":
        return []
    if not isinstance(instructions, str):
        raise _refuse("instructions", "must be a string", "invalid_type")
    return [{"role": "system", "content": instructions}]


def _input(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise _refuse("input", "must be a string or an array of input items", "invalid_type")
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _refuse(where, "must be an object", "invalid_type")
        kind = item.get("type") or "message"
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = {
                "id": _string(item, "call_id", where),
                "type": "function",
                "function": {
                    "name": _string(item, "name", where),
                    "arguments": _string(item, "arguments", where),
                },
            }
            # Parallel calls, or text and then calls, are one assistant turn in chat.
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": _string(item, "call_id", where),
                    "content": _tool_output(item.get("output"), f"{where}.output"),
                }
            )
        elif kind == "item_reference":
            raise _refuse(f"{where}.type", f"{NO_STORE}: send the item itself", "unsupported_value")
        else:
            raise _refuse(
                f"{where}.type",
                f"{kind!r} items cannot be carried; send messages, function_call and "
                "function_call_output items",
                "unsupported_value",
            )
    return messages


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise _refuse(f"{where}.{key}", "must be a string", "invalid_type")
    return value


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role, content = item.get("role"), item.get("content")
    if role not in ROLES:
        raise _refuse(
            f"{where}.role",
            f"must be one of {', '.join(sorted(ROLES))}; got {str(role)[:40]!r}",
            "invalid_value",
        )
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _refuse(f"{where}.content", "must be a string or an array of parts", "invalid_type")
    if role == "assistant":
        return _assistant(content, f"{where}.content")
    parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts):
        return {"role": role, "content": "".join(part["text"] for part in parts)}
    return {"role": role, "content": parts}


def _assistant(content: list[Any], where: str) -> dict[str, Any]:
    """An earlier answer sent back (its output items): text and refusals."""
    texts: list[str] = []
    refusals: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("output_text", "input_text"):
            texts.append(str(part.get("text", "")))
        elif kind == "refusal":
            refusals.append(str(part.get("refusal", "")))
        else:
            raise _refuse(
                f"{where}[{j}].type",
                f"{kind!r} parts cannot be carried in an assistant message",
                "unsupported_value",
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if refusals:
        message["refusal"] = "".join(refusals)
    return message


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "input_text":
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "input_image":
        if not isinstance(part.get("image_url"), str):
            raise _refuse(
                f"{where}.file_id" if part.get("file_id") else f"{where}.image_url",
                "send 'image_url' (a URL or a data: URL); images by file id need OpenAI's "
                "file store",
            )
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if not isinstance(part.get("file_data"), str):
            raise _refuse(
                f"{where}.file_id",
                "files by id or URL need OpenAI's file store; send 'file_data'",
            )
        file = {"file_data": part["file_data"]}
        if part.get("filename"):
            file["filename"] = str(part["filename"])
        return {"type": "file", "file": file}
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part.get("input_audio")}
    raise _refuse(f"{where}.type", f"{kind!r} parts cannot be carried", "unsupported_value")


def _tool_output(output: Any, where: str) -> str:
    """A function's result as a chat tool message's text (chat tool messages hold text)."""
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise _refuse(where, "must be a string or an array of parts", "invalid_type")
    texts = []
    for j, part in enumerate(output):
        if not isinstance(part, dict) or part.get("type") != "input_text":
            kind = part.get("type") if isinstance(part, dict) else None
            raise _refuse(
                f"{where}[{j}].type",
                f"{kind!r} parts cannot be carried in a function's output; send text",
                "unsupported_value",
            )
        texts.append(str(part.get("text", "")))
    return "".join(texts)


def _tool(tool: Any, where: str) -> dict[str, Any]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise _refuse(
            f"{where}.type",
            f"built-in tool {kind!r} is not available through seamline; declare function "
            "tools and run them yourself",
            "unsupported_value",
        )
    for key, value in tool.items():
        if key not in FUNCTION_TOOL_KEYS and _is_set(key, value):
            raise _refuse(f"{where}.{key}", "cannot be carried to chat tools")
    function: dict[str, Any] = {"name": _string(tool, "name", where)}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if not isinstance(choice, dict):
        raise _refuse("tool_choice", "must be auto, none, required or an object", "invalid_value")
    kind = choice.get("type")
    if kind == "function":
        return {"type": "function", "function": {"name": _string(choice, "name", "tool_choice")}}
    if kind == "allowed_tools":
        tools = choice.get("tools")
        if not isinstance(tools, list):
            raise _refuse("tool_choice.tools", "must be an array", "invalid_type")
        names = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise _refuse(f"tool_choice.tools[{i}]", "only function tools can be allowed")
            names.append(_string(tool, "name", f"tool_choice.tools[{i}]"))
        allowed = [{"type": "function", "function": {"name": name}} for name in names]
        return {
            "type": "allowed_tools",
            "allowed_tools": {"mode": choice.get("mode", "auto"), "tools": allowed},
        }
    raise _refuse(
        "tool_choice",
        f"{kind!r} cannot be carried; use auto, none, required, a function or allowed_tools",
        "unsupported_value",
    )


def _text_config(text: Any) -> dict[str, Any]:
    if not isinstance(text, dict):
        raise _refuse("text", "must be an object", "invalid_type")
    for key, value in text.items():
        if key not in ("format", "verbosity") and _is_set(key, value):
            raise _refuse(f"text.{key}", "not supported on /v1/responses")
    chat: dict[str, Any] = {}
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format") or {"type": "text"}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return chat
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "description", "strict") if k in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    else:
        raise _refuse(
            "text.format.type",
            f"{kind!r} is not a format; use text, json_object or json_schema",
            "invalid_value",
        )
    return chat


def _reasoning(reasoning: Any) -> dict[str, Any]:
    if not isinstance(reasoning, dict):
        raise _refuse("reasoning", "must be an object", "invalid_type")
    for key, value in reasoning.items():
        if key == "effort" or not _is_set(key, value):
            continue
        if key in ("summary", "generate_summary"):
            raise _refuse(
                f"reasoning.{key}", "reasoning summaries cannot be carried: chat returns none"
            )
        raise _refuse(f"reasoning.{key}", "not supported on /v1/responses")
    effort = reasoning.get("effort")
    return {} if effort is None else {"reasoning_effort": effort}
