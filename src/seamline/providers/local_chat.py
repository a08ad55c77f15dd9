"""``local-smollm2``: what the embedded chat model makes of an OpenAI chat request.

Every OpenAI parameter is honoured or refused with a 400 that names it; none is dropped
without a word. :func:`chat_call` reads a request into a :class:`ChatCall` on the event
loop, so a refusal costs no place in the model's queue; :class:`SmolLM` runs it on the
model's worker thread and answers in OpenAI's format, streamed or whole.

* Honoured: ``max_tokens`` and ``max_completion_tokens`` (the smaller of the two when both
  come), ``temperature``, ``top_p``, ``stop``, ``seed``, ``presence_penalty``,
  ``frequency_penalty``, ``n`` (one answer after another: the prompt is evaluated once and
  kept in llama.cpp's cache, so each further answer costs only its own tokens),
  ``response_format`` (``json_object`` and ``json_schema`` through a llama.cpp grammar, so
  the output follows the schema token by token), content as an array of text parts,
  ``developer`` messages (the system prompt, as OpenAI's newer clients send it), and
  ``tools`` with a ``tool_choice`` that names the function (or ``required`` with one tool):
  its arguments are generated under a grammar built from the function's ``parameters``.
* With ``tool_choice`` ``auto`` (the default) the model is shown the tools in its system
  prompt and answers in text: SmolLM2-135M was not trained to decide when to call one.
* Refused: ``logprobs`` (llama.cpp keeps per-token logits only when the model is loaded with
  ``logits_all``, which costs memory and speed on every call), ``logit_bias`` (its keys are
  ids of OpenAI's tokenizer, not of SmolLM2's vocabulary), image, audio and file content,
  audio output, web search, reasoning effort, verbosity, moderation, ``required`` with
  several tools, and a prompt longer than the context (``context_length_exceeded``).
* Ignored, because they never change the answer: ``user``, ``metadata``, ``store``,
  ``service_tier``, ``stream_options`` (the gateway reads it), ``parallel_tool_calls`` (at
  most one call is made), ``prediction`` (a latency hint), the prompt-cache hints and
  ``safety_identifier``. Fields OpenAI does not define are ignored, as OpenAI-compatible
  servers ignore them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seamline.core.errors import InvalidInput

LLAMA_CONTEXT = 8192
LLAMA_THREADS = 2  # FACTS.md: 80 tok/s on 1 thread, 110-120 on 2 on this machine
# llama-cpp-python's own default for chat, kept when a request names none (OpenAI's is 1.0):
# SmolLM2-135M loops at 0 and wanders at 1; at 0.2 it answers simple questions (FACTS.md).
DEFAULT_TEMPERATURE = 0.2
TEXT_PARTS = ("text", "refusal")  # content parts that are text (refusal: an assistant's)
# OpenAI parameters that would change the answer and that this runtime cannot honour.
REFUSED = {
    "logprobs": "needs per-token logits, which the embedded model does not keep",
    "top_logprobs": "needs per-token logits, which the embedded model does not keep",
    "logit_bias": "its keys are token ids of OpenAI's tokenizer, not of SmolLM2's vocabulary",
    "audio": "the embedded model answers in text only",
    "web_search_options": "the embedded model cannot search the web",
    "reasoning_effort": "SmolLM2 is not a reasoning model",
    "verbosity": "SmolLM2 has no verbosity control",
    "moderation": "the embedded model has no moderation policies",
}
# The values of those that ask for nothing, and so pass.
OFF: dict[str, Any] = {"logprobs": False, "top_logprobs": 0, "logit_bias": {}}


class Stopped(Exception):
    """The generation was stopped: its caller went away, or the provider is closing."""


@dataclass(frozen=True)
class ChatCall:
    """One request, read and checked: what the worker thread runs."""

    messages: list[dict[str, str]]
    sampling: dict[str, Any]  # keyword arguments of llama.cpp's create_completion
    stop: list[str] = field(default_factory=list)
    grammar: str | None = None  # GBNF the output must follow
    tool: str | None = None  # the function every answer calls
    legacy: bool = False  # asked with ``functions``: answer with ``function_call``
    n: int = 1


def chat_call(body: dict[str, Any]) -> ChatCall:
    """Read an OpenAI chat request; raise :class:`InvalidInput` naming the first parameter
    the embedded model cannot honour."""
    _refuse_unsupported(body)
    tools, choice, legacy = _tools(body)
    forced = _forced_tool(tools, choice)
    messages = _messages(body.get("messages") or [])
    if tools and choice != "none":
        messages = _with_tool_list(messages, tools)
    limits = [body[k] for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None]
    sampling: dict[str, Any] = {
        "temperature": _number(body, "temperature", DEFAULT_TEMPERATURE),
        "top_p": _number(body, "top_p", 0.95),
        "presence_penalty": _number(body, "presence_penalty", 0.0),
        "frequency_penalty": _number(body, "frequency_penalty", 0.0),
        "max_tokens": min(int(v) for v in limits) if limits else None,
        "seed": None if body.get("seed") is None else int(body["seed"]),
    }
    stop = body.get("stop")
    grammar: str | None
    if forced is not None:
        grammar = _schema_grammar(
            forced["function"].get("parameters") or {"type": "object"},
            f"tools[{tools.index(forced)}].function.parameters",
        )
    else:
        grammar = _response_grammar(body.get("response_format"))
    return ChatCall(
        messages=messages,
        sampling=sampling,
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        grammar=grammar,
        tool=forced["function"]["name"] if forced is not None else None,
        legacy=legacy,
        n=int(body.get("n") or 1),
    )


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, why in REFUSED.items():
        value = body.get(name)
        if value is None or value == OFF.get(name):  # absent, or asked off
            continue
        raise InvalidInput(
            f"local-smollm2 cannot honour '{name}': {why}", param=name, code="unsupported_parameter"
        )
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise InvalidInput(
            "local-smollm2 answers in text only: 'modalities' must be [\"text\"]",
            param="modalities",
            code="unsupported_parameter",
        )


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    return default if value is None else float(value)


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages as SmolLM2's chat template takes them: text content only, ``developer``
    as ``system``, earlier tool calls written out as the model is asked to write them."""
    plain: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        role = "system" if message["role"] == "developer" else message["role"]
        text = _text(message.get("content"), index)
        calls = message.get("tool_calls") or []
        if message.get("function_call"):
            calls = [*calls, {"function": message["function_call"]}]
        for call in calls:
            function = call.get("function") or {}
            written = json.dumps(
                {"name": function.get("name"), "arguments": function.get("arguments")}
            )
            text = f"{text}\n{written}" if text else written
        plain.append({"role": role, "content": text})
    return plain


def _text(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for part in content:
        kind = part.get("type")
        if kind not in TEXT_PARTS:
            raise InvalidInput(
                f"local-smollm2 reads text only: messages[{index}].content holds a "
                f"{str(kind)[:40]!r} part",
                param=f"messages[{index}].content",
                code="unsupported_content",
            )
        texts.append(str(part.get(kind) or ""))
    return "\n".join(texts)


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, bool]:
    """The tools and the tool choice, legacy ``functions``/``function_call`` read as tools."""
    if body.get("functions"):
        tools = [{"type": "function", "function": f} for f in body["functions"]]
        call = body.get("function_call")
        choice = {"type": "function", "function": call} if isinstance(call, dict) else call
        return tools, choice or "auto", True
    return list(body.get("tools") or []), body.get("tool_choice") or "auto", False


def _forced_tool(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any] | None:
    """The tool every answer must call, or None when the model answers in text."""
    if choice in ("none", "auto"):
        return None
    if choice == "required":
        if len(tools) == 1:
            return tools[0]
        raise InvalidInput(
            "local-smollm2 cannot choose among several tools: name the function in "
            '\'tool_choice\' ({"type": "function", "function": {"name": ...}})'
            if tools
            else "'tool_choice' is 'required' but no tools were given",
            param="tool_choice",
            code="unsupported_parameter" if tools else "invalid_value",
        )
    name = ((choice or {}).get("function") or {}).get("name") if isinstance(choice, dict) else None
    for tool in tools:
        if name is not None and tool["function"].get("name") == name:
            return tool
    raise InvalidInput(
        f"'tool_choice' must be 'none', 'auto', 'required' or name one of the tools; got "
        f"{json.dumps(choice)[:80]}",
        param="tool_choice",
        code="invalid_value",
    )


def _with_tool_list(
    messages: list[dict[str, str]], tools: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """The tools, described in the system message: the GGUF's chat template has no place
    for them."""
    lines = ["You can call these functions:"]
    for tool in tools:
        function = tool["function"]
        lines.append(f"- {function['name']}: {function.get('description') or ''}".rstrip())
        lines.append(f"  parameters: {json.dumps(function.get('parameters') or {})}")
    listing = "\n".join(lines)
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        return [{"role": "system", "content": f"{first['content']}\n\n{listing}"}, *messages[1:]]
    return [{"role": "system", "content": listing}, *messages]


def _response_grammar(response_format: Any) -> str | None:
    if not isinstance(response_format, dict) or response_format.get("type") in (None, "text"):
        return None
    from llama_cpp.llama_grammar import JSON_GBNF

    spec = response_format.get("json_schema") or {}
    if response_format["type"] == "json_schema" and spec.get("schema") is not None:
        return _schema_grammar(spec["schema"], "response_format.json_schema.schema")
    return str(JSON_GBNF)  # json_object, or a json_schema without a schema: any JSON object


def _schema_grammar(schema: Any, param: str) -> str:
    """The GBNF grammar of a JSON Schema, or a 400 naming ``param`` when llama.cpp's
    converter cannot express it (a fallback to "any JSON" would let the schema go unmet)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # the converter asserts on what it does not support
        raise InvalidInput(
            f"local-smollm2 cannot enforce this JSON Schema: {str(exc)[:200]}",
            param=param,
            code="unsupported_schema",
        ) from None


class SmolLM:
    """The loaded model and its chat template. Used by one thread at a time (the worker)."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm = Llama(
            model_path=str(path), n_ctx=LLAMA_CONTEXT, n_threads=LLAMA_THREADS, verbose=False
        )
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        self.formatter = Jinja2ChatFormatter(
            template=self.llm.metadata["tokenizer.chat_template"],
            eos_token=self.llm._model.token_get_text(eos),
            bos_token=self.llm._model.token_get_text(bos),
        )

    def _prompt(self, call: ChatCall) -> tuple[list[int], list[str]]:
        """The prompt's tokens and the stop strings (the request's and the template's)."""
        messages: Any = call.messages  # llama-cpp types them as OpenAI's TypedDicts
        rendered = self.formatter(messages=messages)
        tokens = self.llm.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        if len(tokens) >= LLAMA_CONTEXT:
            raise InvalidInput(
                f"local-smollm2's context holds {LLAMA_CONTEXT} tokens; the messages take "
                f"{len(tokens)}",
                param="messages",
                code="context_length_exceeded",
            )
        template_stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop]
        return list(tokens), call.stop + [s for s in template_stop if s]

    def _generate(
        self,
        call: ChatCall,
        tokens: list[int],
        stop: list[str],
        index: int,
        stopped: threading.Event,
        *,
        stream: bool,
    ) -> Any:
        from llama_cpp.llama import StoppingCriteriaList
        from llama_cpp.llama_grammar import LlamaGrammar

        sampling = dict(call.sampling)
        if sampling["seed"] is not None:
            sampling["seed"] += index  # n answers from one seed must still differ
        return self.llm.create_completion(
            prompt=tokens,
            stream=stream,
            stop=stop,
            grammar=None
            if call.grammar is None
            else LlamaGrammar.from_string(call.grammar, verbose=False),
            # Checked after every token: a caller that went away frees the model at once.
            stopping_criteria=StoppingCriteriaList([lambda _ids, _logits: stopped.is_set()]),
            **sampling,
        )

    def complete(self, call: ChatCall, stopped: threading.Event) -> dict[str, Any]:
        """A chat.completion with ``call.n`` choices; raises :class:`Stopped` when
        ``stopped`` was set before it finished."""
        tokens, stop = self._prompt(call)
        choices: list[dict[str, Any]] = []
        completion_tokens = 0
        for index in range(call.n):
            result = self._generate(call, tokens, stop, index, stopped, stream=False)
            if stopped.is_set():
                raise Stopped
            generated = result["choices"][0]
            completion_tokens += result["usage"]["completion_tokens"]
            message, finish = _answer(call, generated["text"], generated["finish_reason"])
            choices.append(
                {"index": index, "message": message, "finish_reason": finish, "logprobs": None}
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "",
            "choices": choices,
            "usage": _usage(len(tokens), completion_tokens),
        }

    def stream(
        self, call: ChatCall, stopped: threading.Event, emit: Callable[[dict[str, Any]], None]
    ) -> None:
        """Hand chat.completion.chunk objects to ``emit``, the ``n`` answers one after the
        other, then one usage chunk; raises :class:`Stopped` when ``stopped`` is set."""
        tokens, stop = self._prompt(call)
        chunk = _chunk_maker()
        completion_tokens = 0
        for index in range(call.n):
            emit(chunk(index, {"role": "assistant", "content": "" if call.tool is None else None}))
            held: list[str] = []  # a tool call's arguments go out whole, once complete
            finish = None
            for piece in self._generate(call, tokens, stop, index, stopped, stream=True):
                if stopped.is_set():
                    raise Stopped
                generated = piece["choices"][0]
                finish = generated.get("finish_reason") or finish
                if call.tool is not None:
                    held.append(generated["text"])
                elif generated["text"]:
                    emit(chunk(index, {"content": generated["text"]}))
            if stopped.is_set():
                raise Stopped
            # llama.cpp evaluates every generated token but the last one sampled: after a
            # length stop the context holds prompt + completion - 1 tokens; after an
            # end-of-turn token, prompt + completion.
            completion_tokens += max(
                self.llm.n_tokens - len(tokens) + (1 if finish == "length" else 0), 0
            )
            message, finish = _answer(call, "".join(held), finish or "stop")
            if call.tool is not None:
                emit(chunk(index, _as_delta(message)))
            emit(chunk(index, {}, finish))
        emit(chunk(None, {}, usage=_usage(len(tokens), completion_tokens)))


def _answer(call: ChatCall, text: str, finish: str) -> tuple[dict[str, Any], str]:
    """The assistant message of one generated text, and its finish reason."""
    if call.tool is None:
        return {"role": "assistant", "content": text}, finish
    function = {"name": call.tool, "arguments": text}
    called = "function_call" if call.legacy else "tool_calls"
    message: dict[str, Any]
    if call.legacy:
        message = {"role": "assistant", "content": None, "function_call": function}
    else:
        tool_call = {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": function,
        }
        message = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
    return message, called if finish == "stop" else finish


def _as_delta(message: dict[str, Any]) -> dict[str, Any]:
    if "function_call" in message:
        return {"function_call": message["function_call"]}
    return {"tool_calls": [{"index": 0, **call} for call in message["tool_calls"]]}


def _chunk_maker() -> Callable[..., dict[str, Any]]:
    """Chunks of one streamed answer: one id and creation time for all of them."""
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(
        index: int | None,
        delta: dict[str, Any],
        finish: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        made: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": "",
            "choices": []
            if index is None
            else [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if usage is not None:
            made["usage"] = usage
        return made

    return chunk


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
