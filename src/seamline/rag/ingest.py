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
from seamline.rag.chunking import ChunkerConfig, chunk_text
from seamline.rag.readers import Source, UnreadableSource, read_source, sources_in
from seamline.rag.store import ChunkStore, StoredChunk

INDEX = "index"
STORE_KIND = "sqlite-vec"


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
            "no readable source: "
            + "; ".join(f"{where}: {why}" for where, why in report.errors.items())
            if report.errors
            else "no source found"
        )
    _diff(sources, previous, embedder, chunker, report)
    chunks: list[StoredChunk] = []
    per_source: dict[str, int] = {}
    for source in sources:
        pieces = chunk_text(source.text, (source.uri, source.sha256), chunker, embedder.tokenizer)
        per_source[source.uri] = len(pieces)
        chunks += [
            StoredChunk(
                piece.id,
                source.uri,
                source.sha256,
                isoformat(source.modified),
                piece.position,
                piece.text,
            )
            for piece in pieces
        ]
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
        vectors = _vectors(chunks, project_id, store, embedder, report)
        store.write(project_id, snapshot, embedder.version, chunks, vectors)
    else:
        report.reused = len(chunks)
    report.chunks = len(chunks)
    report.seconds = time.perf_counter() - started
    content = {
        "kind": INDEX,
        "name": name,
        "description": description,
        "embedding": embedding,
        "chunker": chunker.model_dump(),
        "store": {"kind": STORE_KIND, "snapshot": snapshot},
        "chunks": len(chunks),
        "sources": lineage,
    }
    return content, report


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


def _vectors(
    chunks: list[StoredChunk],
    project_id: int,
    store: ChunkStore,
    embedder: Embedder,
    report: IngestReport,
) -> Any:
    kept = store.vectors_of(
        project_id, [c.chunk_id for c in chunks], embedder.version, embedder.dimensions
    )
    missing = [c for c in chunks if c.chunk_id not in kept]
    started = time.perf_counter()
    fresh = embedder.embed([c.text for c in missing]) if missing else None
    report.embed_seconds = time.perf_counter() - started
    if fresh is not None:
        kept.update({c.chunk_id: fresh[i] for i, c in enumerate(missing)})
    report.embedded, report.reused = len(missing), len(chunks) - len(missing)
    matrix = (
        np.stack([kept[c.chunk_id] for c in chunks])
        if chunks
        else np.zeros((0, embedder.dimensions), dtype=np.float32)
    )
    if matrix.shape[1] != embedder.dimensions:
        raise ValueError(
            f"{embedder.model} gave {matrix.shape[1]} dimensions, not {embedder.dimensions}"
        )
    return matrix
