"""Does the dashboard stay fast at a million calls? The overview (24 hours and 7 days), the
traces list (its first page, and a page filtered by status and model) and a call's page,
each timed at the server over HTTP (uvicorn on 127.0.0.1, signed in as a browser is), with
``--events`` events (1,000,000 by default) of one project on SQLite: the worst case, since
every query is scoped to one project.

The baseline, measured in the same run: the same figures computed from a copy of the events
table with no index and no rollups (what a dashboard reading raw events, or one whose
indexes are missing, does): the overview's totals, hourly series, breakdowns and latency
percentiles by a scan, the list's pages by a scan and sort, the call by a scan. The issue's
target: each page under 300 ms at the server.

Events are those of ``bench.rollups`` (a week of synthetic calls) moved to end now, with
users, sessions and error types set, written through ``insert_events`` in the writer's
batches (so the rollups are kept as in production).

Run: ``.venv/bin/python -m bench.dashboard [--events 1000000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import text
from tests.live import LiveServer

from bench.rollups import NOW, SECRET, events
from seamline.core.clock import utcnow
from seamline.core.settings import GatewayConfig, Settings
from seamline.gateway.app import build_app
from seamline.registry import Registry, Scope
from seamline.registry.identity import Actor, effective_scopes, ensure_project
from seamline.store.database import Database
from seamline.store.migrate import upgrade
from seamline.telemetry.event_insert import insert_events
from seamline.telemetry.writer import BATCH_SIZE

PAGE = 50


def fill(db: Database, count: int) -> tuple[Actor, str]:
    """``count`` events of one project, ending now; the id of a failed call."""
    with db.write() as conn:
        project, _ = ensure_project(conn, "acme", actor="bench")
    made = events(count, [project.id])
    shift = utcnow() - NOW
    rng = random.Random(11)
    for event in made:
        event.time += shift
        event.project = project.name
        event.user_id = f"user-{rng.randrange(5000)}"
        event.session_id = f"session-{rng.randrange(50000)}"
        if event.status == "error":
            event.error_type = rng.choice(["upstream_timeout", "rate_limited", "bad_gateway"])
    for start in range(0, count, BATCH_SIZE):
        with db.write() as conn:
            insert_events(conn, made[start : start + BATCH_SIZE], postgres=False)
    with db.write() as conn:  # the baseline's table: the same rows, no index
        conn.execute(text("CREATE TABLE raw_events AS SELECT * FROM events"))
    failed = next(e for e in reversed(made) if e.status == "error")
    return Actor("bench", project, effective_scopes(frozenset({Scope.ADMIN}))), failed.request_id


def raw_queries(db: Database, project_id: int, request_id: str) -> dict[str, Callable[[], Any]]:
    """The pages' figures from the unindexed copy, as a dashboard without rollups reads them."""
    now = utcnow()

    def overview(hours: int) -> Callable[[], Any]:
        since = now.timestamp() - hours * 3600

        def run() -> Any:
            start = time_text(since)
            with db.read() as conn:
                where = f"FROM raw_events WHERE project_id = {project_id} AND time >= '{start}'"
                conn.execute(
                    text(
                        "SELECT substr(time, 1, 13), count(*), sum(status != 'ok'), "
                        f"sum(prompt_tokens + completion_tokens), sum(cost_usd) {where} GROUP BY 1"
                    )
                ).all()
                for column in (
                    "model_used",
                    "route",
                    "use_case",
                    "prompt_name, prompt_version",
                    "api_key_id",
                ):
                    conn.execute(
                        text(f"SELECT {column}, count(*), sum(cost_usd) {where} GROUP BY {column}")
                    ).all()
                latencies = conn.execute(text(f"SELECT latency_ms {where}")).scalars().all()
            return np.percentile(latencies, [50, 95, 99]) if latencies else None

        return run

    def listing(condition: str) -> Callable[[], Any]:
        def run() -> Any:
            with db.read() as conn:
                return conn.execute(
                    text(
                        f"SELECT * FROM raw_events WHERE project_id = {project_id} {condition} "
                        f"ORDER BY time DESC, id DESC LIMIT {PAGE + 1}"
                    )
                ).all()

        return run

    def call() -> Any:
        with db.read() as conn:
            return conn.execute(
                text("SELECT * FROM raw_events WHERE request_id = :id"), {"id": request_id}
            ).all()

    return {
        "overview 24h": overview(24),
        "overview 7d": overview(24 * 7),
        "traces, first page": listing(""),
        "traces, errors of one model": listing("AND status = 'error' AND model_used = 'gpt-4o'"),
        "a call's page": call,
    }


def time_text(epoch: float) -> str:
    """As the events table stores times on SQLite."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(" ", "microseconds")[:26]


def timed(run: Callable[[], Any], rounds: int) -> float:
    run()  # warm: the first read of a page loads its tables into the cache
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{Path(folder) / 'seamline.db'}")
        upgrade(db)
        registry = Registry(db, key_secret=SECRET)
        began = time.perf_counter()
        actor, failed = fill(db, args.events)
        print(f"{args.events:,} events written in {time.perf_counter() - began:.0f} s")
        key, _ = registry.create_key(actor, owner="bench", scopes=frozenset({Scope.READ}), name="b")
        settings = Settings(
            home=Path(folder), models=[], gateway=GatewayConfig(embedded_models=False)
        )
        live = LiveServer(build_app(settings, registry)).start()
        try:
            with httpx.Client(base_url=f"{live.url}/ui", timeout=60) as client:
                signed = client.post("/login", data={"api_key": key})
                assert signed.status_code == 303, signed.text
                pages = {
                    "overview 24h": "/overview?range=24h",
                    "overview 7d": "/overview?range=7d",
                    "traces, first page": "/traces?range=all",
                    "traces, errors of one model": "/traces?range=all&status=error&model=gpt-4o",
                    "a call's page": f"/traces/{failed}",
                }
                baseline = raw_queries(db, actor.project.id, failed)
                print(f"{'page':<30} | {'dashboard ms':>12} | {'raw, no index ms':>16} | ratio")
                for name, path in pages.items():

                    def fetch(path: str = path) -> None:
                        response = client.get(path)
                        assert response.status_code == 200, (path, response.status_code)

                    ours = timed(fetch, args.rounds)
                    theirs = timed(baseline[name], args.rounds)
                    print(f"{name:<30} | {ours:>12.1f} | {theirs:>16.1f} | {theirs / ours:>5.1f}x")
        finally:
            live.stop()
            db.dispose()


if __name__ == "__main__":
    main()
