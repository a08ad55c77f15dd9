"""Reading every engine's ``/metrics`` on a fixed interval, off the request path.

One :class:`EngineScraper` per gateway worker: all replicas are fetched concurrently each
interval, each fetch bounded by a timeout, so a slow or dead engine costs one timed-out fetch
per interval and never a call's latency. The router reads :meth:`EngineScraper.load` (a dict
lookup); a replica whose last good figures are older than the staleness bound has no load,
and the router falls back to least-busy for it.

The HTTP client is aiohttp, as for upstream calls (providers/http_upstream.py): httpx's
client costs several times more CPU per request, and this runs every second per replica.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import aiohttp

from seamline.core.settings import EngineName
from seamline.providers.base import Deployment
from seamline.runtime.engines import EngineFigures, UnreadableMetrics, read_figures

log = logging.getLogger("seamline.runtime")
MAX_PAGE_BYTES = 4 * 1024 * 1024  # a vLLM page is ~20-60 KB; anything this big is not one


def targets_of(deployments: Iterable[Deployment]) -> list[ScrapeTarget]:
    """The deployments that name an engine with a metrics page, each once."""
    found: dict[str, ScrapeTarget] = {}
    for deployment in deployments:
        if deployment.engine and deployment.metrics_url and deployment.engine != "openai":
            engine = cast(EngineName, deployment.engine)
            found.setdefault(
                deployment.id,
                ScrapeTarget(deployment.id, deployment.model, engine, deployment.metrics_url),
            )
    return list(found.values())


@dataclass(frozen=True)
class ScrapeTarget:
    replica: str  # the deployment id, as in events and the gateway's own metrics
    model: str
    engine: EngineName
    url: str


@dataclass(frozen=True)
class ReplicaLoad:
    """A replica's figures from one good scrape, with the rates since the one before."""

    target: ScrapeTarget
    figures: EngineFigures
    scraped_at: float  # time.monotonic()
    scraped_at_wall: float  # time.time(), for people
    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    prefix_hit_rate: float | None = None  # over the last interval when counters allow

    @functools.cached_property
    def queued(self) -> float:
        """Requests running and waiting: where the router's count of a queue starts."""
        return (self.figures.running or 0.0) + (self.figures.waiting or 0.0)


@dataclass
class ScrapeState:
    """What is known of one replica: its last good load, and why the last try failed."""

    target: ScrapeTarget
    load: ReplicaLoad | None = None
    error: str | None = None
    failures: int = 0
    scrapes: int = 0


class EngineScraper:
    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 0.5,
        stale_after_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.states = {t.replica: ScrapeState(t) for t in targets}
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def now(self) -> float:
        """The clock figures are timed by (``scraped_at``)."""
        return self._clock()

    def load(self, replica: str) -> ReplicaLoad | None:
        """The replica's figures when fresh; None when never read, or older than the
        staleness bound (the engine stopped answering, or answers garbage)."""
        state = self.states.get(replica)
        if state is None or state.load is None:
            return None
        if self._clock() - state.load.scraped_at > self.stale_after_s:
            return None
        return state.load

    def start(self) -> None:
        if self.states and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def scrape_once(self) -> None:
        """Every replica, concurrently, once."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        await asyncio.gather(*(self._scrape(self._session, s) for s in self.states.values()))

    async def _run(self) -> None:
        while True:
            started = self._clock()
            try:
                await self.scrape_once()
            except Exception:  # a bug here must not stop every later scrape
                log.exception("scraping the engines' metrics failed")
            await asyncio.sleep(max(0.0, self.interval_s - (self._clock() - started)))

    async def _scrape(self, session: aiohttp.ClientSession, state: ScrapeState) -> None:
        state.scrapes += 1
        try:
            async with session.get(state.target.url) as response:
                if response.status != 200:
                    raise UnreadableMetrics(f"HTTP {response.status}")
                body = await _body(response)
            figures = read_figures(state.target.engine, body.decode("utf-8", "replace"))
        except (aiohttp.ClientError, TimeoutError, UnreadableMetrics) as exc:
            self._failed(state, _reason(exc))
            return
        except Exception as exc:  # whatever else one engine's answer causes stays its own
            log.exception("reading the metrics of %s", state.target.replica)
            self._failed(state, f"unreadable: {type(exc).__name__}")
            return
        self._read(state, figures)

    def _read(self, state: ScrapeState, figures: EngineFigures) -> None:
        now = self._clock()
        state.load = _with_rates(state.target, figures, now, time.time(), state.load)
        if state.error is not None:
            log.info("metrics of %s readable again", state.target.replica)
        state.error = None

    def _failed(self, state: ScrapeState, reason: str) -> None:
        state.failures += 1
        if state.error != reason:  # once per change, not every second
            log.warning("metrics of %s unreadable: %s", state.target.replica, reason)
        state.error = reason


def _with_rates(
    target: ScrapeTarget,
    figures: EngineFigures,
    now: float,
    wall: float,
    before: ReplicaLoad | None,
) -> ReplicaLoad:
    """Rates from this scrape's counters against the previous good one (counters that went
    down mean the engine restarted: no rate this time rather than a negative one)."""
    elapsed = now - before.scraped_at if before is not None else 0.0

    def rate(current: float | None, previous: float | None) -> float | None:
        if current is None or previous is None or elapsed <= 0 or current < previous:
            return None
        return (current - previous) / elapsed

    old = before.figures if before is not None else None
    hit_rate = figures.prefix_hit_rate  # an engine's own gauge, where it has one
    queries = rate(figures.prefix_queries, old.prefix_queries if old else None)
    hits = rate(figures.prefix_hits, old.prefix_hits if old else None)
    if queries and hits is not None:  # the counters' share over the interval, else none
        hit_rate = min(1.0, hits / queries)
    return ReplicaLoad(
        target,
        figures,
        now,
        wall,
        rate(figures.prompt_tokens, old.prompt_tokens if old else None),
        rate(figures.generation_tokens, old.generation_tokens if old else None),
        hit_rate,
    )


async def _body(response: aiohttp.ClientResponse) -> bytes:
    """The whole page, refused past MAX_PAGE_BYTES (a wrong URL can stream anything)."""
    if (response.content_length or 0) > MAX_PAGE_BYTES:
        raise UnreadableMetrics("the answer is larger than any metrics page")
    chunks, size = [], 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_PAGE_BYTES:
            raise UnreadableMetrics("the answer is larger than any metrics page")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    """Why a scrape failed, for logs and ``seamline runtime status``: never a URL, which
    may carry credentials (aiohttp puts the URL in some of its messages)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, UnreadableMetrics):
        return str(exc)
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"
    return type(exc).__name__
