"""Spending caps in USD per project or key, per UTC day or month, exact under concurrency.

A call's cost is known only when it ends, so admission reserves the most the call can cost
(its prompt tokens at the input price plus its ``max_tokens``, or a configured default, at
the output price) and refuses a call whose reservation does not fit beside what is spent and
what calls in flight have reserved. When the call ends its reservation is replaced by its
real cost. As long as reservations are upper bounds the cap is never exceeded; when a call
sets no ``max_tokens`` and outgrows the default, by at most that one call's excess.

Spend starts, per period, from the events already stored, so a restart forgets nothing. One
worker keeps the counters in memory; several share them in Redis (one Lua script reserves
atomically). At ``alert_at`` of the cap a warning is logged, a metric counts it and the
optional webhook is called, once per budget and period.
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
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from seamline.core.clock import isoformat, utcnow
from seamline.core.errors import BudgetExceeded, Unavailable
from seamline.core.settings import BudgetConfig
from seamline.registry import Actor
from seamline.store import Database
from seamline.store.schema import events

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
