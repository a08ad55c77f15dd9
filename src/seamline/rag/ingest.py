"""Ingesting sources into a new version of an ``index`` artefact.

The given paths are the corpus: each readable file is a source of the new version, and a
source of the previous version that is not among them is removed. Sources whose bytes did
not change keep their chunks and vectors (chunk ids derive from the source's content hash
and the chunker settings, and vectors are reused only from the same embedding model):
only new and changed sources are embedded. A change of embedding model or chunker
re-embeds everything, into a new version. A file that cannot be read is reported with its
reason and left out; the rest of the ingest completes.

The version's content records its lineage: every source's URI, content hash and
modification time, the chunker settings, the embedding model and its version, and the
store snapshot holding its chunks. The snapshot is written completely before the version
is pushed, so a version never points at a half-written index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seamline.core.canonical import content_hash
from seamline.core.clock import isoformat
from seamline.core.errors import InvalidInput, SeamlineError
from seamline.rag.chunking import ChunkerConfig, chunk_text
from seamline.rag.readers import Source, UnreadableSource, read_source, sources_in
from seamline.rag.store import ChunkStore, StoredChunk

INDEX = "index"
EMBED_BATCH = 64  # chunks per call to the embedding model


@dataclass(frozen=True)
class Embedder:
    """What embeds chunks and queries, and what an index records of it."""

    model: str
    version: str
    dimensions: int
    embed: Callable[[list[str]], Any]
    tokenizer: Any


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # uri or path: why it was left out
    chunks: int = 0
    embedded: int = 0  # chunks embedded by this ingest
    reused: int = 0  # chunks whose vectors were reused
    embed_seconds: float = 0.0
    seconds: float = 0.0

    def as_record(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": len(self.unchanged),
            "errors": self.errors,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "reused": self.reused,
            "embed_seconds": round(self.embed_seconds, 3),
            "seconds": round(self.seconds, 3),
        }


def ingest(
    paths: list[Path],
    name: str,
    *,
    project_id: int,
    store: ChunkStore,
    embedder: Embedder,
    chunker: ChunkerConfig,
    previous: Mapping[str, Any] | None = None,
    description: str = "",
) -> tuple[dict[str, Any], IngestReport]:
    """The content of the new index version (its snapshot already written) and the report."""
    started = time.perf_counter()
    report = IngestReport()
    sources: list[Source] = []
    for path in sources_in(paths):
        try:
            sources.append(read_source(path))
        except UnreadableSource as exc:
            report.errors[str(path)] = str(exc)
    if not sources:
        raise UnreadableSource(
            f"no readable source: {_reasons(report)}" if report.errors else "no source found"
        )
    by_source = {source.uri: _chunks(source, chunker, embedder) for source in sources}
    vectors = _vectors(by_source, project_id, store, embedder, report)
    sources = [s for s in sources if s.uri not in report.errors]  # left out: not embedded
    if not sources:
        raise UnreadableSource(f"nothing could be embedded: {_reasons(report)}")
    _diff(sources, previous, embedder, chunker, report)
    chunks = [chunk for source in sources for chunk in by_source[source.uri]]
    per_source = {source.uri: len(by_source[source.uri]) for source in sources}
    embedding = {
        "model": embedder.model,
        "version": embedder.version,
        "dimensions": embedder.dimensions,
    }
    lineage = [
        {
            "uri": s.uri,
            "sha256": s.sha256,
            "modified": isoformat(s.modified),
            "chunks": per_source[s.uri],
        }
        for s in sorted(sources, key=lambda s: s.uri)
    ]
    snapshot = content_hash(
        {
            "embedding": embedding,
            "chunker": chunker.model_dump(),
            "sources": [(s["uri"], s["sha256"]) for s in lineage],
        }
    )
    if not store.has(project_id, snapshot):
        matrix = (
            np.stack([vectors[c.chunk_id] for c in chunks])
            if chunks
            else np.zeros((0, embedder.dimensions), dtype=np.float32)
        )
        store.write(project_id, snapshot, embedder.version, chunks, matrix)
    report.chunks = len(chunks)
    report.seconds = time.perf_counter() - started
    content = {
        "kind": INDEX,
        "name": name,
        "description": description,
        "embedding": embedding,
        "chunker": chunker.model_dump(),
        "store": {"kind": store.kind, "snapshot": snapshot},
        "chunks": len(chunks),
        "sources": lineage,
    }
    return content, report


def _reasons(report: IngestReport) -> str:
    return "; ".join(f"{where}: {why}" for where, why in report.errors.items())


def _diff(
    sources: list[Source],
    previous: Mapping[str, Any] | None,
    embedder: Embedder,
    chunker: ChunkerConfig,
    report: IngestReport,
) -> None:
    before = {s["uri"]: s["sha256"] for s in (previous or {}).get("sources", [])}
    same_setup = previous is not None and (
        previous.get("embedding", {}).get("version") == embedder.version
        and previous.get("chunker") == chunker.model_dump()
    )
    for source in sources:
        if source.uri not in before:
            report.added.append(source.uri)
        elif before[source.uri] != source.sha256 or not same_setup:
            report.changed.append(source.uri)
        else:
            report.unchanged.append(source.uri)
    now = {s.uri for s in sources}
    report.removed = sorted(uri for uri in before if uri not in now)


def _chunks(source: Source, chunker: ChunkerConfig, embedder: Embedder) -> list[StoredChunk]:
    pieces = chunk_text(source.text, (source.uri, source.sha256), chunker, embedder.tokenizer)
    modified = isoformat(source.modified)
    return [
        StoredChunk(piece.id, source.uri, source.sha256, modified, piece.position, piece.text)
        for piece in pieces
    ]


def _vectors(
    by_source: Mapping[str, list[StoredChunk]],
    project_id: int,
    store: ChunkStore,
    embedder: Embedder,
    report: IngestReport,
) -> dict[str, Any]:
    """Every chunk's vector: reused from the store where the same model embedded it, else
    embedded ``EMBED_BATCH`` at a time. A batch the model refuses is retried source by
    source, so a refusal costs only the sources it concerns (each reported in
    ``report.errors``); a failure that is not about the input (the model unreachable, a
    rate limit, a budget) stops the ingest, so no version leaves documents out for it."""
    ids = [c.chunk_id for chunks in by_source.values() for c in chunks]
    vectors = store.vectors_of(project_id, ids, embedder.version, embedder.dimensions)
    report.reused = len(vectors)
    pending = [
        (uri, chunk)
        for uri, chunks in by_source.items()
        for chunk in chunks
        if chunk.chunk_id not in vectors
    ]
    started = time.perf_counter()
    for start in range(0, len(pending), EMBED_BATCH):
        batch = [
            item for item in pending[start : start + EMBED_BATCH] if item[0] not in report.errors
        ]
        _embed(batch, embedder, vectors, report)
    report.embed_seconds = time.perf_counter() - started
    return vectors


def _embed(
    batch: list[tuple[str, StoredChunk]],
    embedder: Embedder,
    vectors: dict[str, Any],
    report: IngestReport,
) -> None:
    if not batch:
        return
    try:
        found = _embedded(embedder, [chunk for _, chunk in batch])
    except Exception as exc:
        if _not_about_the_input(exc):
            raise
        sources = list(dict.fromkeys(uri for uri, _ in batch))
        if len(sources) == 1:
            report.errors[sources[0]] = f"embedding failed: {exc}"
            return
        for uri in sources:
            _embed([item for item in batch if item[0] == uri], embedder, vectors, report)
        return
    vectors.update(found)
    report.embedded += len(found)


def _not_about_the_input(exc: Exception) -> bool:
    """A failure another try (later, with another key or budget) would not repeat."""
    if isinstance(exc, SeamlineError):
        return exc.status != InvalidInput.status
    return isinstance(exc, OSError | TimeoutError)


def _embedded(embedder: Embedder, chunks: list[StoredChunk]) -> dict[str, Any]:
    matrix = np.asarray(embedder.embed([c.text for c in chunks]), dtype=np.float32)
    if matrix.shape != (len(chunks), embedder.dimensions):
        raise ValueError(
            f"{embedder.model} gave vectors of shape {matrix.shape}, "
            f"not ({len(chunks)}, {embedder.dimensions})"
        )
    return {c.chunk_id: vector for c, vector in zip(chunks, matrix, strict=True)}
