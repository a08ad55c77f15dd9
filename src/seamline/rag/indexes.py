"""Indexes for one actor: ingest into a new version, and query a version by reference
(``docs``, ``docs@production``, ``docs@3``), always within the actor's project.

The embedded store and MiniLM are the defaults; a query is embedded by the same model
(and model version) as the index it searches, else it is refused with both named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seamline.core.errors import InvalidInput, NotFound
from seamline.providers.local_models import LOCAL_EMBEDDING_MODEL
from seamline.rag.chunking import ChunkerConfig
from seamline.rag.ingest import INDEX, Embedder, IngestReport, ingest
from seamline.rag.readers import UnreadableSource
from seamline.rag.store import ChunkFilter, ChunkStore, Hit
from seamline.registry import Actor, Registry
from seamline.registry.loader import draft_from_mapping
from seamline.registry.records import PushedItem, VersionRecord


def local_embedder() -> Embedder:
    from seamline.providers import local_vectors
    from seamline.providers.minilm import DIMENSIONS

    try:
        return Embedder(
            local_vectors.MODEL_NAME,
            local_vectors.model_version(),
            DIMENSIONS,
            local_vectors.embed,
            local_vectors.tokenizer(),
        )
    except local_vectors.LocalModelMissing as exc:
        raise InvalidInput(str(exc), code="embedding_model_missing") from None


@dataclass(frozen=True)
class Retrieved:
    index: VersionRecord
    hits: list[Hit]

    def as_record(self) -> dict[str, Any]:
        return {
            "index": f"{self.index.name}@{self.index.number}",
            "hits": [
                {
                    "chunk_id": hit.chunk.chunk_id,
                    "score": round(hit.score, 6),
                    "source": hit.chunk.source_uri,
                    "modified": hit.chunk.source_modified,
                    "text": hit.chunk.text,
                }
                for hit in self.hits
            ],
        }


class Indexes:
    """``embedder`` embeds what is ingested; a query is embedded by the model that embedded
    the version it searches: ``embedder`` when it is that model, else the one
    ``embedder_for`` gives for the model's name."""

    def __init__(
        self,
        registry: Registry,
        actor: Actor,
        store: ChunkStore,
        embedder: Embedder,
        embedder_for: Callable[[str], Embedder] | None = None,
    ):
        self.registry = registry
        self.actor = actor
        self.store = store
        self.embedder = embedder
        self.embedder_for = embedder_for

    def ingest(
        self,
        paths: list[Path],
        name: str,
        chunker: ChunkerConfig,
        *,
        message: str = "",
        description: str = "",
    ) -> tuple[PushedItem, IngestReport]:
        try:
            previous: dict[str, Any] | None = self.registry.get_version(
                self.actor, INDEX, name, None
            ).content
        except NotFound:
            previous = None
        try:
            content, report = ingest(
                paths,
                name,
                project_id=self.actor.project.id,
                store=self.store,
                embedder=self.embedder,
                chunker=chunker,
                previous=previous,
                description=description or (previous or {}).get("description", ""),
            )
        except UnreadableSource as exc:  # nothing at all could be read
            raise InvalidInput(str(exc), code="no_readable_source") from None
        draft = draft_from_mapping(content, source=f"{name} (ingest)")
        [pushed] = self.registry.push(self.actor, [draft], message=message or _summary(report))
        return pushed, report

    def query(
        self,
        ref: str,
        text: str,
        k: int = 5,
        *,
        hybrid: bool = False,
        where: ChunkFilter | None = None,
    ) -> Retrieved:
        name, _, version = ref.partition("@")
        record = self.registry.get_version(self.actor, INDEX, name, version or None)
        model = embedding_model(record)
        embedder = self.embedder
        if model != embedder.model and self.embedder_for is not None:
            embedder = self.embedder_for(model)
        hits = search(self.store, embedder, self.actor.project.id, record, text, k, hybrid, where)
        return Retrieved(record, hits)


def search(
    store: ChunkStore,
    embedder: Embedder,
    project_id: int,
    record: VersionRecord,
    text: str,
    k: int,
    hybrid: bool = False,
    where: ChunkFilter | None = None,
) -> list[Hit]:
    """The ``k`` chunks of index version ``record`` nearest ``text``; InvalidInput when
    ``embedder`` is not the model the index was embedded with."""
    check_embedding(record, embedder.model, embedder.version)
    vector = embedder.embed([text])[0]
    return search_vector(store, project_id, record, vector, text, k, hybrid, where)


def check_embedding(record: VersionRecord, model: str, version: str) -> None:
    """InvalidInput unless ``version`` of ``model`` embedded index version ``record``."""
    embedding = record.content.get("embedding") or {}
    if embedding.get("version") != version:
        raise InvalidInput(
            f"index {record.name}@{record.number} was embedded by {embedding.get('model')} "
            f"({str(embedding.get('version'))[:40]}); this query model is "
            f"{model} ({version[:40]}): re-ingest it",
            code="embedding_mismatch",
        )


def search_vector(
    store: ChunkStore,
    project_id: int,
    record: VersionRecord,
    vector: Any,
    text: str,
    k: int,
    hybrid: bool = False,
    where: ChunkFilter | None = None,
) -> list[Hit]:
    """:func:`search` with the query already embedded (by a model called elsewhere)."""
    snapshot = record.content["store"]["snapshot"]
    if not store.has(project_id, snapshot):
        raise InvalidInput(
            f"the chunks of index {record.name}@{record.number} are not in this index store "
            "(was index_store_url changed?): re-ingest it",
            code="index_not_in_store",
        )
    return store.search(
        project_id, snapshot, vector, k, query_text=text if hybrid else None, where=where
    )


def embedding_model(record: VersionRecord) -> str:
    """The model that embedded index version ``record``."""
    return str((record.content.get("embedding") or {}).get("model") or LOCAL_EMBEDDING_MODEL)


def _summary(report: IngestReport) -> str:
    return (
        f"ingest: {len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.removed)} removed; {report.embedded} chunks embedded, {report.reused} reused"
    )
