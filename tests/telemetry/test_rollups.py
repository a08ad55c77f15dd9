"""Hourly rollups agree with the raw events they sum, whatever the grouping and window,
and a replayed spill file is not counted twice."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from seamline.registry import Actor, Registry
from seamline.store import Database
from seamline.store.schema import LATENCY_BUCKETS_MS, LATENCY_COLUMNS, event_rollups, events
from seamline.telemetry import series
from seamline.telemetry.event import CallEvent
from seamline.telemetry.retention import prune_content
from seamline.telemetry.series import latency_quantile
from seamline.telemetry.traces import GROUPINGS, cost_by, cost_trajectory, raw_sums_by
from seamline.telemetry.writer import EventWriter
from tests.telemetry.test_writer import UNREACHABLE

NOW = datetime(2026, 11, 29, 12, 40, tzinfo=UTC)


def _events(count: int, project_id: int, seed: int = 5) -> list[CallEvent]:
    rng = random.Random(seed)
    made = []
    for i in range(count):
        event = CallEvent(
            route="/v1/chat/completions", time=NOW - timedelta(minutes=rng.uniform(0, 600))
        )
        event.project_id, event.project = project_id, "acme"
        event.api_key_id = rng.choice(["key_a", "key_b"])
        event.model_used = rng.choice(["gpt-4o-mini", "backup-model", None])
        event.prompt_name = rng.choice(["support", None])
        event.prompt_version = 1 if event.prompt_name else None
        event.use_case = rng.choice(["faq", None])
        event.status = rng.choice(["ok", "ok", "ok", "error", "blocked"])
        event.prompt_tokens, event.completion_tokens = rng.randint(1, 900), rng.randint(0, 300)
        event.cost_usd = rng.uniform(0, 0.01)
        event.latency_ms = rng.uniform(5, 4000)
        event.cache_hit = i % 7 == 0
        made.append(event)
    return made


def _write(db: Database, made: list[CallEvent], tmp_path: Path) -> None:
    """Through the gateway's writer, which keeps the rollups."""
    writer = EventWriter(db, tmp_path / "spill.jsonl")
    writer.start()
    for event in made:
        writer.submit(event)
    writer.close()


def _raw(db: Database, by: str, since: datetime) -> dict[object, list[float]]:
    with db.read() as conn:
        totals = raw_sums_by(conn, (by,), since, NOW + timedelta(seconds=1), None)
    return {group: sums for (group,), sums in totals.items()}


def test_rollups_agree_with_raw_events_for_every_grouping_and_window(
    registry: Registry, alice: Actor, tmp_path: Path
) -> None:
    db = registry.db
    writer = EventWriter(db, tmp_path / "spill.jsonl")
    writer.start()
    for event in _events(400, alice.project.id):
        writer.submit(event)
    writer.close()
    for by in GROUPINGS:
        for since in (NOW - timedelta(hours=3, minutes=17), NOW - timedelta(hours=11)):
            with db.read() as conn:
                found = {row["group"]: row for row in cost_by(conn, by, since, None, now=NOW)}
            expected = _raw(db, by, since)
            assert set(found) == set(expected), by
            for group, sums in expected.items():
                row = found[group]
                assert (row["requests"], row["errors"]) == (sums[0], sums[1])
                assert (row["prompt_tokens"], row["completion_tokens"]) == (sums[2], sums[3])
                assert row["cost_usd"] == pytest.approx(sums[4], abs=1e-7)
                assert row["avg_latency_ms"] == pytest.approx(sums[5] / sums[0], abs=0.1)
    with db.read() as conn:
        hours = conn.execute(select(func.count()).select_from(event_rollups)).scalar_one()
    assert 0 < hours < 400  # the rollups are sums, not copies


def test_a_replayed_spill_file_is_summed_once(
    registry: Registry, alice: Actor, tmp_path: Path
) -> None:
    db = registry.db
    spill = tmp_path / "spill.jsonl"
    down = EventWriter(Database(UNREACHABLE), spill)
    down.start()
    for event in _events(30, alice.project.id, seed=9):
        down.submit(event)
    down.close()
    copy = spill.read_text()
    for _ in range(2):  # as if a crash came between the commit and removing the file
        spill.write_text(copy)
        writer = EventWriter(db, spill)
        writer.start()
        writer.close()
    with db.read() as conn:
        calls = conn.execute(select(func.sum(event_rollups.c.calls))).scalar_one()
    assert calls == 30


def test_content_past_retention_is_deleted_and_the_numbers_stay(
    registry: Registry, alice: Actor, tmp_path: Path
) -> None:
    old, recent = _events(2, alice.project.id, seed=1)
    old.time, recent.time = NOW - timedelta(days=40), NOW - timedelta(days=2)
    for event in (old, recent):
        event.request_content = [{"role": "user", "content": "my card is 4111 1111 1111 1111"}]
        event.response_content = {"role": "assistant", "content": "noted"}
    writer = EventWriter(registry.db, tmp_path / "spill.jsonl")
    writer.start()
    writer.submit(old)
    writer.submit(recent)
    writer.close()
    assert prune_content(registry.db, NOW - timedelta(days=30)) == 1
    assert prune_content(registry.db, NOW - timedelta(days=30)) == 0  # nothing left to delete
    with registry.db.read() as conn:
        rows = {
            r.request_id: r
            for r in conn.execute(
                select(events.c.request_id, events.c.request_content, events.c.cost_usd)
            )
        }
        calls = conn.execute(select(func.sum(event_rollups.c.calls))).scalar_one()
    assert rows[old.request_id].request_content is None
    assert rows[old.request_id].cost_usd == pytest.approx(old.cost_usd)
    assert rows[recent.request_id].request_content is not None and calls == 2


def test_the_cost_trajectory_gives_cost_per_call_day_by_day(
    registry: Registry, alice: Actor, tmp_path: Path
) -> None:
    made = _events(60, alice.project.id, seed=3)
    for i, event in enumerate(made):  # two days, the second twice as expensive per call
        event.time = NOW - timedelta(days=2 - i % 2, hours=3)
        event.model_used, event.cost_usd = "gpt-4o-mini", 0.001 * (1 + i % 2)
    _write(registry.db, made, tmp_path)
    with registry.db.read() as conn:
        days = cost_trajectory(conn, "model", NOW - timedelta(days=3), None, now=NOW)
    assert [(d["day"], d["requests"]) for d in days] == [
        ((NOW - timedelta(days=2, hours=3)).date().isoformat(), 30),
        ((NOW - timedelta(days=1, hours=3)).date().isoformat(), 30),
    ]
    assert [d["cost_per_call_usd"] for d in days] == [pytest.approx(0.001), pytest.approx(0.002)]


def test_the_latency_histogram_gives_the_percentiles_of_the_raw_latencies(
    registry: Registry, alice: Actor, tmp_path: Path
) -> None:
    made = _events(500, alice.project.id, seed=11)
    _write(registry.db, made, tmp_path)
    with registry.db.read() as conn:
        figures = series.total(conn, alice.project.id, NOW - timedelta(hours=11), NOW)
    latencies = sorted(event.latency_ms for event in made)
    bounds = (0, *LATENCY_BUCKETS_MS, float("inf"))
    expected = [
        sum(1 for ms in latencies if low < ms <= high) for low, high in itertools.pairwise(bounds)
    ]
    assert figures.buckets == expected and figures.calls == 500
    for quantile in (0.5, 0.95, 0.99):
        exact = latencies[int(quantile * len(latencies)) - 1]
        estimate = figures.latency(quantile)
        assert estimate is not None
        bucket = next(i for i, bound in enumerate(bounds) if exact <= bound)
        assert bounds[bucket - 1] <= estimate <= bounds[bucket]  # within the exact one's bucket


def test_latency_percentiles_interpolate_within_a_bucket() -> None:
    buckets = [0] * len(LATENCY_COLUMNS)
    assert latency_quantile(buckets, 0.5) is None
    buckets[2] = 10  # ten calls between 50 and 100 ms
    assert latency_quantile(buckets, 0.5) == pytest.approx(75.0)
    buckets[-1] = 90  # ninety past the last bound: the last bound is what can be said
    assert latency_quantile(buckets, 0.99) == LATENCY_BUCKETS_MS[-1]
