"""What an index's chunks are kept in: a store holds *snapshots* (the chunks of one index
version, with their vectors), searched by vector, optionally fused with a keyword search.

Two stores ship: the embedded SQLite file in the seamline home (``store_sqlite``, the
default) and PostgreSQL with pgvector (``store_pgvector``, set ``index_store_url``) for
indexes that outgrow one file or must be shared by many gateway replicas. Both keep every
row under its project, write a snapshot whole or not at all, and answer the same queries
(the test suite runs the same retrieval tests on both). Stores a team already runs
(Qdrant, Pinecone, Weaviate) stay where they are: the application retrieves and reports
what it retrieved (``seamline.retrieval``, the SDK's ``RetrievalReport``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from seamline.core.clock import as_utc
from seamline.core.settings import Settings

RRF_K = 60  # reciprocal-rank fusion's constant (Cormack et al.): 1 / (60 + rank)
STORE_FILE = "indexes.db"


@dataclass(frozen=True)
class StoredChunk:
    chunk_id: str
    source_uri: str
    source_sha256: str
    source_modified: str
    position: int
    text: str


@dataclass(frozen=True)
class Hit:
    chunk: StoredChunk
    score: float  # cosine for vector search; fused rank score for hybrid


@dataclass(frozen=True)
class ChunkFilter:
    """Which chunks a search may return, by their source: a glob over its URI
    (``*/policies/eu/*``), and a time its text must have changed after (ISO 8601)."""

    source: str | None = None
    modified_after: str | None = None

    def allowed(self, sources: Iterable[tuple[str, str]]) -> list[str]:
        """The URIs among ``(uri, modified)`` pairs that pass."""
        after = None if self.modified_after is None else _instant(self.modified_after)
        return sorted(
            {
                uri
                for uri, modified in sources
                if (self.source is None or fnmatch.fnmatchcase(uri, self.source))
                and (after is None or _instant(modified) > after)
            }
        )


def _instant(value: str) -> datetime:
    return as_utc(datetime.fromisoformat(value))


class ChunkStore(Protocol):
    kind: str  # recorded in each index version: "sqlite-vec" or "pgvector"

    def has(self, project_id: int, snapshot: str) -> bool: ...

    def write(
        self,
        project_id: int,
        snapshot: str,
        embedding: str,
        chunks: Sequence[StoredChunk],
        vectors: Any,
    ) -> None:
        """Write a whole snapshot, or nothing (a snapshot already there is kept)."""

    def search(
        self,
        project_id: int,
        snapshot: str,
        query_vector: Any,
        k: int,
        *,
        query_text: str | None = None,
        where: ChunkFilter | None = None,
    ) -> list[Hit]:
        """The ``k`` chunks nearest the query by cosine, or with ``query_text`` the fusion
        (:func:`fuse`) of that ranking and a keyword ranking; only chunks ``where`` allows.
        KeyError: no such snapshot."""

    def vectors_of(
        self, project_id: int, chunk_ids: Sequence[str], embedding: str, dimensions: int
    ) -> dict[str, Any]:
        """Vectors already stored for these chunk ids by the same embedding model (in any
        snapshot of the project): what a re-ingest reuses instead of embedding again."""

    def chunks_by_id(self, project_id: int, chunk_ids: Sequence[str]) -> dict[str, StoredChunk]:
        """The project's stored chunks with these ids (in any snapshot: a chunk id names
        its text, source and position, so every copy is the same)."""

    def close(self) -> None: ...


def open_store(settings: Settings) -> ChunkStore:
    """The store ``settings`` name: PostgreSQL with pgvector at ``index_store_url``, else
    the embedded SQLite file in the home."""
    if settings.index_store_url:
        from seamline.rag.store_pgvector import PgvectorChunkStore

        return PgvectorChunkStore(
            settings.index_store_url, ef_search=settings.index_store_ef_search
        )
    from seamline.rag.store_sqlite import SqliteChunkStore

    return SqliteChunkStore(settings.home / STORE_FILE)


def keywords(text: str) -> list[str]:
    """The words of a query for a keyword search: letters and digits, nothing a query
    language could read as an operator."""
    return "".join(c if c.isalnum() else " " for c in text).split()


def fuse(by_vector: Sequence[Any], by_keyword: Sequence[Any], k: int) -> list[tuple[Any, float]]:
    """Reciprocal-rank fusion of two rankings of row keys: the best ``k`` with their fused
    scores. Ranks, not scores, are summed, so cosines and keyword scores need no common
    scale."""
    fused: dict[Any, float] = {}
    for ranking in (by_vector, by_keyword):
        for rank, key in enumerate(ranking):
            fused[key] = fused.get(key, 0.0) + 1 / (RRF_K + rank + 1)
    best = sorted(fused, key=lambda key: -fused[key])[:k]
    return [(key, fused[key]) for key in best]
