"""The embedded index store at 10,000 and 100,000 chunks: how fast it takes chunks in, how
fast it answers, and how exact its answers are, against sqlite-vec's own search and exact
brute force computed in the same run.

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

import numpy as np

from seamline.providers import local_vectors
from seamline.rag.chunking import ChunkerConfig
from seamline.rag.ingest import Embedder, ingest
from seamline.rag.store import ChunkStore, StoredChunk

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


def measure(size: int, queries: int, rng: np.random.Generator) -> None:
    chunks, vectors = corpus(size, rng)
    with tempfile.TemporaryDirectory() as folder:
        store = ChunkStore(Path(folder) / "indexes.db")
        started = time.perf_counter()
        store.write(PROJECT, "bench", "synthetic", chunks, vectors)
        written = time.perf_counter() - started
        probes = vectors[rng.integers(0, size, queries)] + 0.3 * rng.standard_normal(
            (queries, DIMENSIONS)
        ).astype(np.float32)
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        texts = [" ".join(chunks[int(i)].text.split()[:3]) for i in rng.integers(0, size, queries)]
        exact = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in probes]
        index_of = {c.chunk_id: i for i, c in enumerate(chunks)}

        started = time.perf_counter()
        store.search(PROJECT, "bench", probes[0], 10)
        first_ms = (time.perf_counter() - started) * 1000
        ours, ours_recall = [], []
        for q, truth in zip(probes, exact, strict=True):
            started = time.perf_counter()
            hits = store.search(PROJECT, "bench", q, 10)
            ours.append((time.perf_counter() - started) * 1000)
            ours_recall.append(len(truth & {index_of[h.chunk.chunk_id] for h in hits}) / 10)
        hybrid = []
        for q, text in zip(probes, texts, strict=True):
            started = time.perf_counter()
            store.search(PROJECT, "bench", q, 10, query_text=text)
            hybrid.append((time.perf_counter() - started) * 1000)
        match, match_recall = [], []
        db = store._db  # the baseline reads the same vec0 table through sqlite-vec's MATCH
        for q, truth in zip(probes[: max(queries // 4, 20)], exact, strict=False):
            started = time.perf_counter()
            rows = db.execute(
                f"SELECT rowid FROM vectors_{DIMENSIONS} WHERE embedding MATCH ? AND k = 10 "
                "AND snapshot = ?",
                (q.tobytes(), f"{PROJECT}:bench"),
            ).fetchall()
            match.append((time.perf_counter() - started) * 1000)
            match_recall.append(len(truth & {int(r[0]) - 1 for r in rows}) / 10)
        store.close()
    ours_p50, match_p50 = percentile(ours, 50), percentile(match, 50)
    print(
        f"{size:>8} | {size / written:>10.0f} | {first_ms:>8.1f} | "
        f"{ours_p50:>6.2f} {percentile(ours, 99):>6.2f} {statistics.mean(ours_recall):>6.3f} | "
        f"{percentile(hybrid, 50):>6.2f} {percentile(hybrid, 99):>6.2f} | "
        f"{match_p50:>6.2f} {percentile(match, 99):>6.2f} {statistics.mean(match_recall):>6.3f} | "
        f"{match_p50 / ours_p50:>6.1f}x"
    )


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
        store = ChunkStore(Path(folder) / "indexes.db")
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
    args = parser.parse_args()
    print(
        "chunks   | ingest c/s | first ms | seamline p50 p99  recall | hybrid p50 p99 | "
        "sqlite-vec MATCH p50 p99 recall | MATCH / seamline p50"
    )
    rng = np.random.default_rng(20261129)
    for size in args.sizes:
        measure(size, args.queries, rng)
    if args.embed_sample:
        embedding_figures(args.embed_sample)


if __name__ == "__main__":
    main()
