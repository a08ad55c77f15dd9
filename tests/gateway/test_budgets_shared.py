"""Budgets of a server with several workers and no Redis: exact, through the database.

Each worker is a real process here (``seamline serve --workers 2``, or two spawned processes
each building its own Gateway over one SQLite file or one PostgreSQL schema), because
counters kept in one process's memory are exactly what let two workers spend the cap twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from sqlalchemy import select

from seamline.core.clock import utcnow
from seamline.core.errors import BudgetExceeded
from seamline.core.settings import BudgetConfig, GatewayConfig, Settings
from seamline.gateway.core import Gateway
from seamline.gateway.stores.budgets import (
    HOLD_S,
    DatabaseBudgetStore,
    LocalBudgetStore,
    RedisBudgetStore,
    store_for,
)
from seamline.registry import Actor, Registry
from seamline.store import Database
from seamline.store.schema import budget_counters, budget_holds, events
from tests.conftest import KEY_SECRET, make_actor
from tests.served import serve
from tests.stub_upstream import StubUpstream

# 1e-5 USD is exactly 10,000 nano-dollars, and the cap exactly ten of them: a call that
# costs what it reserves leaves no rounding to blur "exactly ten calls fit".
CALL_USD = 1e-5
CAP_USD = 1e-4
ATTEMPTS = 40  # per process, all at once: four times what the whole cap admits


def _spawned(target: Callable[..., None], *args: Any, processes: int = 1) -> list[Any]:
    """Run ``target(results, barrier, *args)`` in ``processes`` fresh interpreters (spawned,
    as uvicorn spawns its workers) and return what each put in ``results``."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    barrier = context.Barrier(processes)
    started = [
        context.Process(target=target, args=(results, barrier, *args)) for _ in range(processes)
    ]
    for process in started:
        process.start()
    outcomes = [results.get(timeout=60) for _ in started]
    for process in started:
        process.join(10)
    failures = [o for o in outcomes if isinstance(o, str)]
    assert not failures, failures[0]
    return outcomes


def _database(db: Database) -> tuple[str, str | None]:
    return db.url.render_as_string(hide_password=False), db.schema


def _gateway_worker(
    results: Any, barrier: Any, url: str, schema: str | None, home: str, actor: Actor
) -> None:
    """One worker process: a Gateway told it is one of two, all its calls arriving at once,
    each costing what it reserved."""
    try:
        settings = Settings(
            home=Path(home),
            workers=2,
            budgets=[BudgetConfig(scope="project", name="acme", period="day", limit_usd=CAP_USD)],
            gateway=GatewayConfig(embedded_models=False),
        )
        gateway = Gateway(settings, Registry(Database(url, schema=schema), key_secret=KEY_SECRET))

        async def call() -> float:
            try:
                reservation = await gateway.budgets.reserve(actor, lambda: CALL_USD)
            except BudgetExceeded:
                return 0.0
            await asyncio.sleep(0.01)  # the upstream call: the other calls reserve meanwhile
            await gateway.budgets.settle(reservation, CALL_USD)
            return CALL_USD

        async def calls() -> list[float]:
            barrier.wait()
            try:
                return await asyncio.gather(*(call() for _ in range(ATTEMPTS)))
            finally:
                await gateway.budgets.close()

        results.put(asyncio.run(calls()))
    except BaseException:
        results.put(traceback.format_exc())


def test_two_worker_processes_never_overshoot_a_shared_budget(
    registry: Registry, tmp_path: Path
) -> None:
    actor = make_actor(registry, "svc")
    url, schema = _database(registry.db)
    spent = _spawned(_gateway_worker, url, schema, str(tmp_path), actor, processes=2)
    calls = [cost for worker in spent for cost in worker if cost]
    assert sum(calls) <= CAP_USD
    # Exact, not merely safe: every call that fit was let in (no hold went missing).
    assert len(calls) == 10


async def _nothing_spent() -> int:
    return 0


def _reserve_and_die(results: Any, barrier: Any, url: str, schema: str | None) -> None:
    """A worker that holds 20 of a budget of 30 and dies mid-call: no settle, no cleanup."""
    store = DatabaseBudgetStore(Database(url, schema=schema))
    hold = asyncio.run(store.reserve("project:acme:day:dead", 20, 30, _nothing_spent))
    results.put(hold is not None)
    results.close()
    results.join_thread()  # the answer is sent; now die without unwinding anything
    os._exit(1)


def test_a_hold_left_by_a_dead_worker_counts_until_it_expires(db: Database) -> None:
    assert _spawned(_reserve_and_die, *_database(db)) == [True]
    key = "project:acme:day:dead"
    survivor = DatabaseBudgetStore(db)
    later = DatabaseBudgetStore(db, clock=lambda: utcnow() + timedelta(seconds=HOLD_S + 1))

    async def scenario() -> tuple[str | None, str | None, str | None]:
        while_held = await survivor.reserve(key, 20, 30, _nothing_spent)
        after_expiry = await later.reserve(key, 20, 30, _nothing_spent)
        refused = await later.reserve(key, 20, 30, _nothing_spent)  # its own 20 held of 30
        return while_held, after_expiry, refused

    while_held, after_expiry, refused = asyncio.run(scenario())
    assert while_held is None and after_expiry is not None and refused is None


def test_a_call_cancelled_while_it_reserves_gives_its_hold_back(db: Database) -> None:
    """The reservation runs (it was queued), but its caller will never settle it: the hold
    is given back at once, not fifteen minutes later. The clock, read as each transaction
    starts, pauses the first two so the test can act between them."""
    reading = 0
    began = [threading.Event(), threading.Event()]
    resume = [threading.Event(), threading.Event()]

    def clock() -> datetime:
        nonlocal reading
        reading += 1
        if reading <= 2:
            began[reading - 1].set()
            assert resume[reading - 1].wait(10)
        return utcnow()

    def holds() -> int:
        with db.read() as conn:
            return len(conn.execute(select(budget_holds.c.id)).all())

    store = DatabaseBudgetStore(db, clock=clock)

    async def scenario() -> int:
        reserving = asyncio.create_task(store.reserve("k", 20, 30, _nothing_spent))
        assert await asyncio.to_thread(began[0].wait, 10)
        reserving.cancel()  # while its transaction runs
        resume[0].set()
        assert await asyncio.to_thread(began[1].wait, 10)  # the first one has committed
        held = holds()
        resume[1].set()
        with contextlib.suppress(asyncio.CancelledError):
            await reserving
        deadline = time.monotonic() + 10
        while holds() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return held

    assert asyncio.run(scenario()) == 1
    assert holds() == 0


def test_past_periods_rows_and_their_orphaned_holds_are_pruned(db: Database) -> None:
    now = utcnow()
    month_later = now + timedelta(days=33)

    async def scenario() -> None:
        await DatabaseBudgetStore(db, clock=lambda: now).reserve("old", 5, 30, _nothing_spent)
        store = DatabaseBudgetStore(db, clock=lambda: month_later)
        await store.reserve("new", 5, 30, _nothing_spent)

    asyncio.run(scenario())
    with db.read() as conn:
        counters = set(conn.execute(select(budget_counters.c.key)).scalars())
        holds = set(conn.execute(select(budget_holds.c.key)).scalars())
    assert counters == holds == {"new"}


def test_a_new_process_catches_the_counter_up_with_stored_spend(db: Database) -> None:
    """Spend the counter missed (a period served by one worker in memory, a lost settle) is
    in the events: a process starting on the period raises the counter to it, never lowers it."""

    def stored(value: int) -> Callable[[], Any]:
        async def read() -> int:
            return value

        return read

    async def scenario() -> tuple[str | None, int]:
        first = DatabaseBudgetStore(db)
        hold = await first.reserve("k", 10, 100, stored(0))
        assert hold is not None
        await first.settle("k", hold, 10)
        second = DatabaseBudgetStore(db)
        refused = await second.reserve("k", 25, 100, stored(80))  # 80 + 25 > 100
        third = DatabaseBudgetStore(db)
        hold = await third.reserve("k", 20, 100, stored(5))  # 80 + 20 fits exactly
        assert hold is not None
        return refused, await third.settle("k", hold, 20)

    refused, total = asyncio.run(scenario())
    assert refused is None and total == 100


def test_a_soft_budget_in_the_database_counts_and_never_refuses(db: Database) -> None:
    async def scenario() -> list[int]:
        store = DatabaseBudgetStore(db)
        totals = []
        for _ in range(3):  # each call alone is over the cap: soft budgets pass no limit
            hold = await store.reserve("soft", 50, None, _nothing_spent)
            assert hold is not None
            totals.append(await store.settle("soft", hold, 40))
        return totals

    assert asyncio.run(scenario()) == [40, 80, 120]


@pytest.mark.parametrize(
    ("workers", "redis_url", "choice", "expected"),
    [
        (1, None, "auto", LocalBudgetStore),
        (2, None, "auto", DatabaseBudgetStore),
        (2, "redis://127.0.0.1:6379/0", "auto", RedisBudgetStore),
        (1, None, "database", DatabaseBudgetStore),
        (2, None, "memory", LocalBudgetStore),
    ],
)
def test_the_budget_store_follows_workers_redis_and_the_setting(
    tmp_path: Path,
    workers: int,
    redis_url: str | None,
    choice: Literal["auto", "memory", "database"],
    expected: type[LocalBudgetStore | DatabaseBudgetStore | RedisBudgetStore],
) -> None:
    settings = Settings(
        home=tmp_path,
        workers=workers,
        redis_url=redis_url,
        gateway=GatewayConfig(budget_store=choice),
    )
    store = store_for(settings, Database(f"sqlite:///{tmp_path / 'seamline.db'}"))
    assert isinstance(store, expected)
    asyncio.run(store.close())


def test_serve_with_two_workers_never_overshoots_a_budget(tmp_path: Path) -> None:
    stub = StubUpstream("up")
    stub.faults.latency_s = 0.05  # calls overlap, in both workers
    stub.start()
    # A call reserves $16e-6 (8 prompt tokens, a 4-token cap) and costs $10e-6: nine fit in
    # $100e-6, and two workers counting apart would let in up to eighteen.
    cap = 100e-6
    server = serve(
        tmp_path,
        f'[[models]]\nname = "gpt-4o-mini"\nbase_url = "{stub.base_url}"\n'
        "prices = { input = 1.0, output = 2.0 }\n"
        "[gateway]\nembedded_models = false\n"
        f'[[budgets]]\nscope = "project"\nname = "default"\nperiod = "day"\nlimit_usd = {cap}\n',
        workers=2,
    )

    def call(model: str) -> int:
        with httpx.Client() as http:  # a new connection: the kernel picks either worker
            reply = http.post(
                f"{server.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {server.key}"},
                json={
                    "model": model,
                    "max_tokens": 4,
                    "messages": [{"role": "user", "content": "hello there"}],
                },
            )
        if reply.status_code == 429:
            assert reply.json()["error"]["code"] == "budget_exceeded"
        return reply.status_code

    try:
        # /readyz answered as soon as one worker was up. A call for a model that does not
        # exist spends nothing and leaves the worker that answers it a metrics file: once
        # there are two, both workers take calls.
        deadline = time.monotonic() + 60
        while len(list((server.home / "metrics").glob("counter_*.db"))) < 2:
            assert time.monotonic() < deadline, "the second worker never answered"
            assert call("no-such-model") == 404
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(call, ["gpt-4o-mini"] * 60))
    finally:
        server.stop()  # graceful: every event is written before it exits
        stub.stop()
    assert set(statuses) == {200, 429}
    db = Database(f"sqlite:///{server.home / 'seamline.db'}")
    with db.read() as conn:
        costs = conn.execute(select(events.c.cost_usd).where(events.c.status == "ok")).scalars()
        spent = sum(costs)
    db.dispose()
    assert spent <= cap
    assert statuses.count(200) == round(spent / 10e-6)
