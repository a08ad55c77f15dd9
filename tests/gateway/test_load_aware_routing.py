"""The router's ``load-aware`` and ``round-robin`` choices, on live figures given directly
(the end-to-end path over HTTP against simulated engines is in tests/runtime)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping

from seamline.core.settings import GatewayConfig, ModelConfig, RuntimeConfig
from seamline.gateway.catalog import ModelCatalog, ModelEntry
from seamline.gateway.stages.router import Attempt, DeploymentStats, Router
from seamline.providers.base import Deployment, StreamChunk
from seamline.runtime.engines import EngineFigures
from seamline.runtime.scraper import ReplicaLoad, ScrapeTarget

REPLICAS = ("a", "b", "c", "d")
SYSTEM = "You are the support assistant of Example Corp. " * 40  # ~2,000 characters


def catalog() -> ModelCatalog:
    return ModelCatalog(
        ModelConfig(name="m", base_url=f"http://{r}:8000/v1", deployment=r, engine="vllm")
        for r in REPLICAS
    )


def load(replica: str, running: float, waiting: float, kv: float | None) -> ReplicaLoad:
    return ReplicaLoad(
        ScrapeTarget(replica, "m", "vllm", f"http://{replica}:8000/metrics"),
        EngineFigures(running=running, waiting=waiting, kv_usage=kv),
        scraped_at=time.monotonic(),
        scraped_at_wall=time.time(),
    )


def router(loads: Mapping[str, ReplicaLoad | None], **runtime: float) -> tuple[Router, ModelEntry]:
    config = GatewayConfig(routing="load-aware", runtime=RuntimeConfig(**runtime))
    served = catalog()
    return Router(served, config, loads=loads.get), served.get("m")


def test_the_least_loaded_replica_is_chosen() -> None:
    loads = {
        "a": load("a", 30, 12, 0.9),
        "b": load("b", 4, 0, 0.2),
        "c": load("c", 25, 3, 0.7),
        "d": load("d", 28, 8, 0.8),
    }
    routing, entry = router(loads)
    assert {routing.choose(entry, set()).id for _ in range(20)} == {"b"}  # type: ignore[union-attr]


def test_calls_started_since_the_scrape_count_so_a_burst_spreads() -> None:
    loads = {r: load(r, 2, 0, 0.1) for r in REPLICAS}
    routing, entry = router(loads)
    chosen = []
    for _ in range(40):  # a burst inside one scrape interval; none of the calls ends
        deployment = routing.choose(entry, set())
        assert deployment is not None
        routing.stats[deployment.id].in_flight += 1
        chosen.append(deployment.id)
    assert Counter(chosen) == {r: 10 for r in REPLICAS}


def test_a_shared_prompt_prefix_goes_back_to_the_replica_that_holds_it() -> None:
    # b is one request busier than the others: without the prefix it would not be chosen.
    loads = {r: load(r, 5 if r == "b" else 4, 0, 0.3) for r in REPLICAS}
    routing, entry = router(loads)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]
    assert routing.choose(entry, set(), routing.affinity.chain(messages, "m")).id == "a"  # type: ignore[union-attr]
    routing.affinity.sent(routing.affinity.chain(messages, "m"), "b")
    again = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Refund?"}]
    for _ in range(10):
        chosen = routing.choose(entry, set(), routing.affinity.chain(again, "m"))
        assert chosen is not None and chosen.id == "b"
    # The same system prompt to another model is not taken for this one's.
    assert routing.affinity.matches(routing.affinity.chain(again, "other-model")) == {}


def test_a_prefix_holder_that_is_swamped_loses_the_call() -> None:
    loads = {r: load(r, 2, 0, 0.1) for r in REPLICAS}
    routing, entry = router(loads)
    messages = [{"role": "system", "content": SYSTEM}]
    prefix = routing.affinity.chain(messages, "m")
    routing.affinity.sent(prefix, "a")
    loads["a"] = load("a", 60, 40, 0.98)
    assert routing.choose(entry, set(), prefix).id != "a"  # type: ignore[union-attr]


def test_missing_or_stale_figures_fall_back_to_least_busy() -> None:
    loads: dict[str, ReplicaLoad | None] = {
        "a": load("a", 0, 0, 0.0),
        "b": None,  # stale: the scraper gives none
        "c": load("c", 0, 0, 0.0),
        "d": load("d", 0, 0, 0.0),
    }
    routing, entry = router(loads)
    for replica in ("a", "c", "d"):
        routing.stats[replica] = DeploymentStats(in_flight=5)
    assert routing.choose(entry, set()).id == "b"  # type: ignore[union-attr]
    assert routing.load_fallbacks == 1


def test_round_robin_takes_each_replica_in_turn() -> None:
    served = catalog()
    routing = Router(served, GatewayConfig(routing="round-robin"))
    entry = served.get("m")
    chosen = [routing.choose(entry, set()).id for _ in range(8)]  # type: ignore[union-attr]
    assert chosen == [*REPLICAS, *REPLICAS]


def test_a_stream_counts_as_in_flight_until_it_ends() -> None:
    served = catalog()
    routing = Router(served, GatewayConfig(routing="least-busy"))

    async def chunks(deployment: Deployment) -> AsyncIterator[StreamChunk]:
        for n in range(3):
            yield StreamChunk({"choices": [{"delta": {"content": str(n)}}]})

    async def scenario() -> list[int]:
        first, rest = await routing.open_stream("m", Attempt(), chunks)
        assert first is not None
        busy = sum(s.in_flight for s in routing.stats.values())
        opened = [busy]
        second, other = await routing.open_stream("m", Attempt(), chunks)
        assert second is not None
        # The second stream went elsewhere: the first replica still streams.
        opened.append(len({d for d, s in routing.stats.items() if s.in_flight}))
        async for _ in rest:
            pass
        await other.aclose()  # type: ignore[attr-defined]
        opened.append(sum(s.in_flight for s in routing.stats.values()))
        return opened

    assert asyncio.run(scenario()) == [1, 2, 0]


def test_a_stream_dropped_unclosed_frees_its_count() -> None:
    served = catalog()
    routing = Router(served, GatewayConfig(routing="least-busy"))

    async def chunks(deployment: Deployment) -> AsyncIterator[StreamChunk]:
        yield StreamChunk({"choices": [{"delta": {"content": "a"}}]})
        yield StreamChunk({"choices": [{"delta": {"content": "b"}}]})

    async def scenario() -> tuple[int, int]:
        _, rest = await routing.open_stream("m", Attempt(), chunks)
        held = sum(s.in_flight for s in routing.stats.values())
        del rest  # neither read nor closed, as a client that left before the first write
        gc.collect()
        return held, sum(s.in_flight for s in routing.stats.values())

    assert asyncio.run(scenario()) == (1, 0)
