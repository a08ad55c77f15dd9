"""The ``retrieve`` stage of DESIGN.md: for a prompt that declares ``retrieval``, the chunks
of its index version nearest the call's query, rendered into the prompt's variable.

The query is the spec's template over the call's variables; the index version is what the
spec's reference points at now (an alias moved or rolled back is seen on the next call).
The chunks fill the spec's variable, one paragraph each as ``[chunk id] text``, and the
variable is marked untrusted, so the guards' indirect-injection rules read it as retrieved
text. The event records the index version, the chunk ids and scores, how many chunks went
into the prompt, and the time retrieval took. Search runs off the event loop (embedding
the query is CPU work); it only ever reads the caller's project.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

from seamline.core.clock import isoformat
from seamline.core.errors import InvalidInput
from seamline.core.settings import RagConfig
from seamline.gateway.stages.registry_view import RegistryView
from seamline.gateway.stages.request import ChatRequest, ReportedRetrieval
from seamline.providers.local_models import LOCAL_EMBEDDING_MODEL
from seamline.rag.freshness import FreshnessTracker
from seamline.rag.indexes import (
    check_embedding,
    embedding_model,
    local_embedder,
    search,
    search_vector,
)
from seamline.rag.online import RagSample, RetrievedChunk
from seamline.rag.store import ChunkFilter, ChunkStore
from seamline.registry import Actor
from seamline.registry.prompt import Prompt
from seamline.registry.specs import RetrievalFilters
from seamline.registry.templating import TemplateError, render_template
from seamline.telemetry.event import STATUS_OK, CallEvent
from seamline.telemetry.tokens import message_text


async def retrieve(
    view: RegistryView,
    open_store: Callable[[], Awaitable[ChunkStore]],
    actor: Actor,
    generation: int | None,
    prompt: Prompt,
    request: ChatRequest,
    event: CallEvent,
    tracker: FreshnessTracker | None = None,
    embeddings_for: Callable[[str], QueryEmbeddings] | None = None,
) -> None:
    """Fill ``request``'s retrieval variable (in place: a shadow call renders the same
    chunks), when ``prompt`` retrieves; ``tracker`` learns which index version it read.
    The query is embedded by the model that embedded the index: the embedded MiniLM
    in-process, or a configured model through ``embeddings_for``."""
    spec = prompt.spec.retrieval
    if spec is None:
        return
    started = time.perf_counter()
    try:
        query = render_template(spec.query, dict(request.variables)).strip()
    except TemplateError as exc:
        raise InvalidInput(
            f"retrieval query of {prompt.ref}: {exc}", code="template_error"
        ) from None
    if not query:
        raise InvalidInput(
            f"the retrieval query of {prompt.ref} is empty: pass the variables it uses",
            code="empty_retrieval_query",
        )
    record = await view.index_version(actor, generation, spec.index)
    store = await open_store()  # only a prompt that retrieves opens the index store
    if tracker is not None:
        tracker.used(actor.project.name, record)
    where = _filter(spec.filters, request, event) if spec.filters else None
    model = embedding_model(record)
    if model == LOCAL_EMBEDDING_MODEL or embeddings_for is None:
        hits = await asyncio.to_thread(
            search,
            store,
            local_embedder(),
            actor.project.id,
            record,
            query,
            spec.k,
            spec.hybrid,
            where,
        )
    else:
        embeddings = embeddings_for(model)
        check_embedding(record, model, await embeddings.version())
        vector = (await embeddings([query]))[0]
        hits = await asyncio.to_thread(
            search_vector,
            store,
            actor.project.id,
            record,
            vector,
            query,
            spec.k,
            spec.hybrid,
            where,
        )
    request.variables[spec.variable] = "\n\n".join(
        f"[{hit.chunk.chunk_id}] {hit.chunk.text}" for hit in hits
    )
    request.untrusted_variables = request.untrusted_variables | {spec.variable}
    request.retrieval_query = query
    request.retrieved = tuple(
        RetrievedChunk(
            hit.chunk.chunk_id,
            hit.chunk.text,
            hit.score,
            hit.chunk.source_uri,
            hit.chunk.source_modified,
        )
        for hit in hits
    )
    event.index_version = f"{record.name}@{record.number}"
    event.chunk_ids = [hit.chunk.chunk_id for hit in hits]
    event.chunk_scores = [round(hit.score, 6) for hit in hits]
    event.rag_chunks_used = len(hits)
    event.retrieval_ms = (time.perf_counter() - started) * 1000


class QueryEmbeddings(Protocol):
    """A configured embedding model (``gateway.embedding.ModelEmbeddings``)."""

    async def version(self) -> str: ...

    async def __call__(self, texts: list[str]) -> Any: ...


def _filter(filters: RetrievalFilters, request: ChatRequest, event: CallEvent) -> ChunkFilter:
    """The spec's filters for this call: its source glob rendered with the call's
    variables (their glob characters escaped: a caller passing ``*`` as its region must not
    widen the filter to every region), its age limit counted back from the call's time."""
    literal = {
        name: _glob_literal(value) if isinstance(value, str) else value
        for name, value in request.variables.items()
    }
    try:
        source = None if filters.source is None else render_template(filters.source, literal)
    except TemplateError as exc:
        raise InvalidInput(f"retrieval source filter: {exc}", code="template_error") from None
    after = (
        None
        if filters.max_age_days is None
        else isoformat(event.time - timedelta(days=filters.max_age_days))
    )
    return ChunkFilter(source, after)


def _glob_literal(text: str) -> str:
    """``text`` matching only itself in an ``fnmatch`` glob."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def record_reported_retrieval(reported: ReportedRetrieval, event: CallEvent) -> None:
    """An application's own retrieval (``seamline.retrieval``), on the event as if the
    gateway had retrieved: the same fields, the same reports."""
    event.index_version = reported.index
    event.chunk_ids = reported.chunk_ids
    event.chunk_scores = reported.scores
    event.rag_chunks_used = len(reported.chunk_ids)
    event.retrieval_ms = reported.retrieval_ms


def rag_sample(
    config: RagConfig, request: ChatRequest, event: CallEvent, content_logging: str
) -> RagSample | None:
    """The call's retrieval and answer for online scoring, when the call retrieved (here or
    in the application, as reported), was answered, and falls in its route's sample."""
    if event.status != STATUS_OK or event.index_version is None or event.project_id is None:
        return None
    rate, freshness_days = config.for_call(event.route, event.prompt_name)
    if rate <= 0 or random.random() >= rate:
        return None
    reported = request.reported_retrieval
    if reported is not None:
        query, chunks = reported.query or _last_user_text(request), tuple(reported.chunks)
    else:
        query, chunks = request.retrieval_query or "", request.retrieved
    answer = message_text((event.response_content or {}).get("content"))
    if not query or not answer or not chunks:
        return None
    return RagSample(
        request_id=event.request_id,
        project_id=event.project_id,
        time=event.time,
        route=event.route,
        prompt=f"{event.prompt_name}@{event.prompt_version}" if event.prompt_name else None,
        index=event.index_version,
        query=query,
        answer=answer,
        chunks=chunks,
        freshness_limit=None if freshness_days is None else timedelta(days=freshness_days),
        keep_text=content_logging == "full",
        judge=config.judge,
        external=reported is not None,
    )


def _last_user_text(request: ChatRequest) -> str:
    messages = request.body.get("messages") or []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return message_text(users[-1].get("content")) if users else ""
