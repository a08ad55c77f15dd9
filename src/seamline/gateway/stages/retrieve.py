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
import time

from seamline.core.errors import InvalidInput
from seamline.gateway.stages.registry_view import RegistryView
from seamline.gateway.stages.request import ChatRequest, ReportedRetrieval
from seamline.rag.indexes import local_embedder, search
from seamline.rag.store import ChunkStore
from seamline.registry import Actor
from seamline.registry.prompt import Prompt
from seamline.registry.templating import TemplateError, render_template
from seamline.telemetry.event import CallEvent


async def retrieve(
    view: RegistryView,
    store: ChunkStore,
    actor: Actor,
    generation: int | None,
    prompt: Prompt,
    request: ChatRequest,
    event: CallEvent,
) -> None:
    """Fill ``request``'s retrieval variable (in place: a shadow call renders the same
    chunks), when ``prompt`` retrieves."""
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
    hits = await asyncio.to_thread(
        search, store, local_embedder(), actor.project.id, record, query, spec.k, spec.hybrid
    )
    request.variables[spec.variable] = "\n\n".join(
        f"[{hit.chunk.chunk_id}] {hit.chunk.text}" for hit in hits
    )
    request.untrusted_variables = request.untrusted_variables | {spec.variable}
    event.index_version = f"{record.name}@{record.number}"
    event.chunk_ids = [hit.chunk.chunk_id for hit in hits]
    event.chunk_scores = [round(hit.score, 6) for hit in hits]
    event.rag_chunks_used = len(hits)
    event.retrieval_ms = (time.perf_counter() - started) * 1000


def record_reported_retrieval(reported: ReportedRetrieval, event: CallEvent) -> None:
    """An application's own retrieval (``seamline.retrieval``), on the event as if the
    gateway had retrieved: the same fields, the same reports."""
    event.index_version = reported.index
    event.chunk_ids = reported.chunk_ids
    event.chunk_scores = reported.scores
    event.rag_chunks_used = len(reported.chunk_ids)
    event.retrieval_ms = reported.retrieval_ms
