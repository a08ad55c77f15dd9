"""The gateway in front of simulated vLLM engines, over real HTTP: their metrics scraped and
exported, load-aware routing to the least-loaded and to the prefix-holding replica, and
fallback when the figures go stale."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from seamline.core.settings import ModelConfig
from seamline.runtime.simulated import EngineConfig
from seamline.runtime.simulated_server import RunningEngine, run_engine
from tests.gateway.conftest import RunningGateway
from tests.live import free_port

SYSTEM = "You are the support assistant of Example Corp. Answer in one line. " * 30
RUNTIME = {"scrape_interval_s": 0.1, "stale_after_s": 1.0}


@pytest.fixture
def engines() -> Iterator[dict[str, RunningEngine]]:
    started = {
        name: run_engine(EngineConfig(model="llama", num_gpu_blocks=4096, max_num_seqs=8))
        for name in ("a", "b")
    }
    yield started
    for engine in started.values():
        engine.stop()


def replicas(engines: dict[str, RunningEngine], **overrides: str) -> list[ModelConfig]:
    return [
        ModelConfig(
            name="llama",
            base_url=f"{engine.url}/v1",
            deployment=name,
            engine="vllm",
            **({"metrics_url": overrides[name]} if name in overrides else {}),
        )
        for name, engine in engines.items()
    ]


def engine_samples(gateway: RunningGateway) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{gateway.url}/metrics").text
    return {
        (sample.name, sample.labels["replica"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("seamline_engine_")
        for sample in family.samples
        if "le" not in sample.labels
    }


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def ask(gateway: RunningGateway, question: str, max_tokens: int = 4) -> str:
    """One call through the gateway; the replica that served it, from its event."""
    before = len(gateway.events(0))
    answer = gateway.client().chat.completions.create(
        model="llama",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        max_tokens=max_tokens,
    )
    assert answer.choices[0].message.content
    return str(gateway.events(before + 1)[-1]["replica"])


def test_engine_figures_reach_the_gateways_metrics_with_the_replica_as_a_label(
    start_gateway: Callable[..., RunningGateway], engines: dict[str, RunningEngine]
) -> None:
    gateway = start_gateway(replicas(engines), routing="load-aware", runtime=RUNTIME)
    wait_for(lambda: engine_samples(gateway).get(("seamline_engine_up", "a")) == 1)
    ask(gateway, "Where is my order?")
    wait_for(
        lambda: (
            engine_samples(gateway).get(("seamline_engine_prompt_tokens_per_second", "a"))
            is not None
        )
    )
    samples = engine_samples(gateway)
    assert samples[("seamline_engine_up", "b")] == 1
    assert samples[("seamline_engine_kv_cache_usage_ratio", "a")] >= 0
    assert ("seamline_engine_time_to_first_token_seconds_count", "a") in samples


def test_a_shared_prompt_prefix_goes_back_to_the_replica_that_holds_it(
    start_gateway: Callable[..., RunningGateway], engines: dict[str, RunningEngine]
) -> None:
    gateway = start_gateway(replicas(engines), routing="load-aware", runtime=RUNTIME)
    wait_for(lambda: gateway.app.gateway.engines.load("b") is not None)
    first = ask(gateway, "Where is my order?")
    other = "b" if first == "a" else "a"
    # The holder is made one request busier than the other replica: within the slack, so
    # the prefix keeps the calls there; without it, they would all go to the other one.
    with busy(engines[first], 1):
        running = ("seamline_engine_requests_running", first)
        wait_for(lambda: engine_samples(gateway).get(running, 0) >= 1)
        served = Counter(ask(gateway, f"Question {n}: can I get a refund?") for n in range(6))
        assert served == {first: 6}
        unshared = [{"role": "user", "content": "A question with no shared prefix at all."}]
        answer = gateway.client().chat.completions.create(
            model="llama", messages=unshared, max_tokens=4
        )
        assert answer.choices[0].message.content
        assert gateway.events(8)[-1]["replica"] == other
    hits = httpx.get(engines[first].metrics_url).text
    figures = {s.name: s.value for f in text_string_to_metric_families(hits) for s in f.samples}
    assert figures["vllm:prefix_cache_hits_total"] > 0


@contextmanager
def busy(engine: RunningEngine, requests: int) -> Iterator[None]:
    """Long requests sent to ``engine`` behind the gateway's back, as another gateway's
    traffic would be, until the block ends."""
    with httpx.Client(base_url=engine.url, timeout=60) as direct:
        streams = [
            direct.stream(
                "POST",
                "/v1/chat/completions",
                json={
                    "model": "llama",
                    "messages": [{"role": "user", "content": f"long job {n}"}],
                    "max_tokens": 4000,
                    "stream": True,
                },
            )
            for n in range(requests)
        ]
        opened = [stream.__enter__() for stream in streams]
        try:
            yield
        finally:
            for stream in opened:
                stream.close()


def test_the_least_loaded_replica_takes_the_calls(
    start_gateway: Callable[..., RunningGateway], engines: dict[str, RunningEngine]
) -> None:
    gateway = start_gateway(replicas(engines), routing="load-aware", runtime=RUNTIME)
    with busy(engines["a"], 12):  # 8 run, 4 wait
        waiting = ("seamline_engine_requests_waiting", "a")
        wait_for(lambda: engine_samples(gateway).get(waiting, 0) >= 4)
        served = Counter(ask(gateway, f"Question {n}") for n in range(6))
    assert served == {"b": 6}


def test_stale_figures_fall_back_to_least_busy_and_calls_still_succeed(
    start_gateway: Callable[..., RunningGateway], engines: dict[str, RunningEngine]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/metrics"
    gateway = start_gateway(
        replicas(engines, a=nowhere, b=nowhere), routing="load-aware", runtime=RUNTIME
    )
    served = Counter(ask(gateway, f"Question {n}") for n in range(4))
    assert sum(served.values()) == 4
    text = httpx.get(f"{gateway.url}/metrics").text
    fallbacks = next(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "seamline_load_aware_fallbacks_total"
    )
    assert fallbacks >= 4
    samples = engine_samples(gateway)
    assert samples[("seamline_engine_up", "a")] == 0
    assert ("seamline_engine_requests_running", "a") not in samples
