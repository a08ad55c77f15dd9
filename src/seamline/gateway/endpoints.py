"""The smaller ``/v1`` endpoints: embeddings and the model list."""

from __future__ import annotations

import asyncio
import time

import orjson

from seamline.core.errors import InvalidInput, SeamlineError
from seamline.gateway.core import Gateway
from seamline.gateway.server.http import (
    Receive,
    Scope,
    Send,
    bearer_token,
    cancelled,
    fail_call,
    new_event,
    parse_json_object,
    read_body,
    send_bytes,
    send_error,
    send_json,
)
from seamline.gateway.stages.calls import admit_caller, check_model, limit_scopes, most_it_can_cost
from seamline.gateway.stages.request import upstream_body
from seamline.gateway.stages.router import Attempt
from seamline.providers.base import ChatResult, Deployment
from seamline.telemetry.tokens import count_text

EMBEDDINGS = "/v1/embeddings"


async def embeddings(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    event = new_event(scope, EMBEDDINGS)
    headers = {"x-seamline-request-id": event.request_id}
    try:
        body = parse_json_object(await read_body(receive, gateway.config.max_body_bytes))
        actor, generation = await gateway.view.authenticate(bearer_token(scope))
        admit_caller(event, actor)
        model, text = body.get("model"), body.get("input")
        if not isinstance(model, str) or not model:
            raise InvalidInput("'model' is required and must be a string", param="model")
        if not isinstance(text, (str, list)) or not text:
            raise InvalidInput("'input' must be a string or a non-empty array", param="input")
        event.model_requested = model
        check_model(actor, model)
        scopes = limit_scopes(gateway.config, actor, model)
        headers.update((await gateway.limiter.admit(scopes)).headers())
        texts = [text] if isinstance(text, str) else [str(t) for t in text]
        catalog = await gateway.catalog_for(actor, generation, model)
        reservation = await gateway.budgets.reserve(
            actor,
            lambda: most_it_can_cost(
                gateway.router,
                catalog,
                model,
                lambda tokenizer: _count(tokenizer, texts, upper_bound=True)[0],
                0,
            ),
        )
        attempt = Attempt()

        async def call(deployment: Deployment) -> ChatResult:
            return await gateway.provider(deployment).embeddings(
                deployment, upstream_body(body, model=deployment.upstream_model)
            )

        try:
            result = await gateway.router.call(model, attempt, call, catalog)
            assert attempt.deployment is not None
            if result.usage is not None:
                event.prompt_tokens = result.usage.prompt_tokens
            else:
                event.prompt_tokens, event.tokens_estimated = _count(
                    attempt.deployment.upstream_model, texts
                )
            event.cost_usd = attempt.deployment.price.cost(event.prompt_tokens, 0)
        finally:
            attempt.record(event)
            await gateway.budgets.settle(reservation, event.cost_usd)
            await gateway.limiter.add_tokens(scopes, event.prompt_tokens)
        await send_bytes(send, 200, result.raw or orjson.dumps(result.body), headers)
    except asyncio.CancelledError:
        cancelled(event)
        raise
    except Exception as exc:
        await fail_call(send, event, exc, headers, response_started=False)
    finally:
        gateway.emit(event)


def _count(model: str, texts: list[str], *, upper_bound: bool = False) -> tuple[int, bool]:
    counts = [count_text(model, t, upper_bound=upper_bound) for t in texts]
    return sum(c[0] for c in counts), any(c[1] for c in counts)


async def list_models(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        actor, _ = await gateway.view.authenticate(bearer_token(scope))
    except SeamlineError as exc:
        await send_error(send, exc)
        return
    created = int(time.time())
    data = [
        {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "seamline",
            "kind": entry.kind,
        }
        for name, entry in sorted(gateway.catalog.entries.items())
        if actor.may_call(name)
    ]
    await send_json(send, 200, {"object": "list", "data": data})
