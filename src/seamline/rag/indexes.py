"""Indexes for one actor: ingest into a new version, and query a version by reference
(``docs``, ``docs@production``, ``docs@3``), always within the actor's project.

The embedded store and MiniLM are the defaults; a query is embedded by the same model
(and model version) as the index it searches, else it is refused with both named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seamline.core.errors import InvalidInput, NotFound
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
    def __init__(self, registry: Registry, actor: Actor, store: ChunkStore, embedder: Embedder):
        self.registry = registry
        self.actor = actor
        self.store = store
        self.embedder = embedder

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
        hits = search(
            self.store, self.embedder, self.actor.project.id, record, text, k, hybrid, where
        )
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
    embedding = record.content.get("embedding") or {}
    if embedding.get("version") != embedder.version:
        raise InvalidInput(
            f"index {record.name}@{record.number} was embedded by {embedding.get('model')} "
            f"({str(embedding.get('version'))[:12]}); this query model is "
            f"{embedder.model} ({embedder.version[:12]}): re-ingest it",
            code="embedding_mismatch",
        )
    snapshot = record.content["store"]["snapshot"]
    if not store.has(project_id, snapshot):
        raise InvalidInput(
            f"the chunks of index {record.name}@{record.number} are not in this index store "
            "(was index_store_url changed?): re-ingest it",
            code="index_not_in_store",
        )
    vector = embedder.embed([text])[0]
    return store.search(
        project_id, snapshot, vector, k, query_text=text if hybrid else None, where=where
    )


def _summary(report: IngestReport) -> str:
    return (
        f"ingest: {len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.removed)} removed; {report.embedded} chunks embedded, {report.reused} reused"
    )
