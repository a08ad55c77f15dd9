"""Do reports stay fast as events grow? ``seamline cost`` over a week at ``--events`` events
(1,000,000 by default), read from the hourly rollups, against the same totals computed from
raw events in the same run; how fast events are written with their rollups kept; and the
drift report over the same number of embedded calls (all in one project: the worst case),
which reads every call's id but only a sample of their vectors.

Events are synthetic (a week of calls over 3 projects, 4 models, 5 prompts, 3 use cases,
spread evenly), written in time order the way the gateway's writer writes them:
``insert_events`` in batches of 100, each batch with its rollups in one transaction. On
SQLite (a file in a temporary folder) and on PostgreSQL (the server at ``--postgres``, in a
schema of its own, dropped after; skipped when it cannot be reached). The issue's targets:
the report under 1 s at 1,000,000 events, and writing at least 10,000 events a second with
rollups; the rate without rollups (the first 200,000 events written with the rollups left
out, then deleted) is measured beside it, since the absolute rate is the machine's.

Run: ``.venv/bin/python -m bench.rollups [--events 1000000] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import numpy as np
from sqlalchemy import create_engine, insert, text

from seamline.monitoring.drift_report import drift_report
from seamline.monitoring.embeddings import quantise
from seamline.registry.audit import use_secret
from seamline.registry.identity import ensure_project
from seamline.store.database import Database
from seamline.store.migrate import upgrade
from seamline.store.schema import call_embeddings
from seamline.telemetry import event_insert
from seamline.telemetry.event import CallEvent
from seamline.telemetry.event_insert import insert_events
from seamline.telemetry.traces import GROUPINGS, cost_by, raw_sums_by
from seamline.telemetry.writer import BATCH_SIZE

NOW = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
BATCH = BATCH_SIZE  # as the gateway's writer batches
BASELINE_EVENTS = 200_000
SECRET = b"bench-rollups-secret-0123456789abcdef"


def events(count: int, project_ids: list[int]) -> list[CallEvent]:
    rng = random.Random(7)
    made = []
    for _ in range(count):
        event = CallEvent(route="/v1/chat/completions")
        event.time = NOW - timedelta(seconds=rng.uniform(0, 7 * 86400))
        event.project_id = rng.choice(project_ids)
        event.model_used = rng.choice(["gpt-4o-mini", "gpt-4o", "claude-haiku", "local-smollm2"])
        event.prompt_name = rng.choice(["support", "faq", "summarise", "triage", None])
        event.prompt_version = 1 if event.prompt_name else None
        event.use_case = rng.choice(["chat", "email", None])
        event.status = "ok" if rng.random() < 0.97 else "error"
        event.prompt_tokens, event.completion_tokens = rng.randint(50, 2000), rng.randint(0, 500)
        event.cost_usd = event.prompt_tokens * 1.5e-7 + event.completion_tokens * 6e-7
        event.latency_ms = rng.uniform(100, 5000)
        made.append(event)
    return sorted(made, key=lambda event: event.time)  # as a writer receives them: in time


def measure(name: str, db: Database, count: int) -> None:
    upgrade(db)
    use_secret(db, SECRET)
    with db.write() as conn:
        ids = [ensure_project(conn, f"tenant-{i}", actor="bench")[0].id for i in range(3)]
    made = events(count, ids)
    # The baseline: the same writes without rollups (the first events, then deleted).
    plain = write_rate(db, made[: min(count, BASELINE_EVENTS)], rollups=False)
    with db.write() as conn:
        conn.execute(text("DELETE FROM events"))
    rate = write_rate(db, made, rollups=True)
    print(
        f"{name:<10} | {count:>9} | {rate:>10.0f} | writing, no rollups: {plain:>6.0f}/s | "
        f"rollups cost {1 - rate / plain:.0%} of the rate"
    )
    since = NOW - timedelta(days=7)
    for by in ("model", "project"):
        rolled, raw = [], []
        for _ in range(3):
            began = time.perf_counter()
            with db.read() as conn:
                cost_by(conn, by, since, None, now=NOW)
            rolled.append(time.perf_counter() - began)
            began = time.perf_counter()
            with db.read() as conn:
                raw_sums_by(conn, (by,), since, NOW, None)
            raw.append(time.perf_counter() - began)
        ours, theirs = statistics.median(rolled), statistics.median(raw)
        print(
            f"{name:<10} | {count:>9} | {rate:>10.0f} | cost --by {by:<8} | {ours * 1000:>9.1f} | "
            f"{theirs * 1000:>9.1f} | {theirs / ours:>6.1f}x"
        )
    drift_ms = drift_report_ms(db, made, ids[0])
    print(f"{name:<10} | {count:>9} | {'-':>10} | drift report         | {drift_ms:>9.1f} |")


def write_rate(db: Database, made: list[CallEvent], *, rollups: bool) -> float:
    """Events written a second, in the writer's batches, each batch a transaction."""
    with contextlib.ExitStack() as stack:
        if not rollups:
            stack.enter_context(mock.patch.object(event_insert, "add_to_rollups", _no_rollups))
        started = time.perf_counter()
        for start in range(0, len(made), BATCH):
            with db.write() as conn:
                insert_events(conn, made[start : start + BATCH], postgres=db.is_postgres)
        return len(made) / (time.perf_counter() - started)


def _no_rollups(*_: object, **__: object) -> None:
    return None


def drift_report_ms(db: Database, made: list[CallEvent], project_id: int) -> float:
    """Every event embedded (random vectors) under one project, then the report's time. In
    the second half of the week a fifth of the ``support`` prompt's calls move to a new
    topic, so the report has drifted groups (tested with every permutation) beside groups
    that did not move (whose test stops early)."""
    rng = np.random.default_rng(3)
    topic = rng.standard_normal(384).astype(np.float32)
    middle = NOW - timedelta(days=3, hours=12)
    for start in range(0, len(made), 10_000):
        chunk = made[start : start + 10_000]
        vectors = rng.standard_normal((len(chunk), 384)).astype(np.float32)
        moved = [
            i
            for i, event in enumerate(chunk)
            if event.prompt_name == "support" and event.time >= middle and rng.random() < 0.2
        ]
        vectors[moved] += 0.5 * topic
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = [
            {
                "request_id": event.request_id,
                "project_id": project_id,
                "time": event.time,
                "prompt_name": event.prompt_name,
                "prompt_version": event.prompt_version,
                "use_case": event.use_case,
                "api_key_id": None,
                "model": "bench",
                "input_vector": quantise(vector),
                "output_vector": None,
            }
            for event, vector in zip(chunk, vectors, strict=True)
        ]
        with db.write() as conn:
            conn.execute(insert(call_embeddings), rows)
    times = []
    for _ in range(3):
        began = time.perf_counter()
        report = drift_report(db, project_id, (NOW - timedelta(days=7), middle), (middle, NOW))
        times.append(time.perf_counter() - began)
    drifted = sorted({group.prompt or "-" for group in report.groups if group.drifted})
    print(f"(drift report: {len(report.groups)} groups, drifted: {', '.join(drifted) or 'none'})")
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    assert set(GROUPINGS) >= {"model", "project"}
    print(
        "store      |    events | written/s  | report               | rollups ms |    raw ms | "
        "raw / rollups   (drift: ms for the report, no raw baseline)"
    )
    with tempfile.TemporaryDirectory() as folder:
        sqlite = Database(f"sqlite:///{Path(folder) / 'bench.db'}")
        measure("sqlite", sqlite, args.events)
        sqlite.dispose()
    schema = f"bench_rollups_{secrets.token_hex(4)}"
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        print(f"(postgresql skipped: {str(exc).splitlines()[0]})")
        return
    try:
        postgres = Database(args.postgres, schema=schema)
        measure("postgresql", postgres, args.events)
        postgres.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
