"""``local-smollm2``: what the embedded chat model makes of an OpenAI chat request.

Every OpenAI parameter is honoured or refused with a 400 that names it; none is dropped
without a word. :func:`chat_call` reads a request into a :class:`ChatCall` on the event
loop, so a refusal costs no place in the model's queue; :class:`SmolLM` runs it on the
model's worker thread (ONNX Runtime, :mod:`seamline.providers.smollm`) and answers in
OpenAI's format, streamed or whole.

* Honoured: ``max_tokens`` and ``max_completion_tokens`` (the smaller of the two when both
  come), ``temperature``, ``top_p``, ``stop``, ``seed``, ``presence_penalty``,
  ``frequency_penalty``, ``n`` (one answer after another: the prompt is evaluated once and
  its KV cache kept, so each further answer costs only its own tokens), ``logprobs`` and
  ``top_logprobs`` (the model's own log-probabilities, before penalties, temperature,
  ``top_p`` and grammar, as vLLM reports them by default), ``response_format``
  (``json_object`` and ``json_schema`` through an llguidance grammar, so the output follows
  the schema token by token), content as an array of text parts, ``developer`` messages
  (the system prompt, as OpenAI's newer clients send it), and ``tools`` with a
  ``tool_choice`` that names the function (or ``required`` with one tool): its arguments
  are generated under a grammar built from the function's ``parameters``.
* With ``tool_choice`` ``auto`` (the default) the model is shown the tools in its system
  prompt and answers in text: SmolLM2-135M was not trained to decide when to call one.
* Refused: ``logit_bias`` (its keys are ids of OpenAI's tokenizer, not of SmolLM2's
  vocabulary), ``top_logprobs`` without ``logprobs`` (as OpenAI refuses it), a JSON Schema
  llguidance cannot enforce (``unsupported_schema``), image, audio and file content, audio
  output, web search, reasoning effort, verbosity, moderation, ``required`` with several
  tools, and a prompt longer than the context (``context_length_exceeded``).
* Ignored, because they never change the answer: ``user``, ``metadata``, ``store``,
  ``service_tier``, ``stream_options`` (the gateway reads it), ``parallel_tool_calls`` (at
  most one call is made), ``prediction`` (a latency hint), the prompt-cache hints and
  ``safety_identifier``. Fields OpenAI does not define are ignored, as OpenAI-compatible
  servers ignore them.

The runtime's modules (numpy, onnxruntime, llguidance: the ``[local]`` extra) are imported
when a grammar is built or the model loaded, never when this module is.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seamline.core.errors import InvalidInput
from seamline.providers.smollm.call import Sampling, Stopped

if TYPE_CHECKING:
    from seamline.providers.smollm.generate import Generation, Logprob

__all__ = ["ChatCall", "SmolLM", "Stopped", "chat_call"]

CONTEXT = 8192  # tokens: SmolLM2's training context (llama.context_length in the GGUF)
# onnxruntime's intra-op threads: 56 tok/s with 2 against 44 with 1 on 2 shared AVX2 cores
# (one forward per token, accuracy level 4).
THREADS = 2
# llama-cpp-python's default for chat, which this model was served with before, kept when a
# request names none (OpenAI's is 1.0): SmolLM2-135M loops at 0 and wanders at 1; at 0.2 it
# answers simple questions (FACTS.md).
DEFAULT_TEMPERATURE = 0.2
# llama-cpp-python's default too. Its other defaults, top_k 40 and min_p 0.05, are not kept:
# OpenAI's API has neither, so a request could not turn them off.
DEFAULT_TOP_P = 0.95
TEXT_PARTS = ("text", "refusal")  # content parts that are text (refusal: an assistant's)
# OpenAI parameters that would change the answer and that this runtime cannot honour.
REFUSED = {
    "logit_bias": "its keys are token ids of OpenAI's tokenizer, not of SmolLM2's vocabulary",
    "audio": "the embedded model answers in text only",
    "web_search_options": "the embedded model cannot search the web",
    "reasoning_effort": "SmolLM2 is not a reasoning model",
    "verbosity": "SmolLM2 has no verbosity control",
    "moderation": "the embedded model has no moderation policies",
}
# The values of those that ask for nothing, and so pass.
OFF: dict[str, Any] = {"logit_bias": {}}


@dataclass(frozen=True)
class ChatCall:
    """One request, read and checked: what the worker thread runs."""

    messages: list[dict[str, str]]
    sampling: Sampling
    max_tokens: int | None = None  # None: as many as the context leaves
    stop: list[str] = field(default_factory=list)
    grammar: str | None = None  # llguidance grammar (its JSON form) the output must follow
    tool: str | None = None  # the function every answer calls
    legacy: bool = False  # asked with ``functions``: answer with ``function_call``
    n: int = 1
    top_logprobs: int | None = None  # None: no logprobs; else alternatives per token


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
    sampling = Sampling(
        temperature=_number(body, "temperature", DEFAULT_TEMPERATURE),
        top_p=_number(body, "top_p", DEFAULT_TOP_P),
        presence_penalty=_number(body, "presence_penalty", 0.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0),
        seed=None if body.get("seed") is None else int(body["seed"]),
    )
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
        max_tokens=min(int(v) for v in limits) if limits else None,
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        grammar=grammar,
        tool=forced["function"]["name"] if forced is not None else None,
        legacy=legacy,
        n=int(body.get("n") or 1),
        top_logprobs=_top_logprobs(body),
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


def _top_logprobs(body: dict[str, Any]) -> int | None:
    """None when no logprobs are asked for; else how many alternatives each token gets."""
    top = body.get("top_logprobs")
    if body.get("logprobs"):
        return int(top or 0)
    if top:
        raise InvalidInput(
            "'top_logprobs' needs 'logprobs' set to true",
            param="top_logprobs",
            code="invalid_value",
        )
    return None


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
    from seamline.providers.smollm.grammar import any_object_grammar

    spec = response_format.get("json_schema") or {}
    if response_format["type"] == "json_schema" and spec.get("schema") is not None:
        return _schema_grammar(spec["schema"], "response_format.json_schema.schema")
    return any_object_grammar()  # json_object, or a json_schema without a schema


def _schema_grammar(schema: Any, param: str) -> str:
    """The grammar of a JSON Schema, or a 400 naming ``param`` when llguidance cannot
    enforce it (a fallback to "any JSON" would let the schema go unmet)."""
    from seamline.providers.smollm.grammar import UnsupportedSchema, schema_grammar

    try:
        return schema_grammar(schema)
    except UnsupportedSchema as exc:
        raise InvalidInput(
            f"local-smollm2 cannot enforce this JSON Schema: {str(exc)[:200]}",
            param=param,
            code="unsupported_schema",
        ) from None


class SmolLM:
    """The loaded model. Used by one thread at a time (the worker)."""

    def __init__(self, path: Path) -> None:
        from seamline.providers.smollm.model import Model

        self.model = Model(path, context=CONTEXT, threads=THREADS)

    def _prompt(self, call: ChatCall) -> list[int]:
        tokenizer = self.model.tokenizer
        tokens = tokenizer.encode(tokenizer.chat(call.messages))
        if len(tokens) >= CONTEXT:
            raise InvalidInput(
                f"local-smollm2's context holds {CONTEXT} tokens; the messages take {len(tokens)}",
                param="messages",
                code="context_length_exceeded",
            )
        return tokens

    def _answers(
        self, call: ChatCall, prompt: list[int], stopped: threading.Event
    ) -> Iterator[Generation]:
        """The call's ``n`` answers, to iterate one after the other. The prompt is evaluated
        once: each answer starts from its logits, the cache cut back to the prompt."""
        from seamline.providers.smollm.generate import Generation

        decoder = self.model.decoder
        decoder.truncate(0)
        logits = decoder.prefill(prompt, stopped)
        room = CONTEXT - len(prompt)
        for index in range(call.n):
            decoder.truncate(len(prompt))
            yield Generation(
                decoder,
                self.model.tokenizer,
                logits,
                call.sampling,
                max_tokens=room if call.max_tokens is None else min(call.max_tokens, room),
                stop=call.stop,
                constraint=None if call.grammar is None else self.model.constraint(call.grammar),
                top_logprobs=call.top_logprobs,
                stopped=stopped,
                answer=index,  # n answers from one seed must still differ
            )

    def complete(self, call: ChatCall, stopped: threading.Event) -> dict[str, Any]:
        """A chat.completion with ``call.n`` choices; raises :class:`Stopped` when
        ``stopped`` was set before it finished."""
        prompt = self._prompt(call)
        choices: list[dict[str, Any]] = []
        completion_tokens = 0
        for index, answer in enumerate(self._answers(call, prompt, stopped)):
            pieces = list(answer)
            completion_tokens += answer.tokens
            text = "".join(piece.text for piece in pieces)
            message, finish = _answer(call, text, pieces[-1].finish or "stop")
            logprobs = [logprob for piece in pieces for logprob in piece.logprobs]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": finish,
                    "logprobs": self._logprobs(call, logprobs),
                }
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "",
            "choices": choices,
            "usage": _usage(len(prompt), completion_tokens),
        }

    def stream(
        self, call: ChatCall, stopped: threading.Event, emit: Callable[[dict[str, Any]], None]
    ) -> None:
        """Hand chat.completion.chunk objects to ``emit``, the ``n`` answers one after the
        other, then one usage chunk; raises :class:`Stopped` when ``stopped`` is set."""
        prompt = self._prompt(call)
        chunk = _chunk_maker()
        completion_tokens = 0
        for index, answer in enumerate(self._answers(call, prompt, stopped)):
            emit(chunk(index, {"role": "assistant", "content": "" if call.tool is None else None}))
            held: list[str] = []  # a tool call's arguments go out whole, once complete
            held_logprobs: list[Logprob] = []
            finish = "stop"
            for piece in answer:
                finish = piece.finish or finish
                if call.tool is not None:
                    held.append(piece.text)
                    held_logprobs.extend(piece.logprobs)
                elif piece.text or piece.logprobs:
                    logprobs = self._logprobs(call, piece.logprobs)
                    emit(chunk(index, {"content": piece.text}, logprobs=logprobs))
            completion_tokens += answer.tokens
            message, finish = _answer(call, "".join(held), finish)
            if call.tool is not None:
                logprobs = self._logprobs(call, held_logprobs)
                emit(chunk(index, _as_delta(message), logprobs=logprobs))
            emit(chunk(index, {}, finish))
        emit(chunk(None, {}, usage=_usage(len(prompt), completion_tokens)))

    def _logprobs(self, call: ChatCall, logprobs: Sequence[Logprob]) -> dict[str, Any] | None:
        """OpenAI's ``logprobs`` object of a choice or chunk, or None when not asked for."""
        if call.top_logprobs is None:
            return None
        token_bytes = self.model.tokenizer.token_bytes

        def token(token_id: int, logprob: float) -> dict[str, Any]:
            raw = token_bytes(token_id)
            return {"token": _spelling(raw), "logprob": logprob, "bytes": list(raw)}

        content = [
            {**token(lp.token, lp.logprob), "top_logprobs": [token(t, v) for t, v in lp.top]}
            for lp in logprobs
        ]
        return {"content": content, "refusal": None}


def _spelling(raw: bytes) -> str:
    """A token as text; one that is part of a UTF-8 character as OpenAI spells those."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)


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
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": logprobs}
        made: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": "",
            "choices": [] if index is None else [choice],
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
