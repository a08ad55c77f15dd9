"""Embeddings through the gateway's own path: the model's check, limits, budget, router
(retries, fallbacks, breakers) and price, for ``/v1/embeddings`` and for what the gateway
embeds itself: the query of a retrieving prompt whose index was embedded by a configured
model, and ``seamline index ingest --embedding-model``.

An index embedded by a configured model records the model's name and the upstream models
behind it as its embedding version: vectors of two upstream models never meet in one
search, and a replica of the same upstream model (another region, another key) does not
force a re-embedding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from seamline.gateway.catalog import ModelEntry
from seamline.gateway.core import Gateway, GatewayThread
from seamline.gateway.server.http import failures_recorded
from seamline.gateway.stages.calls import admit_caller, check_model, limit_scopes, most_it_can_cost
from seamline.gateway.stages.request import upstream_body
from seamline.gateway.stages.router import Attempt
from seamline.providers.base import ChatResult, Deployment
from seamline.providers.local_models import LOCAL_EMBEDDING_MODEL
from seamline.rag.indexes import local_embedder
from seamline.rag.ingest import Embedder
from seamline.registry import Actor
from seamline.telemetry.event import CallEvent
from seamline.telemetry.tokens import count_text

EMBEDDINGS = "/v1/embeddings"
EMBED_USE_CASE = "rag.embed"  # the use case of the events of the gateway's own embeddings


async def embed(
    gateway: Gateway,
    actor: Actor,
    generation: int | None,
    body: dict[str, Any],
    inputs: list[str | list[int]],
    event: CallEvent,
    headers: dict[str, str] | None = None,
) -> ChatResult:
    """One embeddings call for ``actor``, recorded on ``event`` (tokens, cost, attempts);
    the rate-limit headers for the answer go into ``headers``."""
    model = str(body["model"])
    event.model_requested = model
    check_model(actor, model)
    scopes = limit_scopes(gateway.config, actor, model)
    admitted = (await gateway.limiter.admit(scopes)).headers()
    if headers is not None:
        headers.update(admitted)
    catalog = await gateway.catalog_for(actor, generation, model)
    reservation = await gateway.budgets.reserve(
        actor,
        lambda: most_it_can_cost(
            gateway.router,
            catalog,
            model,
            lambda tokenizer: count_inputs(tokenizer, inputs, upper_bound=True)[0],
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
            event.prompt_tokens, event.tokens_estimated = count_inputs(
                attempt.deployment.upstream_model, inputs
            )
        event.cost_usd = attempt.deployment.price.cost(event.prompt_tokens, 0)
    finally:
        attempt.record(event)
        await gateway.budgets.settle(reservation, event.cost_usd)
        await gateway.limiter.add_tokens(scopes, event.prompt_tokens)
    return result


def count_inputs(
    model: str, inputs: list[str | list[int]], *, upper_bound: bool = False
) -> tuple[int, bool]:
    """Tokens read: a token-id array counts as its length, exactly."""
    counts = [
        count_text(model, item, upper_bound=upper_bound)
        if isinstance(item, str)
        else (len(item), False)
        for item in inputs
    ]
    return sum(c[0] for c in counts), any(c[1] for c in counts)


def embedding_version(entry: ModelEntry) -> str:
    """What an index records as the version of a configured embedding model."""
    return f"{entry.name}:" + "+".join(sorted({d.upstream_model for d in entry.deployments}))


class ModelEmbeddings:
    """A configured embedding model, called in-process for ``actor``: each call is an
    event of its own (``use_case`` ``rag.embed``; a retrieval's carries the live call as
    its parent), so what the gateway spends embedding shows in ``seamline cost``."""

    def __init__(
        self, gateway: Gateway, actor: Actor, model: str, live: CallEvent | None = None
    ) -> None:
        self.gateway = gateway
        self.actor = actor
        self.model = model
        self.live = live

    async def version(self) -> str:
        catalog = await self.gateway.catalog_for(self.actor, None, self.model)
        return embedding_version(catalog.get(self.model))

    async def __call__(self, texts: list[str]) -> Any:
        """Unit vectors of ``texts`` (float32, a row each)."""
        event = CallEvent(
            route=EMBEDDINGS,
            parent_request_id=self.live.request_id if self.live else None,
            trace_id=self.live.trace_id if self.live else CallEvent().trace_id,
        )
        event.use_case = EMBED_USE_CASE
        admit_caller(event, self.actor)
        inputs: list[str | list[int]] = list(texts)
        try:
            async with failures_recorded(event):
                result = await embed(
                    self.gateway,
                    self.actor,
                    None,
                    {"model": self.model, "input": inputs},
                    inputs,
                    event,
                )
        finally:
            self.gateway.emit(event)
        return unit_rows(result)


def unit_rows(result: ChatResult) -> Any:
    """An embeddings answer's vectors in input order, scaled to unit length (searches rank
    by dot product)."""
    body = result.body or orjson.loads(result.raw or b"{}")
    rows = sorted(body.get("data") or [], key=lambda item: int(item.get("index", 0)))
    matrix = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def blocking_embedder(thread: GatewayThread | None, actor: Actor, model: str) -> Embedder:
    """An index embedder (synchronous, as ingest is): the embedded MiniLM in-process, or a
    configured model called through ``thread``'s gateway. A configured model's dimensions
    are asked of it once; its chunks are cut by the embedded MiniLM's tokenizer (sizes are
    counted in those tokens)."""
    if model == LOCAL_EMBEDDING_MODEL:
        return local_embedder()
    assert thread is not None, "a configured model is called through a gateway"
    embeddings = ModelEmbeddings(thread.gateway, actor, model)
    version = thread.wait(embeddings.version())
    dimensions = int(thread.wait(embeddings(["dimensions"])).shape[1])
    return Embedder(
        model,
        version,
        dimensions,
        lambda texts: thread.wait(embeddings(texts)),
        local_embedder().tokenizer,
    )
