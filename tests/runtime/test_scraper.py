"""The scraper over real HTTP: engines that answer, answer garbage, are slow, or are gone;
figures going stale; rates from consecutive scrapes; the engines on seamline's /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from seamline.core.settings import EngineName
from seamline.runtime.exposition import EngineCollector
from seamline.runtime.scraper import EngineScraper, ScrapeTarget
from tests.live import free_port

FIXTURES = Path(__file__).parent / "fixtures"


class Page:
    """What the fake engine answers on /metrics next."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.status = 200
        self.delay_s = 0.0


@asynccontextmanager
async def engine_page(page: Page) -> AsyncIterator[str]:
    async def metrics(request: web.Request) -> web.Response:
        await asyncio.sleep(page.delay_s)
        return web.Response(text=page.text, status=page.status)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def target(url: str, engine: EngineName = "vllm", replica: str = "r1") -> ScrapeTarget:
    return ScrapeTarget(replica, "llama", engine, url)


def test_a_good_page_becomes_the_replicas_load_and_goes_stale_when_the_engine_stops() -> None:
    async def scenario() -> None:
        page = Page((FIXTURES / "vllm.txt").read_text())
        clock = Clock()
        async with engine_page(page) as url:
            scraper = EngineScraper([target(url)], stale_after_s=3.0, clock=clock)
            await scraper.scrape_once()
            load = scraper.load("r1")
            assert load is not None and load.figures.waiting == 3
            page.text = (FIXTURES / "garbage.txt").read_text()
            clock.now += 1
            await scraper.scrape_once()
            state = scraper.states["r1"]
            assert state.error is not None and "Prometheus" in state.error
            assert scraper.load("r1") is load  # the last good figures, still fresh
            clock.now += 2.5
            assert scraper.load("r1") is None  # older than the bound: not routed on
            await scraper.stop()

    asyncio.run(scenario())


def test_an_engine_that_is_gone_slow_or_failing_is_recorded_not_raised() -> None:
    async def scenario() -> None:
        slow = Page((FIXTURES / "vllm.txt").read_text())
        slow.delay_s = 1.0
        failing = Page("")
        failing.status = 503
        async with engine_page(slow) as slow_url, engine_page(failing) as failing_url:
            gone = f"http://127.0.0.1:{free_port()}/metrics"
            scraper = EngineScraper(
                [
                    target(slow_url, replica="slow"),
                    target(failing_url, replica="failing"),
                    target(gone, replica="gone"),
                ],
                timeout_s=0.2,
            )
            await scraper.scrape_once()
            errors = {name: state.error for name, state in scraper.states.items()}
            assert errors["slow"] == "timed out"
            assert errors["failing"] == "HTTP 503"
            assert errors["gone"]
            assert all(scraper.load(name) is None for name in errors)
            await scraper.stop()

    asyncio.run(scenario())


def test_rates_come_from_consecutive_scrapes_and_a_restart_gives_none() -> None:
    def vllm(prompt: float, hits: float, queries: float) -> str:
        return (
            'vllm:num_requests_running{model_name="m"} 1\n'
            f'vllm:prompt_tokens_total{{model_name="m"}} {prompt}\n'
            f'vllm:prefix_cache_hits_total{{model_name="m"}} {hits}\n'
            f'vllm:prefix_cache_queries_total{{model_name="m"}} {queries}\n'
        )

    async def scenario() -> None:
        page = Page(vllm(1000, 0, 1000))
        clock = Clock()
        async with engine_page(page) as url:
            scraper = EngineScraper([target(url)], clock=clock)
            await scraper.scrape_once()
            page.text = vllm(3000, 1500, 3000)
            clock.now += 2
            await scraper.scrape_once()
            load = scraper.load("r1")
            assert load is not None
            assert load.prompt_tokens_per_s == 1000
            assert load.prefix_hit_rate == 0.75  # 1,500 of the interval's 2,000 queried
            page.text = vllm(10, 0, 10)  # the engine restarted
            clock.now += 1
            await scraper.scrape_once()
            load = scraper.load("r1")
            assert load is not None and load.prompt_tokens_per_s is None
            await scraper.stop()

    asyncio.run(scenario())


def test_every_engine_is_exported_in_one_vocabulary_with_the_replica_as_a_label() -> None:
    async def scenario() -> bytes:
        pages = {
            "vllm": Page((FIXTURES / "vllm.txt").read_text()),
            "sglang": Page((FIXTURES / "sglang.txt").read_text()),
            "tgi": Page((FIXTURES / "tgi.txt").read_text()),
        }
        async with (
            engine_page(pages["vllm"]) as v,
            engine_page(pages["sglang"]) as s,
            engine_page(pages["tgi"]) as t,
        ):
            scraper = EngineScraper(
                [
                    target(v, "vllm", "gpu-a"),
                    target(s, "sglang", "gpu-b"),
                    target(t, "tgi", "gpu-c"),
                    target(f"http://127.0.0.1:{free_port()}/metrics", "vllm", "gpu-d"),
                ]
            )
            await scraper.scrape_once()
            await scraper.stop()
        registry = CollectorRegistry()
        registry.register(EngineCollector(scraper))
        return generate_latest(registry)

    text = asyncio.run(scenario()).decode()
    samples = {
        (sample.name, sample.labels.get("replica")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "le" not in sample.labels
    }
    assert samples[("seamline_engine_requests_waiting", "gpu-a")] == 3
    assert samples[("seamline_engine_requests_waiting", "gpu-b")] == 2
    assert samples[("seamline_engine_requests_waiting", "gpu-c")] == 4
    assert samples[("seamline_engine_kv_cache_usage_ratio", "gpu-b")] == 0.55
    assert samples[("seamline_engine_up", "gpu-a")] == 1
    assert samples[("seamline_engine_up", "gpu-d")] == 0
    assert ("seamline_engine_requests_waiting", "gpu-d") not in samples
    assert samples[("seamline_engine_time_to_first_token_seconds_count", "gpu-a")] == 1707
    assert samples[("seamline_engine_preemptions_total", "gpu-a")] == 7
