"""The request path of DESIGN.md, stage by stage, for every chat dialect.

auth -> resolve (prompt, canary arm) -> limits -> route (retries, fallbacks, breaker) ->
provider -> response -> emit. The event is created on arrival and emitted exactly once in
``finally``, whatever happened: success, refusal, upstream failure, client disconnect.
``POST /v1/chat/completions`` runs it in OpenAI's chat format; other wire formats
(``gateway/dialects``) translate into it and out of it around the same stages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from seamline.core.errors import ContentBlocked, PermissionDenied, RateLimited, UpstreamFailed
from seamline.evals.calls import CallBound, Completion
from seamline.evals.coverage import input_text
from seamline.gateway.catalog import ModelCatalog
from seamline.gateway.core import Gateway
from seamline.gateway.dialects import Dialect, StreamWriter
from seamline.gateway.dialects.openai import ChatCompletions
from seamline.gateway.embedding import ModelEmbeddings
from seamline.gateway.metrics import EXTERNAL
from seamline.gateway.server.http import (
    Receive,
    Scope,
    Send,
    answer_cancelled,
    call_headers,
    discard,
    disconnect_watcher,
    fail_call,
    failures_recorded,
    new_event,
    parse_json_object,
    read_body,
    send_bytes,
    send_chunk,
    start_stream,
)
from seamline.gateway.stages.calls import (
    admit_caller,
    check_model,
    limit_scopes,
    most_it_can_cost,
)
from seamline.gateway.stages.guard import (
    JUDGE_USE_CASE,
    GuardedCall,
    SchemaReask,
    called_tools,
    guard_answer,
    guard_input,
    reask_messages,
    record_guard,
    refusal_answer,
)
from seamline.gateway.stages.request import ChatRequest, parse_chat_request, upstream_body
from seamline.gateway.stages.retrieve import rag_sample, record_reported_retrieval, retrieve
from seamline.gateway.stages.router import Attempt
from seamline.gateway.stages.tiers import choose_model
from seamline.gateway.stores.cache import as_stream, cache_key
from seamline.guards.engine import GuardEngine, OutputStream
from seamline.guards.judge import JudgeClient
from seamline.guards.redact import mask_sensitive
from seamline.monitoring.embeddings import CallInput
from seamline.monitoring.quality import QualitySample
from seamline.providers.base import ChatResult, Deployment, StreamChunk, UpstreamError, Usage
from seamline.rag.online import RAG_JUDGE_USE_CASE
from seamline.registry import Actor
from seamline.registry.prompt import Prompt
from seamline.registry.records import AliasRecord
from seamline.telemetry.event import STATUS_BLOCKED, STATUS_ERROR, STATUS_OK, CallEvent
from seamline.telemetry.tokens import count_messages, count_text, message_text

log = logging.getLogger("seamline.gateway")
CHAT = ChatCompletions()
CANARY, SHADOW, CONTROL = "canary", "shadow", "control"
CLIENT_CLOSED_REQUEST = 499  # nginx's convention for a client that went away
RAG_JUDGE_TIMEOUT_S = 120.0  # a judge checking one answer's statements for online scoring
EVAL_RATE_LIMIT_WAIT_S = 600.0  # the longest one eval call waits out rate limits in all


async def chat_completions(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    await serve_chat(gateway, scope, receive, send, CHAT)


async def serve_chat(
    gateway: Gateway, scope: Scope, receive: Receive, send: Send, dialect: Dialect
) -> None:
    """One call in ``dialect``, through every stage of the request path."""
    event = new_event(scope, dialect.route)
    headers: dict[str, str] = call_headers(event)
    content_logging = "none"  # until the key tells whose policy applies
    guarded: GuardedCall | None = None
    request: ChatRequest | None = None
    actor: Actor | None = None
    try:
        raw_body = parse_json_object(await read_body(receive, gateway.config.max_body_bytes))
        actor, generation = await gateway.view.authenticate(dialect.credentials(scope))
        content_logging = actor.project.content_logging
        admit_caller(event, actor)
        request = parse_chat_request(dialect.to_chat(raw_body))
        event.model_requested, event.stream = request.model, request.stream
        event.user_id, event.session_id = request.user_id, request.session_id
        event.use_case = request.use_case
        if request.reported_retrieval is not None:
            record_reported_retrieval(request.reported_retrieval, event)
        forwarded, model, prompt, shadow = await _resolve(
            gateway, actor, generation, request, event
        )
        check_model(actor, model)
        catalog = await gateway.catalog_for(actor, generation, model)
        model = choose_model(gateway.config, catalog, model, actor, request.use_case, forwarded)
        named = prompt.spec.guard_policy if prompt is not None else None
        named = named or gateway.config.route_guard_policies.get(dialect.route)
        policy = await gateway.view.guard_policy(actor, generation, named)
        try:
            judge = _judge_client(gateway, actor, event) if policy.asks_judge else None
            guarded = await guard_input(
                policy, prompt, request, forwarded, event, judge=judge, defer=True
            )
        except ContentBlocked:
            if policy.spec.refusal is None:
                raise
            event.fail(STATUS_BLOCKED, 200, "content_policy_violation", policy.spec.refusal)
            refusal = refusal_answer(request.model, policy.spec.refusal)
            await _answer_locally(dialect, request, refusal, event, headers, send)
            return
        event.request_content = forwarded.get("messages")
        scopes = limit_scopes(gateway.config, actor, model)
        headers.update((await gateway.limiter.admit(scopes)).headers())
        if event.prompt_name:
            headers["x-seamline-prompt-version"] = f"{event.prompt_name}@{event.prompt_version}"
        key = None
        # An answer that holds a call's placeholders is that call's alone.
        if gateway.cache.enabled and request.use_cache and guarded.verdict.pseudonymiser is None:
            key = cache_key(actor.project.id, {**forwarded, "model": model})
            cached = await gateway.cache.get(key)
            if cached is not None:  # no upstream call, no cost; the event says it was a hit
                event.cache_hit, event.model_used = True, cached.get("model")
                headers["x-seamline-cache"] = "hit"
                await _answer_locally(dialect, request, cached, event, headers, send)
                return
            headers["x-seamline-cache"] = "miss"
        reservation = await gateway.budgets.reserve(
            actor, lambda: _most_it_can_cost(gateway, catalog, model, forwarded)
        )
        try:
            if request.stream:
                writer = dialect.writer(request.model, request.include_usage)
                answer = await _stream(
                    gateway,
                    writer,
                    forwarded,
                    model,
                    event,
                    headers,
                    receive,
                    send,
                    catalog,
                    guarded,
                )
            else:
                answer = await _complete(
                    gateway,
                    dialect,
                    forwarded,
                    model,
                    event,
                    headers,
                    send,
                    catalog,
                    receive,
                    guarded,
                )
        finally:
            await gateway.budgets.settle(reservation, event.cost_usd)
            await gateway.limiter.add_tokens(scopes, event.prompt_tokens + event.completion_tokens)
        if key is not None and answer is not None and event.status == STATUS_OK:
            await gateway.cache.put(key, answer)
        if shadow is not None:
            gateway.in_background(
                _shadow_call(gateway, actor, request, shadow, policy, event, guarded)
            )
    except asyncio.CancelledError:
        started = event.ttft_ms is not None
        await answer_cancelled(
            send, event, headers, response_started=started, body=dialect.error_body
        )
    except Exception as exc:
        await fail_call(
            send,
            event,
            exc,
            headers,
            response_started=event.ttft_ms is not None,
            body=dialect.error_body,
        )
    finally:
        if guarded is not None:
            await _settled(guarded, event)
        if request is not None and actor is not None and event.index_version is not None:
            _observe_retrieval(gateway, actor, request, event, content_logging)
        if request is not None and content_logging != "none":
            _embed_for_drift(gateway, request, event, guarded)
        if request is not None:
            _score_quality(gateway, request, event, content_logging)
        event.apply_content_policy(content_logging, mask_sensitive)
        gateway.emit(event)


def _upstream_identity(event: CallEvent, answer: dict[str, Any]) -> None:
    """The model and build the upstream says answered, as its answer (or a chunk) says."""
    model, fingerprint = answer.get("model"), answer.get("system_fingerprint")
    if isinstance(model, str) and model:
        event.upstream_model = model
    if isinstance(fingerprint, str) and fingerprint:
        event.system_fingerprint = fingerprint


def _score_quality(
    gateway: Gateway, request: ChatRequest, event: CallEvent, content_logging: str
) -> None:
    """Queue an answered call for online quality when it falls in its prompt's sample (the
    scorers read the answer in memory; only scores are kept). A failure here must not cost
    the call its event."""
    try:
        if event.status != STATUS_OK or event.project_id is None:
            return
        rate, scorers = gateway.config.quality.for_prompt(event.prompt_name)
        if not scorers or random.random() >= rate:
            return
        answer = message_text((event.response_content or {}).get("content"))
        if not answer:
            return
        gateway.quality_scorer.queue.submit(
            QualitySample(
                event.request_id,
                event.project_id,
                event.time,
                event.prompt_name,
                event.prompt_version,
                event.arm,
                dict(event.prompt_variables or {}),
                tuple(m for m in request.body.get("messages") or [] if isinstance(m, dict)),
                answer,
                scorers,
                keep_reasons=content_logging != "none",
            )
        )
    except Exception:
        log.exception("queueing call %s for quality scoring failed", event.request_id)


def _embed_for_drift(
    gateway: Gateway, request: ChatRequest, event: CallEvent, guarded: GuardedCall | None
) -> None:
    """Queue the call's input (and answer) to be embedded for drift, when it was answered
    or blocked and falls in the sample; the guards' embedding of the same text is reused.
    A failure here must not cost the call its event."""
    try:
        if event.status not in (STATUS_OK, STATUS_BLOCKED) or event.project_id is None:
            return
        if random.random() >= gateway.config.drift.sample_rate:
            return
        embedder = gateway.call_embedder
        text = input_text(event.prompt_variables, request.body.get("messages"))
        if embedder is None or not text:
            return
        computed = guarded.verdict.embeddings.computed() if guarded is not None else {}
        known = computed.get(text)
        answer = message_text((event.response_content or {}).get("content"))
        embedder.queue.submit(
            CallInput(
                event.request_id,
                event.project_id,
                event.time,
                event.prompt_name,
                event.prompt_version,
                event.use_case,
                event.api_key_id,
                text,
                answer or None,
                None if known is None else known.message,
            )
        )
    except Exception:
        log.exception("queueing call %s for drift failed", event.request_id)


def _observe_retrieval(
    gateway: Gateway, actor: Actor, request: ChatRequest, event: CallEvent, content_logging: str
) -> None:
    """The ages of the documents the call retrieved (``/metrics``), and the call queued for
    online RAG scoring when it is sampled (before the content policy: the scorer reads the
    answer, its assessment keeps only what the policy allows). A failure here must not cost
    the call its event."""
    try:
        assert event.index_version is not None
        reported = request.reported_retrieval
        chunks = reported.chunks if reported is not None else request.retrieved
        index = EXTERNAL if reported is not None else event.index_version
        gateway.metrics.retrieved(index, event.time, chunks)
        sample = rag_sample(gateway.config.rag, request, event, content_logging)
        if sample is None:
            return
        judge = None
        if sample.judge is not None:
            ask = _judge_client(gateway, actor, event, RAG_JUDGE_USE_CASE)
            judge = functools.partial(ask, timeout_s=RAG_JUDGE_TIMEOUT_S)
        gateway.rag_scorer.submit(sample, judge)
    except Exception:
        log.exception("sampling call %s for RAG scoring failed", event.request_id)


async def _settled(guarded: GuardedCall, event: CallEvent) -> None:
    """The guard rules that ran beside the call, added to its event; a failure there (the
    rules catch their detectors' own) must not cost the call its event."""
    try:
        await guarded.settle(event)
    except asyncio.CancelledError:  # cancelled again (shutdown): the event goes out without
        pass
    except Exception:
        log.exception("guard rules beside call %s failed", event.request_id)


async def _resolve(
    gateway: Gateway,
    actor: Actor,
    generation: int | None,
    request: ChatRequest,
    event: CallEvent,
) -> tuple[dict[str, Any], str, Prompt | None, Prompt | None]:
    """The upstream body and model name, the prompt version it renders (if any), and the
    shadow version to try (if any)."""
    if request.prompt_name is None:
        return upstream_body(request.body), request.model, None, None
    assert request.prompt_ref is not None
    prompt, aliases = await gateway.view.prompt(
        actor, generation, request.prompt_name, request.prompt_ref
    )
    event.arm = CONTROL
    canary = aliases.get(CANARY)
    if (
        request.prompt_ref == "production"
        and canary is not None
        and canary.weight
        and _in_canary(canary, request)
    ):
        prompt = await gateway.view.prompt_version(
            actor, generation, request.prompt_name, canary.version
        )
        event.arm = CANARY
    event.prompt_name, event.prompt_version = prompt.name, prompt.version
    event.prompt_alias = CANARY if event.arm == CANARY else prompt.alias
    event.prompt_variables = dict(request.variables) or None  # the caller's, before retrieval
    await retrieve(
        gateway.view,
        gateway.index_store,
        actor,
        generation,
        prompt,
        request,
        event,
        gateway.metrics.freshness,
        lambda model: ModelEmbeddings(gateway, actor, model, event),
    )
    body, model = await _prompt_body(prompt, request)
    shadow = None
    shadow_alias = aliases.get(SHADOW)
    share = 100 if shadow_alias is None or shadow_alias.weight is None else shadow_alias.weight
    if shadow_alias is not None and random.random() * 100 < share:
        shadow = await gateway.view.prompt_version(
            actor, generation, request.prompt_name, shadow_alias.version
        )
    return body, model, prompt, shadow


async def _prompt_body(
    prompt: Prompt, request: ChatRequest, **changes: Any
) -> tuple[dict[str, Any], str]:
    """The upstream body a prompt version renders to for this request (its messages, then
    the request's own; its model, parameters and tools), and the model it names.

    A template that loops renders on a worker thread: it is bounded (a quarter second at
    most, see ``registry.templating``) but must not hold up the other calls meanwhile."""
    if prompt.is_straight_line:
        rendered = prompt.render(**request.variables)
    else:
        rendered = await asyncio.to_thread(prompt.render, **request.variables)
    if rendered.model is None:
        raise PermissionDenied(
            f"prompt {prompt.ref} names no model to call", code="prompt_without_model"
        )
    rendered_changes: dict[str, Any] = {
        "messages": rendered.messages + (request.body.get("messages") or []),
        "model": rendered.model,
        **rendered.parameters,
    }
    if rendered.tools and "tools" not in request.body:
        rendered_changes["tools"] = rendered.tools
    return upstream_body(request.body, **rendered_changes, **changes), rendered.model


def _in_canary(canary: AliasRecord, request: ChatRequest) -> bool:
    """``weight`` % of calls; the same session (or user) always lands on the same arm."""
    sticky = request.session_id or request.user_id
    if sticky is None:
        return random.random() * 100 < (canary.weight or 0)
    digest = hashlib.blake2b(f"{request.prompt_name}:{sticky}".encode(), digest_size=4).digest()
    return int.from_bytes(digest) % 10_000 < (canary.weight or 0) * 100


def _most_it_can_cost(
    gateway: Gateway, catalog: ModelCatalog, model: str, body: dict[str, Any]
) -> float:
    return most_it_can_cost(
        gateway.router,
        catalog,
        model,
        lambda tokenizer: count_messages(tokenizer, body.get("messages") or [], upper_bound=True)[
            0
        ],
        _completion_cap(gateway, body),
    )


def _completion_cap(gateway: Gateway, body: dict[str, Any]) -> int:
    """The most answer tokens a call can be billed: its cap (else the gateway's assumption)
    for every one of its ``n`` answers (the prompt is billed once)."""
    completion = (
        body.get("max_completion_tokens")
        or body.get("max_tokens")
        or gateway.config.budget_completion_tokens
    )
    return int(completion) * int(body.get("n") or 1)


async def _complete(
    gateway: Gateway,
    dialect: Dialect,
    body: dict[str, Any],
    model: str,
    event: CallEvent,
    headers: dict[str, str],
    send: Send,
    catalog: ModelCatalog | None = None,
    receive: Receive | None = None,
    guarded: GuardedCall | None = None,
) -> dict[str, Any] | None:
    """Answer a non-streamed call; returns the upstream's chat.completion (as it may be
    stored: redacted by the output guard), or None when the client went away first
    (``receive`` tells): the upstream call is then cancelled, so an abandoned call does not
    keep a model busy (the embedded one stops at its next token)."""
    attempt = Attempt()

    async def call(deployment: Deployment) -> ChatResult:
        return await gateway.provider(deployment).chat(
            deployment, {**body, "model": deployment.upstream_model}
        )

    leaving = _ClientWatch(receive)
    try:
        result = await gateway.router.call(
            model, attempt, call, catalog, body.get("messages") or ()
        )
    except asyncio.CancelledError:
        if not leaving.left():
            raise
        _client_gone(event)
        _account(gateway, event, attempt.deployment, body, None, "")
        return None
    finally:
        leaving.stop()
        attempt.record(event)
    choice = (result.body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    event.finish_reason = choice.get("finish_reason")
    event.response_content = message
    _upstream_identity(event, result.body)
    _account(gateway, event, attempt.deployment, body, result.usage, message.get("content") or "")
    answered, raw = result.body, result.raw
    if guarded is not None:
        try:
            answered = guard_answer(guarded, result.body, event)
        except SchemaReask as reask:
            result = await _reask(gateway, body, model, event, catalog, result, reask.error)
            answered = guard_answer(guarded, result.body, event, reasked=True)
        raw = raw if answered is result.body else None
    headers["x-seamline-model"] = event.model_used or model
    await send_bytes(send, 200, dialect.answer(answered, raw), headers)
    return result.body


class _ClientWatch:
    """Cancels the calling task when the client disconnects, until :meth:`stop`.

    The call runs in the request's own task and the watcher cancels that task: one task per
    call beside it, where racing an upstream task against a watcher with ``asyncio.wait``
    took two and cost 20 µs more CPU a call (measured with uvloop)."""

    def __init__(self, receive: Receive | None) -> None:
        self._task = asyncio.current_task()
        self._watcher = disconnect_watcher(receive) if receive is not None else None
        self._gone = False
        self._stopped = False
        if self._watcher is not None:
            self._watcher.add_done_callback(self._client_left)

    def _client_left(self, watcher: asyncio.Task[None]) -> None:
        # Already scheduled when the call ended first: then it must not cancel what follows.
        if self._stopped or watcher.cancelled() or self._task is None:
            return
        self._gone = True
        self._task.cancel()

    def left(self) -> bool:
        """Whether the cancellation being handled is the client's leaving (then absorbed)."""
        if self._gone and self._task is not None:
            self._task.uncancel()
            return True
        return False

    def stop(self) -> None:
        self._stopped = True
        if self._watcher is not None:
            self._watcher.cancel()


async def _stream(
    gateway: Gateway,
    writer: StreamWriter,
    body: dict[str, Any],
    model: str,
    event: CallEvent,
    headers: dict[str, str],
    receive: Receive,
    send: Send,
    catalog: ModelCatalog | None = None,
    guarded: GuardedCall | None = None,
) -> dict[str, Any] | None:
    """Answer a streamed call; returns the answer as one chat.completion (for the cache)
    when it completed and holds text only. With output rules, each answer's text passes
    through its guard stream (held back, redacted, restored) before it is sent."""
    attempt = Attempt()
    # Always ask for the usage chunk, so streamed calls are costed exactly like the rest;
    # it is passed on only to clients that asked for it.
    with_usage = {
        **body,
        "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
    }

    def start(deployment: Deployment) -> Any:
        upstream = with_usage if deployment.stream_usage else body
        return gateway.provider(deployment).chat_stream(
            deployment, {**upstream, "model": deployment.upstream_model}
        )

    try:
        first, chunks = await gateway.router.open_stream(
            model, attempt, start, catalog, body.get("messages") or ()
        )
    finally:
        attempt.record(event)
    headers["x-seamline-model"] = event.model_used or model
    try:
        await start_stream(send, headers)
        event.ttft_ms = (time.perf_counter() - event.started) * 1000
        watcher = disconnect_watcher(receive)
    except BaseException:  # the client went, or the call was cancelled: end the upstream
        await _close(chunks)
        raise
    text: list[str] = []
    usage: Usage | None = None
    cacheable = True
    output = _OutputGuards(guarded)
    try:
        chunk: StreamChunk | None = first
        while chunk is not None:
            if watcher.done():
                _client_gone(event)
                break
            usage = Usage.from_openai(chunk.data.get("usage")) or usage
            _upstream_identity(event, chunk.data)
            choices = chunk.data.get("choices") or []
            for choice in choices:
                if choice.get("index", 0) != 0:  # n > 1: the record keeps the first answer
                    cacheable = False
                else:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        text.append(delta["content"])
                    cacheable = cacheable and not delta.get("tool_calls")
                    event.finish_reason = choice.get("finish_reason") or event.finish_reason
                output.guard(choice, event)
            if output.blocked is not None:
                raise output.blocked
            raw = None if output.active else chunk.raw
            if data := writer.chunk(chunk.data, raw):
                await send_chunk(send, data)
            chunk = await anext(chunks, None)
        else:
            for rest in output.rest(chunk_like=first):
                await send_chunk(send, writer.chunk(rest, None))
            await send_chunk(send, writer.end(), more=False)
    except (UpstreamError, ContentBlocked) as exc:
        # Mid-stream: the status line is gone; end the stream with an error event.
        error = (
            exc
            if isinstance(exc, ContentBlocked)
            else UpstreamFailed(exc.message, code="upstream_stream_error")
        )
        status = STATUS_BLOCKED if isinstance(exc, ContentBlocked) else STATUS_ERROR
        event.fail(status, error.status, error.code, error.message)
        await send_chunk(send, writer.fail(error), more=False)
    finally:
        watcher.cancel()
        await _close(chunks)
        answer = output.record(event, "".join(text))
        event.response_content = {"role": "assistant", "content": answer}
        _account(gateway, event, attempt.deployment, body, usage, "".join(text))
    if not cacheable or event.status != STATUS_OK:
        return None
    return {
        "id": (first.data.get("id") if first else None) or "chatcmpl-seamline",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": event.model_used,
        "choices": [
            {
                "index": 0,
                "finish_reason": event.finish_reason,
                "message": {"role": "assistant", "content": answer},
            }
        ],
        "usage": {
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
            "total_tokens": event.prompt_tokens + event.completion_tokens,
        },
    }


async def _reask(
    gateway: Gateway,
    body: dict[str, Any],
    model: str,
    event: CallEvent,
    catalog: ModelCatalog | None,
    first: ChatResult,
    error: str,
) -> ChatResult:
    """One more call when the answer did not match the schema (a policy's ``reask``), the
    validation error in the conversation; its tokens and cost add to the call's."""
    message = ((first.body.get("choices") or [{}])[0].get("message")) or {}
    again = {**body, "messages": reask_messages(body, str(message.get("content") or ""), error)}
    attempt = Attempt()

    async def call(deployment: Deployment) -> ChatResult:
        return await gateway.provider(deployment).chat(
            deployment, {**again, "model": deployment.upstream_model}
        )

    spent = (event.prompt_tokens, event.completion_tokens, event.cost_usd)
    try:
        result = await gateway.router.call(model, attempt, call, catalog, again["messages"])
    finally:
        attempt.record(event)
    reply = (result.body.get("choices") or [{}])[0].get("message") or {}
    _account(gateway, event, attempt.deployment, again, result.usage, reply.get("content") or "")
    event.prompt_tokens += spent[0]
    event.completion_tokens += spent[1]
    event.cost_usd = (event.cost_usd or 0.0) + (spent[2] or 0.0)
    event.response_content = reply
    return result


class _OutputGuards:
    """A stream's output guards: one guard stream per answer (``n`` may ask for several),
    rewriting each content delta to what is safe to send."""

    def __init__(self, guarded: GuardedCall | None) -> None:
        self._guarded = guarded
        self.active = guarded is not None and guarded.guards_output
        self._streams: dict[int, OutputStream] = {}
        self.blocked: ContentBlocked | None = None

    def _stream_for(self, index: int) -> OutputStream:
        assert self._guarded is not None
        stream = self._streams.get(index)
        if stream is None:
            verdict = self._guarded.verdict
            stream = self._guarded.engine.output_stream(
                canary=verdict.canary, pseudonymiser=verdict.pseudonymiser
            )
            self._streams[index] = stream
        return stream

    def guard(self, choice: dict[str, Any], event: CallEvent) -> None:
        """Check the functions a choice calls; rewrite its content in place, then add what
        the guard stream still held when the answer finishes."""
        if self._guarded is not None:
            for name in called_tools(choice.get("delta") or {}):
                self._guarded.check_tool(name, event)
        if not self.active:
            return
        stream = self._stream_for(choice.get("index", 0))
        delta = choice.setdefault("delta", {})
        safe = stream.feed(delta["content"]) if delta.get("content") else ""
        if choice.get("finish_reason"):
            safe += stream.flush()
        if stream.blocked and self.blocked is None:
            self.blocked = ContentBlocked("blocked by the guard policy: the answer was cut off")
        if "content" in delta or safe:
            delta["content"] = safe

    def rest(self, chunk_like: StreamChunk | None) -> list[dict[str, Any]]:
        """Chunks for what guard streams still hold when the upstream ended without a
        finish_reason for their answer."""
        held: list[dict[str, Any]] = []
        base = chunk_like.data if chunk_like is not None else {}
        for index, stream in self._streams.items():
            if stream.finished:
                continue
            if text := stream.flush():
                choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
                held.append({**base, "choices": [choice]})
        return held

    def record(self, event: CallEvent, received: str) -> str:
        """Put what the first answer's output rules found on the event; the answer as it may
        be stored (redacted, placeholders kept)."""
        stream = self._streams.get(0)
        if self._guarded is None or stream is None:
            return received
        verdict = stream.verdict()
        record_guard(event, self._guarded, verdict)
        return verdict.stored


def _client_gone(event: CallEvent) -> None:
    event.fail(
        STATUS_ERROR,
        CLIENT_CLOSED_REQUEST,
        "client_disconnected",
        "the client went away before the answer ended; the upstream call was cancelled",
    )


async def _answer_locally(
    dialect: Dialect,
    request: ChatRequest,
    answer: dict[str, Any],
    event: CallEvent,
    headers: dict[str, str],
    send: Send,
) -> None:
    """Send an answer the gateway holds (a cached one, a guard's refusal), whole or as a
    stream as the caller asked."""
    choice = (answer.get("choices") or [{}])[0]
    event.finish_reason = choice.get("finish_reason")
    event.response_content = choice.get("message")
    if not request.stream:
        await send_bytes(send, 200, dialect.answer(answer, None), headers)
        return
    await start_stream(send, headers)
    event.ttft_ms = (time.perf_counter() - event.started) * 1000
    writer = dialect.writer(request.model, request.include_usage)
    for chunk in as_stream(answer, include_usage=True):
        if data := writer.chunk(chunk, None):
            await send_chunk(send, data)
    await send_chunk(send, writer.end(), more=False)


async def _close(chunks: Any) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        with contextlib.suppress(UpstreamError, RuntimeError, asyncio.CancelledError):
            await close()


def _account(
    gateway: Gateway,
    event: CallEvent,
    deployment: Deployment | None,
    body: dict[str, Any],
    usage: Usage | None,
    completion: str,
) -> None:
    """Tokens from the upstream's usage when it reports them, else counted; then cost."""
    if deployment is None:
        return
    if usage is not None:
        event.prompt_tokens, event.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        event.cached_tokens = usage.cached_tokens
    else:
        prompt_tokens, guessed_prompt = count_messages(
            deployment.upstream_model, body.get("messages") or []
        )
        completion_tokens, guessed_completion = count_text(deployment.upstream_model, completion)
        event.prompt_tokens, event.completion_tokens = prompt_tokens, completion_tokens
        event.tokens_estimated = guessed_prompt or guessed_completion
    event.cost_usd = deployment.price.cost(
        event.prompt_tokens, event.completion_tokens, event.cached_tokens
    )


async def _shadow_call(
    gateway: Gateway,
    actor: Actor,
    request: ChatRequest,
    prompt: Prompt,
    policy: GuardEngine,
    live: CallEvent,
    guarded: GuardedCall,
) -> None:
    """Call the shadow version with the live call's inputs (and the embeddings its guards
    computed of them); record it, return it to no one."""
    event = CallEvent(
        route=CHAT.route, arm=SHADOW, parent_request_id=live.request_id, trace_id=live.trace_id
    )
    event.prompt_name, event.prompt_version, event.prompt_alias = (
        prompt.name,
        prompt.version,
        SHADOW,
    )
    event.prompt_variables = request.variables or None

    async def prepare() -> tuple[dict[str, Any], str]:
        # The live call's inputs, answered whole: a shadow is never streamed to anyone.
        body, model = await _prompt_body(prompt, request, stream=False)
        body.pop("stream_options", None)
        # The live call's policy: the shadow's rendering must not carry what it keeps out.
        judge = _judge_client(gateway, actor, event) if policy.asks_judge else None
        await guard_input(
            policy, prompt, request, body, event, guarded.verdict.embeddings, judge=judge
        )
        return body, model

    # Its failure is recorded on its own event, and concerns no caller.
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await _side_call(gateway, actor, live, event, prepare)


def _judge_client(
    gateway: Gateway, actor: Actor, live: CallEvent, use_case: str = JUDGE_USE_CASE
) -> JudgeClient:
    """How ``injection.judge`` (or online RAG scoring) asks its model about the call
    ``live``: through this gateway's router, from a worker thread (the guard check's, the
    RAG scorer's), as a call of its own."""
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()

    def ask(model: str, body: dict[str, Any], timeout_s: float) -> str:
        if threading.get_ident() == loop_thread:  # waiting here would stop the loop it needs
            raise RuntimeError("the judge must be asked from a worker thread")
        event = CallEvent(
            route=CHAT.route, parent_request_id=live.request_id, trace_id=live.trace_id
        )
        event.use_case = use_case

        async def prepare() -> tuple[dict[str, Any], str]:
            return {**body, "model": model}, model

        future = asyncio.run_coroutine_threadsafe(
            _side_call(gateway, actor, live, event, prepare), loop
        )
        try:
            answer = future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise
        content = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content")
        return content if isinstance(content, str) else ""

    return ask


class EvalModelCall:
    """How an eval run (``evals.calls.ModelCall``) calls models in-process: through this
    gateway's router, fallbacks, budgets and price list, waiting out its rate limits, each
    call recorded as an event under the run's use case with the run's id as its session."""

    def __init__(self, gateway: Gateway, actor: Actor, run_id: str | None = None) -> None:
        self.gateway = gateway
        self.actor = actor
        self.run_id = run_id

    async def __call__(self, model: str, body: dict[str, Any], *, use_case: str) -> Completion:
        """One answer. A rate limit (this gateway's or the upstream's 429, a busy embedded
        model among them) is waited out for as long as it asks, up to a bound, so a run's
        concurrency settles under what the provider admits instead of erroring cases."""
        waited = 0.0
        while True:
            try:
                return await self._once(model, body, use_case)
            except RateLimited as limited:
                pause = float(limited.headers.get("Retry-After", "1"))
                if waited + pause > EVAL_RATE_LIMIT_WAIT_S:
                    raise
                waited += pause
                await asyncio.sleep(pause)

    async def _once(self, model: str, body: dict[str, Any], use_case: str) -> Completion:
        event = CallEvent(route=CHAT.route)
        event.use_case = use_case
        await self.gateway.limiter.admit(limit_scopes(self.gateway.config, self.actor, model))

        async def prepare() -> tuple[dict[str, Any], str]:
            return {**body, "model": model, "stream": False}, model

        answer = await _side_call(self.gateway, self.actor, event, event, prepare)
        content = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content")
        return Completion(
            text=content if isinstance(content, str) else "",
            prompt_tokens=event.prompt_tokens or 0,
            completion_tokens=event.completion_tokens or 0,
            cost_usd=event.cost_usd or 0.0,
            latency_ms=event.latency_ms or 0.0,
            model_used=event.model_used,
            upstream_model=answer.get("model"),
            system_fingerprint=answer.get("system_fingerprint"),
        )

    async def bound(self, model: str, body: dict[str, Any]) -> CallBound:
        catalog = await self.gateway.catalog_for(self.actor, None, model)
        completion = _completion_cap(self.gateway, body)
        prompt = 0

        def count(tokenizer: str) -> int:
            nonlocal prompt
            prompt = count_messages(tokenizer, body.get("messages") or [], upper_bound=True)[0]
            return prompt

        most = most_it_can_cost(self.gateway.router, catalog, model, count, completion)
        return CallBound(prompt, completion, most)


async def _side_call(
    gateway: Gateway,
    actor: Actor,
    live: CallEvent,
    event: CallEvent,
    prepare: Callable[[], Awaitable[tuple[dict[str, Any], str]]],
) -> dict[str, Any]:
    """A call the gateway makes on behalf of the live call (a prompt's shadow, a guard's
    judge): attributed to the same caller, held to the same budgets, answered to no one and
    recorded as an event of its own. Returns the answer; raises what failed it, once
    recorded."""
    admit_caller(event, actor)  # the live call was admitted: this only attributes it
    event.user_id, event.session_id = live.user_id, live.session_id
    event.use_case = event.use_case or live.use_case
    try:
        async with failures_recorded(event):
            body, model = await prepare()
            event.model_requested = model
            event.request_content = body["messages"]
            catalog = await gateway.catalog_for(actor, None, model)
            reservation = await gateway.budgets.reserve(
                actor, lambda: _most_it_can_cost(gateway, catalog, model, body)
            )
            try:
                answer = await _complete(gateway, CHAT, body, model, event, {}, discard, catalog)
            finally:
                await gateway.budgets.settle(reservation, event.cost_usd)
    finally:
        event.apply_content_policy(actor.project.content_logging, mask_sensitive)
        gateway.emit(event)
    assert answer is not None  # None only when a client leaves, and no client waits here
    return answer
