"""Spending caps in USD per project or key, per UTC day or month, exact under concurrency.

A call's cost is known only when it ends, so admission reserves the most the call can cost
(its prompt tokens at the input price plus its ``max_tokens``, or a configured default, at
the output price) and refuses a call whose reservation does not fit beside what is spent and
what calls in flight have reserved. When the call ends its reservation is replaced by its
real cost. As long as reservations are upper bounds the cap is never exceeded; when a call
sets no ``max_tokens`` and outgrows the default, by at most that one call's excess.

Spend starts, per period, from the events already stored, so a restart forgets nothing. Where
the counters live is :func:`store_for`'s choice: Redis when configured (one Lua script reserves
atomically); else, for several workers, the database (reservations are write transactions);
else, for one worker, memory (the fast path). At ``alert_at`` of the cap a warning is logged, a
metric counts it and the optional webhook is called, once per budget and period.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import Connection, bindparam, case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from seamline.core.clock import isoformat, utcnow
from seamline.core.errors import BudgetExceeded, Unavailable
from seamline.core.settings import BudgetConfig, Settings
from seamline.registry import Actor
from seamline.store import Database
from seamline.store.schema import budget_counters, budget_holds, events

log = logging.getLogger("seamline.budgets")
_ADJECTIVE = {"day": "daily", "month": "monthly"}
NANO = 1_000_000_000  # counters hold integer nano-dollars: no float drift across workers


def period_start(period: str, now: datetime) -> datetime:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.replace(day=1) if period == "month" else start


@dataclass
class Reservation:
    # budget, store key, hold id, nano-dollars held
    holds: list[tuple[BudgetConfig, str, str, int]] = field(default_factory=list)


class BudgetStore(Protocol):
    async def reserve(
        self,
        key: str,
        amount: int,
        limit: int | None,
        initial: Callable[[], Coroutine[Any, Any, int]],
    ) -> str | None:
        """Hold ``amount`` unless spent + held would pass ``limit`` (None: no check).
        Returns the hold's id, or None when refused."""
        ...

    async def settle(self, key: str, hold: str, spent: int) -> int:
        """Release a hold and record the real spend; returns the new spend."""
        ...

    async def close(self) -> None: ...


class LocalBudgetStore:
    def __init__(self) -> None:
        self._spent: dict[str, int] = {}
        self._holds: dict[str, dict[str, int]] = {}
        self._lock = asyncio.Lock()

    async def reserve(
        self,
        key: str,
        amount: int,
        limit: int | None,
        initial: Callable[[], Coroutine[Any, Any, int]],
    ) -> str | None:
        if key not in self._spent:
            # Read outside the lock: the first call of a period must not stall every other
            # project's calls on a database read. Two first calls may both read; one wins.
            spent_so_far = await initial()
            async with self._lock:
                self._spent.setdefault(key, spent_so_far)
        async with self._lock:
            holds = self._holds.setdefault(key, {})
            if limit is not None and self._spent[key] + sum(holds.values()) + amount > limit:
                return None
            hold = uuid.uuid4().hex
            holds[hold] = amount
            return hold

    async def settle(self, key: str, hold: str, spent: int) -> int:
        async with self._lock:
            self._holds.get(key, {}).pop(hold, None)
            self._spent[key] = self._spent.get(key, 0) + spent
            return self._spent[key]

    async def close(self) -> None:
        return None


# Holds expire on their own, so a worker that dies mid-call cannot leave money reserved
# forever. KEYS: spent, hold expiries (sorted set), hold amounts (hash).
# ARGV: amount, limit (-1: none), now (ms), this hold's expiry (ms), hold id, key TTL (s).
# Returns the spend so far, or -1 when refused.
_RESERVE = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
  redis.call('HDEL', KEYS[3], unpack(expired))
end
local held = 0
for _, value in ipairs(redis.call('HVALS', KEYS[3])) do held = held + tonumber(value) end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit >= 0 and spent + held + amount > limit then return -1 end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('HSET', KEYS[3], ARGV[5], amount)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return spent
"""
PERIOD_TTL_S = 32 * 24 * 3600
HOLD_S = 15 * 60  # longer than any call the gateway lets run (total timeout: 10 minutes)


class RedisBudgetStore:
    def __init__(self, url: str, prefix: str = "seamline:budget") -> None:
        self._redis = aioredis.from_url(url)
        self._prefix = prefix
        self._reserve = self._redis.register_script(_RESERVE)

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}:{key}"
        return [f"{base}:spent", f"{base}:holds", f"{base}:held"]

    async def reserve(
        self,
        key: str,
        amount: int,
        limit: int | None,
        initial: Callable[[], Coroutine[Any, Any, int]],
    ) -> str | None:
        keys = self._keys(key)
        hold = uuid.uuid4().hex
        now_ms = int(time.time() * 1000)
        try:
            if not await self._redis.exists(keys[0]):
                await self._redis.set(keys[0], await initial(), nx=True, ex=PERIOD_TTL_S)
            result = int(
                await self._reserve(
                    keys=keys,
                    args=[
                        amount,
                        -1 if limit is None else limit,
                        now_ms,
                        now_ms + HOLD_S * 1000,
                        hold,
                        PERIOD_TTL_S,
                    ],
                )
            )
        except RedisError as exc:
            raise Unavailable(f"budget store unreachable: {exc}") from exc
        return None if result < 0 else hold

    async def settle(self, key: str, hold: str, spent: int) -> int:
        spent_key, holds_key, held_key = self._keys(key)
        for attempt in range(3):
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zrem(holds_key, hold)
                    pipe.hdel(held_key, hold)
                    pipe.incrby(spent_key, spent)
                    *_, total = await pipe.execute()
                return int(total)
            except RedisError:
                if attempt == 2:
                    # The hold expires by itself; the spend is in the event, and a restart
                    # reads it back. Log it, never fail the finished call.
                    log.exception("could not record spend of %s in Redis", key)
                    return 0
                await asyncio.sleep(0.05 * (attempt + 1))
        return 0

    async def close(self) -> None:
        await self._redis.aclose()


@dataclass(frozen=True)
class _Reserve:
    key: str
    hold: str
    amount: int
    limit: int | None
    floor: int | None  # the stored spend to raise the counter to; None: already done


@dataclass(frozen=True)
class _Settle:
    key: str
    hold: str
    spent: int


# An operation and the future its caller awaits (None: queued on nobody's behalf).
_Queued = tuple[_Reserve | _Settle, asyncio.Future[bool | int | None] | None]


class DatabaseBudgetStore:
    """Counters in the database, shared by workers (or replicas) that have no Redis.

    Reservations are decided inside write transactions: on SQLite ``BEGIN IMMEDIATE``
    (store/database.py) lets one writer in at a time across processes; on PostgreSQL the
    budget's counter row is locked first (``SELECT ... FOR UPDATE``), so reservations of one
    budget queue while other budgets go on, and every change to a budget's counter and holds
    happens under that lock. Holds past their expiry no longer count, and are deleted when a
    period starts.

    The counter row outlives processes, so each process, on its first call of a period,
    raises it to the spend stored in events: spend recorded while another store was in use
    (one worker, in memory) or a settle that could not be written is caught up, and as both
    figures never exceed the real spend, the larger one is the better.
    """

    def __init__(
        self,
        db: Database,
        *,
        hold_s: float = HOLD_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._hold = timedelta(seconds=hold_s)
        self._clock = clock
        self._synced: set[str] = set()  # keys this process has raised to the stored events
        # Operations queue here and go in together: one transaction for all that arrived
        # while the last one ran (on PostgreSQL one per budget, so that no transaction waits
        # on two budgets' locks). SQLite lets one writer in at a time, and a writer that
        # finds the database locked polls with sleeps of 1 ms and more. Measured on 2 cores,
        # `seamline serve --workers 2`, 32 concurrent calls to a loopback stub, every call
        # under a budget: a transaction per operation, about 350 calls a second; batched,
        # 730-960 (one worker in memory: 760-1,180; two in memory, overshooting: 1,100-1,700).
        self._queue: list[_Queued] = []
        self._drainer: asyncio.Task[None] | None = None

    async def reserve(
        self,
        key: str,
        amount: int,
        limit: int | None,
        initial: Callable[[], Coroutine[Any, Any, int]],
    ) -> str | None:
        hold = uuid.uuid4().hex
        floor = None if key in self._synced else await initial()
        try:
            admitted = await self._run(_Reserve(key, hold, amount, limit, floor))
            if admitted is None:  # pruned since this process last saw it: start it again
                admitted = await self._run(_Reserve(key, hold, amount, limit, await initial()))
        except SQLAlchemyError as exc:
            raise Unavailable(f"budget store unreachable: {exc}") from exc
        self._synced.add(key)
        return hold if admitted else None

    async def settle(self, key: str, hold: str, spent: int) -> int:
        for attempt in range(3):
            try:
                return int(await self._run(_Settle(key, hold, spent)) or 0)
            except (SQLAlchemyError, Unavailable):
                if attempt == 2:
                    # The hold expires by itself and the spend is in the event, which the
                    # next process to start reads back. Log it, never fail the finished call.
                    log.exception("could not record spend of %s in the database", key)
                    return 0
                await asyncio.sleep(0.05 * (attempt + 1))
        return 0

    async def _run(self, operation: _Reserve | _Settle) -> bool | int | None:
        """Queue one operation and wait for its outcome. Once queued it runs even if its
        caller is cancelled: a settle is never lost, and a hold nobody waits for any more is
        given back at once rather than at its expiry."""
        future: asyncio.Future[bool | int | None] = asyncio.get_running_loop().create_future()
        self._enqueue(operation, future)
        return await future

    def _enqueue(
        self, operation: _Reserve | _Settle, future: asyncio.Future[bool | int | None] | None
    ) -> None:
        self._queue.append((operation, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            if self._db.is_sqlite:
                groups = [batch]
            else:
                by_key: dict[str, list[_Queued]] = {}
                for queued in batch:
                    by_key.setdefault(queued[0].key, []).append(queued)
                groups = list(by_key.values())
            await asyncio.gather(*(self._commit(group) for group in groups))

    async def _commit(self, group: list[_Queued]) -> None:
        try:
            results = await asyncio.to_thread(self._apply, [op for op, _ in group])
        except Exception as exc:
            for _, future in group:
                if future is None:
                    log.warning("could not give back a budget hold: %s", exc)
                elif not future.done():
                    future.set_exception(exc)
            return
        for (operation, future), result in zip(group, results, strict=True):
            if future is None:
                continue
            if not future.cancelled():
                future.set_result(result)
            elif isinstance(operation, _Reserve) and result:
                self._enqueue(_Settle(operation.key, operation.hold, 0), None)

    def _apply(self, operations: list[_Reserve | _Settle]) -> list[bool | int | None]:
        now = self._clock()
        with self._db.write() as conn:
            return [
                self._reserve_in(conn, op, now)
                if isinstance(op, _Reserve)
                else _settle_in(conn, op, now)
                for op in operations
            ]

    def _reserve_in(self, conn: Connection, op: _Reserve, now: datetime) -> bool | None:
        """True: held; False: refused; None: no counter, and no ``floor`` to start one."""
        if op.floor is not None:
            _tidy(conn, now)
            _raise_counter(conn, op.key, op.floor, now)
        spent = conn.execute(_SPENT, {"k": op.key}).scalar_one_or_none()
        if spent is None:
            return None
        if op.limit is None:  # a soft budget only counts: nothing reads its holds
            return True
        held = conn.execute(_HELD, {"k": op.key, "now": now}).scalar_one()
        if spent + held + op.amount > op.limit:
            return False
        conn.execute(
            _HOLD,
            {
                "id": op.hold,
                "key": op.key,
                "amount_nano": op.amount,
                "expires_at": now + self._hold,
            },
        )
        return True

    async def close(self) -> None:
        return None


def _settle_in(conn: Connection, op: _Settle, now: datetime) -> int:
    # The UPDATE first: on PostgreSQL it takes the row lock reservations queue on.
    total = conn.execute(_SETTLE, {"k": op.key, "spent": op.spent, "now": now}).scalar_one_or_none()
    conn.execute(_RELEASE, {"hold": op.hold})
    return int(total or 0)


# Built once: on SQLite, building a statement costs more than running it.
_SPENT = (
    select(budget_counters.c.spent_nano)
    .where(budget_counters.c.key == bindparam("k"))
    .with_for_update()
)
_HELD = select(func.coalesce(func.sum(budget_holds.c.amount_nano), 0)).where(
    budget_holds.c.key == bindparam("k"), budget_holds.c.expires_at > bindparam("now")
)
_HOLD = insert(budget_holds)
_SETTLE = (
    update(budget_counters)
    .where(budget_counters.c.key == bindparam("k"))
    .values(
        spent_nano=budget_counters.c.spent_nano + bindparam("spent"), updated_at=bindparam("now")
    )
    .returning(budget_counters.c.spent_nano)
)
_RELEASE = delete(budget_holds).where(budget_holds.c.id == bindparam("hold"))


def _raise_counter(conn: Connection, key: str, floor: int, now: datetime) -> None:
    """Create the counter at ``floor``, or raise it to ``floor`` if it is lower."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(budget_counters).values(key=key, spent_nano=floor, updated_at=now)
    higher = statement.excluded.spent_nano > budget_counters.c.spent_nano
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[budget_counters.c.key],
            set_={
                "spent_nano": case(
                    (higher, statement.excluded.spent_nano), else_=budget_counters.c.spent_nano
                ),
                "updated_at": now,
            },
        )
    )


def _tidy(conn: Connection, now: datetime) -> None:
    """Delete expired holds (dead workers' among them), and counters untouched for a period's
    lifetime with their holds, so that neither piles up. Rows another process is deleting are
    skipped (PostgreSQL's SKIP LOCKED), so two processes tidying never wait on each other."""
    expired = (
        select(budget_holds.c.id)
        .where(budget_holds.c.expires_at <= now)
        .with_for_update(skip_locked=True)
    )
    conn.execute(delete(budget_holds).where(budget_holds.c.id.in_(expired)))
    stale = (
        conn.execute(
            select(budget_counters.c.key)
            .where(budget_counters.c.updated_at < now - timedelta(seconds=PERIOD_TTL_S))
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    if stale:
        conn.execute(delete(budget_holds).where(budget_holds.c.key.in_(stale)))
        conn.execute(delete(budget_counters).where(budget_counters.c.key.in_(stale)))


def store_for(settings: Settings, db: Database) -> BudgetStore:
    """Where this worker keeps its budget counters (``gateway.budget_store``).

    ``auto``: Redis when ``redis_url`` is set; else the database when this server runs
    several workers (``seamline serve --workers N`` tells each worker N), since counters in
    memory would let each worker spend the whole cap; else memory, the fast path for one.
    """
    choice = settings.gateway.budget_store
    if choice == "auto" and settings.redis_url:
        return RedisBudgetStore(settings.redis_url)
    if choice == "database" or (choice == "auto" and settings.workers > 1):
        return DatabaseBudgetStore(db)
    return LocalBudgetStore()


class Budgets:
    def __init__(
        self,
        configs: list[BudgetConfig],
        db: Database,
        store: BudgetStore,
        on_alert: Callable[[BudgetConfig, str, float], None] | None = None,
    ) -> None:
        self.configs = configs
        self.db = db
        self.store = store
        self._alerted: set[str] = set()
        self._on_alert = on_alert
        self._http: aiohttp.ClientSession | None = None

    def _matching(self, actor: Actor) -> list[BudgetConfig]:
        return [
            b
            for b in self.configs
            if (b.scope == "project" and b.name == actor.project.name)
            or (b.scope == "key" and b.name == actor.key_id)
        ]

    @staticmethod
    def _key(budget: BudgetConfig, start: datetime) -> str:
        return f"{budget.scope}:{budget.name}:{budget.period}:{start:%Y-%m-%d}"

    async def reserve(self, actor: Actor, estimate_usd: Callable[[], float]) -> Reservation:
        """Hold the most the call can cost against every budget of its project and key.
        ``estimate_usd`` runs only when some budget applies (it counts prompt tokens)."""
        reservation = Reservation()
        budgets = self._matching(actor)
        if not budgets:
            return reservation
        amount = max(int(estimate_usd() * NANO), 1)
        now = utcnow()
        try:
            for budget in budgets:
                start = period_start(budget.period, now)
                key = self._key(budget, start)
                limit = int(budget.limit_usd * NANO) if budget.mode == "block" else None
                hold = await self.store.reserve(
                    key, amount, limit, functools.partial(self._stored_spend, budget, start)
                )
                if hold is None:
                    raise BudgetExceeded(
                        f"{budget.scope} {budget.name!r} has reached its "
                        f"{_ADJECTIVE[budget.period]} budget of ${budget.limit_usd:g}",
                        headers={"Retry-After": str(_seconds_to_next(budget.period, now))},
                    )
                reservation.holds.append((budget, key, hold, amount))
        except Exception:
            await self.settle(reservation, 0.0)
            raise
        return reservation

    async def settle(self, reservation: Reservation, cost_usd: float) -> None:
        spent_nano = round(cost_usd * NANO)
        for budget, key, hold, _ in reservation.holds:
            total = await self.store.settle(key, hold, spent_nano) / NANO
            self._check_alert(budget, key, total)
        reservation.holds.clear()

    def _check_alert(self, budget: BudgetConfig, key: str, spent_usd: float) -> None:
        for level, share in (("exceeded", 1.0), ("warning", budget.alert_at)):
            marker = f"{key}:{level}"
            if spent_usd >= budget.limit_usd * share and marker not in self._alerted:
                self._alerted.add(marker)
                log.warning(
                    "budget %s of %s %s: $%.4f spent of $%.2f",
                    level,
                    budget.scope,
                    budget.name,
                    spent_usd,
                    budget.limit_usd,
                )
                if self._on_alert:
                    self._on_alert(budget, level, spent_usd)
                if budget.webhook:
                    asyncio.get_running_loop().create_task(self._post(budget, level, spent_usd))
                return

    async def _post(self, budget: BudgetConfig, level: str, spent_usd: float) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        body = {
            "event": f"budget.{level}",
            "scope": budget.scope,
            "name": budget.name,
            "period": budget.period,
            "limit_usd": budget.limit_usd,
            "spent_usd": round(spent_usd, 6),
            "at": isoformat(utcnow()),
        }
        try:
            async with self._http.post(
                str(budget.webhook),
                data=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                if response.status >= 400:
                    log.warning("budget webhook answered %s", response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("budget webhook failed: %s", exc)

    async def _stored_spend(self, budget: BudgetConfig, start: datetime) -> int:
        column = events.c.project if budget.scope == "project" else events.c.api_key_id
        query = select(func.coalesce(func.sum(events.c.cost_usd), 0.0)).where(
            column == budget.name, events.c.time >= start
        )

        def read() -> float:
            with self.db.read() as conn:
                return float(conn.execute(query).scalar_one())

        try:
            return round(await asyncio.to_thread(read) * NANO)
        except (SQLAlchemyError, Unavailable) as exc:
            raise Unavailable("cannot read this period's spend; retry shortly") from exc

    async def close(self) -> None:
        await self.store.close()
        if self._http is not None:
            await self._http.close()


def _seconds_to_next(period: str, now: datetime) -> int:
    start = period_start(period, now)
    if period == "day":
        following = start + timedelta(days=1)
    elif start.month == 12:
        following = start.replace(year=start.year + 1, month=1)
    else:
        following = start.replace(month=start.month + 1)
    return max(int((following - now).total_seconds()), 1)
