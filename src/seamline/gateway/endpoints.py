"""The smaller ``/v1`` endpoints: embeddings, the model list and one model, token counts
for the Messages API, and the answer to the legacy completions route."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from seamline.core.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    SeamlineError,
    Unavailable,
)
from seamline.gateway.core import Gateway
from seamline.gateway.dialects.anthropic import AnthropicMessages, messages_to_chat
from seamline.gateway.embedding import EMBEDDINGS, embed
from seamline.gateway.server.http import (
    Receive,
    Scope,
    Send,
    answer_cancelled,
    bearer_token,
    call_headers,
    fail_call,
    new_event,
    parse_json_object,
    read_body,
    send_bytes,
    send_error,
    send_json,
)
from seamline.gateway.stages.calls import admit_caller, check_model
from seamline.monitoring.feedback import FeedbackStore, parse_feedback
from seamline.registry.identity import Scope as KeyScope
from seamline.telemetry.tokens import count_messages, count_text
from seamline.telemetry.writer import FLUSH_INTERVAL_S

log = logging.getLogger("seamline.gateway")
MODELS_PREFIX = "/v1/models/"
FEEDBACK_WAIT_S = 2.0  # the longest feedback waits for its call's event to be written
MESSAGES = AnthropicMessages()
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own limit per request


async def embeddings(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    event = new_event(scope, EMBEDDINGS)
    headers = call_headers(event)
    try:
        body = parse_json_object(await read_body(receive, gateway.config.max_body_bytes))
        actor, generation = await gateway.view.authenticate(bearer_token(scope))
        admit_caller(event, actor)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidInput("'model' is required and must be a string", param="model")
        inputs = embedding_inputs(body)
        result = await embed(gateway, actor, generation, body, inputs, event, headers)
        await send_bytes(send, 200, result.raw or orjson.dumps(result.body), headers)
    except asyncio.CancelledError:
        await answer_cancelled(send, event, headers, response_started=False)
    except Exception as exc:
        await fail_call(send, event, exc, headers, response_started=False)
    finally:
        gateway.emit(event)


def embedding_inputs(body: dict[str, Any]) -> list[str | list[int]]:
    """The inputs of an embeddings request, each a text or an array of token ids (what
    LangChain sends by default), checked as OpenAI checks them; and its options."""
    raw = body.get("input")
    if isinstance(raw, str):
        inputs: list[str | list[int]] = [raw]
    elif isinstance(raw, list) and raw and all(_is_token_id(t) for t in raw):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(_is_text_or_ids(t) for t in raw):
        inputs = raw
    else:
        raise InvalidInput(
            "'input' must be a string, an array of strings, an array of token ids or an "
            "array of token-id arrays, none of them empty",
            param="input",
        )
    if not all(inputs) or len(inputs) > MAX_EMBEDDING_INPUTS:
        raise InvalidInput(
            f"'input' must hold 1 to {MAX_EMBEDDING_INPUTS} non-empty items", param="input"
        )
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise InvalidInput("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and not (_is_token_id(dimensions) and dimensions > 0):
        raise InvalidInput("'dimensions' must be a positive integer", param="dimensions")
    return inputs


def _is_token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_text_or_ids(value: object) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(_is_token_id(t) for t in value)
    )


async def list_models(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        actor, _ = await gateway.view.authenticate(bearer_token(scope))
    except SeamlineError as exc:
        await send_error(send, exc)
        return
    created = int(time.time())
    data = [
        _model_object(name, entry.kind, created)
        for name, entry in sorted(gateway.catalog.entries.items())
        if actor.may_call(name)
    ]
    await send_json(send, 200, {"object": "list", "data": data})


async def retrieve_model(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /v1/models/{id}`` (``client.models.retrieve``): a configured model, or the
    project's registry model of that name; 404 for one the key may not call, as for one that
    does not exist, so that a key learns nothing about models beyond its own."""
    name = scope["path"].rstrip("/")[len(MODELS_PREFIX) :]
    try:
        actor, generation = await gateway.view.authenticate(bearer_token(scope))
        catalog = await gateway.catalog_for(actor, generation, name) if name else None
        entry = catalog.entries.get(name) if catalog is not None else None
        if entry is None or not actor.may_call(name):
            raise NotFound(f"The model '{name}' does not exist", code="model_not_found")
    except SeamlineError as exc:
        await send_error(send, exc)
        return
    await send_json(send, 200, _model_object(name, entry.kind, int(time.time())))


def _model_object(name: str, kind: str, created: int) -> dict[str, object]:
    return {"id": name, "object": "model", "created": created, "owned_by": "seamline", "kind": kind}


async def count_tokens(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/messages/count_tokens``: the input tokens of a Messages request, counted
    with the tokenizer of the model that would serve it (the first deployment's)."""
    try:
        body = parse_json_object(await read_body(receive, gateway.config.max_body_bytes))
        actor, generation = await gateway.view.authenticate(MESSAGES.credentials(scope))
        chat = messages_to_chat({"max_tokens": 1, **body})
        check_model(actor, chat["model"])
        catalog = await gateway.catalog_for(actor, generation, chat["model"])
        tokenizer = catalog.get(chat["model"]).deployments[0].upstream_model
        tools = orjson.dumps(chat.get("tools") or []).decode() if chat.get("tools") else ""
        tokens = count_messages(tokenizer, chat["messages"])[0] + count_text(tokenizer, tools)[0]
    except SeamlineError as exc:
        await send_error(send, exc, body=MESSAGES.error_body)
        return
    await send_json(send, 200, {"input_tokens": tokens})


async def legacy_completions(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/completions`` is OpenAI's legacy text API, which no current chat model
    serves: say which route to use rather than answer a bare 404."""
    await send_error(
        send,
        NotFound(
            "/v1/completions (the legacy text completions API) is not served; "
            "send the prompt as a user message to POST /v1/chat/completions",
            code="unsupported_route",
        ),
    )


async def post_feedback(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/feedback``: a user's score of a call (or a session) of the key's project;
    201 when new, 200 when it replaced that user's earlier score on the metric."""
    try:
        body = parse_json_object(await read_body(receive, gateway.config.max_body_bytes))
        actor, _ = await gateway.view.authenticate(bearer_token(scope))
        if not actor.can(KeyScope.INVOKE):
            raise PermissionDenied("this API key lacks the 'invoke' scope", code="missing_scope")
        given = parse_feedback(body)
        store = FeedbackStore(gateway.registry.db)
        if not await asyncio.to_thread(store.known, actor.project.id, given):
            # A call answered a moment ago may still wait in a writer's batch: this worker's
            # is flushed, another worker's writes within its flush interval.
            await asyncio.to_thread(gateway.writer.flush, FEEDBACK_WAIT_S)
            await asyncio.sleep(FLUSH_INTERVAL_S)
        stored, created = await asyncio.to_thread(
            store.record, actor.project.id, given, source="api"
        )
    except SeamlineError as exc:
        await send_error(send, exc)
        return
    except Exception:  # the store failing (locked, down): nothing was kept, say so
        log.exception("storing feedback failed")
        await send_error(send, Unavailable("feedback could not be stored now; send it again"))
        return
    await send_json(send, 201 if created else 200, {"object": "feedback", **stored})
