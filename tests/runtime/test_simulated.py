"""The simulated engine over real HTTP: OpenAI's wire format, vLLM's metrics, and the
behaviour of a continuous-batching server with a KV-cache budget (queueing, prefix-cache
hits, LRU eviction, recompute preemption). Counts and behaviour only, never durations."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from seamline.cli.runtime_simulate import simulate_command
from seamline.runtime.simulated import EngineConfig, render_prompt
from seamline.runtime.simulated_server import RunningEngine, run_engine

# Five times faster than the default timing: the behaviour is the same, the tests shorter.
FAST = 0.2
GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
SYSTEM = "You are a support agent for a bicycle shop. Answer briefly and politely. " * 28


def chat(content: str, max_tokens: int = 8, system: str | None = None) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": content})
    return {"model": "sim-llama", "messages": messages, "max_tokens": max_tokens}


def metrics(engine: RunningEngine) -> dict[str, Any]:
    """Every family by name, as a scraper would read it."""
    text = httpx.get(engine.metrics_url).text
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    """The value of a gauge or counter (``_total``) sample, optionally by label."""
    for sample in families[name].samples:
        if sample.name in (name, f"{name}_total") and labels.items() <= sample.labels.items():
            return float(sample.value)
    raise KeyError(name)


def histogram_count(families: dict[str, Any], name: str) -> float:
    return float(next(s.value for s in families[name].samples if s.name == f"{name}_count"))


@pytest.fixture
def engine() -> Iterator[RunningEngine]:
    with run_engine(EngineConfig(time_scale=FAST)) as running:
        yield running


def test_chat_completion_round_trips_with_usage(engine: RunningEngine) -> None:
    body = chat("Where is my order?", max_tokens=6)

    answer = httpx.post(f"{engine.url}/v1/chat/completions", json=body).json()

    assert answer["object"] == "chat.completion"
    assert answer["model"] == "sim-llama"
    assert answer["choices"][0]["finish_reason"] == "length"
    assert len(answer["choices"][0]["message"]["content"].split()) == 6
    prompt_tokens = -(-len(render_prompt(body["messages"])) // 4)  # 4 characters a token
    assert answer["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 6,
        "total_tokens": prompt_tokens + 6,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_stream_sends_a_chunk_per_token_then_usage_and_done(engine: RunningEngine) -> None:
    body = {**chat("Do you repair tyres?", max_tokens=7), "stream": True}
    body["stream_options"] = {"include_usage": True}

    with httpx.stream("POST", f"{engine.url}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]

    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert len(tokens) == 7
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 7
    whole = httpx.post(f"{engine.url}/v1/chat/completions", json={**body, "stream": False})
    assert "".join(tokens) == whole.json()["choices"][0]["message"]["content"]


def test_metrics_carry_vllm_names_labels_and_counts(engine: RunningEngine) -> None:
    httpx.post(f"{engine.url}/v1/chat/completions", json=chat("Opening hours?", max_tokens=5))

    families = metrics(engine)

    expected = {
        "vllm:num_requests_running": "gauge",
        "vllm:num_requests_waiting": "gauge",
        "vllm:kv_cache_usage_perc": "gauge",
        "vllm:cache_config_info": "gauge",
        "vllm:prompt_tokens": "counter",
        "vllm:generation_tokens": "counter",
        "vllm:prefix_cache_queries": "counter",
        "vllm:prefix_cache_hits": "counter",
        "vllm:num_preemptions": "counter",
        "vllm:request_success": "counter",
        "vllm:time_to_first_token_seconds": "histogram",
        "vllm:inter_token_latency_seconds": "histogram",
        "vllm:e2e_request_latency_seconds": "histogram",
        "vllm:request_queue_time_seconds": "histogram",
    }
    assert {name: families[name].type for name in expected} == expected
    for name in set(expected) - {"vllm:cache_config_info"}:
        assert {s.labels["model_name"] for s in families[name].samples} == {"sim-llama"}
    # As in vLLM: the cache configuration as string labels, value 1, no model_name.
    (info,) = families["vllm:cache_config_info"].samples
    assert info.value == 1
    assert info.labels == {
        "block_size": "16",
        "cache_dtype": "auto",
        "enable_prefix_caching": "True",
        "engine": "0",
        "gpu_memory_utilization": "0.9",
        "num_gpu_blocks": "2048",
    }
    assert value(families, "vllm:generation_tokens") == 5
    assert value(families, "vllm:request_success", finished_reason="length") == 1
    assert value(families, "vllm:request_success", finished_reason="stop") == 0
    assert histogram_count(families, "vllm:time_to_first_token_seconds") == 1
    assert histogram_count(families, "vllm:inter_token_latency_seconds") == 4  # 5 tokens, 4 gaps
    assert histogram_count(families, "vllm:e2e_request_latency_seconds") == 1
    assert histogram_count(families, "vllm:request_queue_time_seconds") == 1
    assert value(families, "vllm:num_requests_running") == 0
    assert value(families, "vllm:kv_cache_usage_perc") == 0  # cached blocks count as free


def test_a_shared_prefix_hits_the_prefix_cache(engine: RunningEngine) -> None:
    first = chat("Alpha: is the shop open on Sunday?", system=SYSTEM)
    second = chat("Beta: can I book a service?", system=SYSTEM)
    url = f"{engine.url}/v1/chat/completions"

    cold = httpx.post(url, json=first).json()["usage"]
    warm = httpx.post(url, json=second).json()["usage"]

    # Whole blocks (16 tokens of 4 characters) of the rendered text the two share.
    texts = zip(render_prompt(first["messages"]), render_prompt(second["messages"]), strict=False)
    shared = next(index for index, (a, b) in enumerate(texts) if a != b)
    assert cold["prompt_tokens_details"]["cached_tokens"] == 0
    assert warm["prompt_tokens_details"]["cached_tokens"] == shared // 64 * 16
    families = metrics(engine)
    assert (
        value(families, "vllm:prefix_cache_hits") == warm["prompt_tokens_details"]["cached_tokens"]
    )
    assert (
        value(families, "vllm:prefix_cache_queries")
        == cold["prompt_tokens"] + warm["prompt_tokens"]
    )


def test_least_recently_freed_prefixes_are_evicted_first() -> None:
    """A 32-block cache holds one 26-block prompt: two other prompts later, it is gone."""
    config = EngineConfig(num_gpu_blocks=32, time_scale=FAST)
    prompts = {name: chat(f"{name} " + "spokes and gears " * 95, max_tokens=2) for name in "ABC"}

    def cached(name: str) -> int:
        answer = httpx.post(f"{running.url}/v1/chat/completions", json=prompts[name]).json()
        return int(answer["usage"]["prompt_tokens_details"]["cached_tokens"])

    with run_engine(config) as running:
        assert cached("A") == 0
        assert cached("A") > 0
        assert cached("B") == 0
        assert cached("C") == 0
        assert cached("A") == 0


def test_a_tiny_kv_budget_queues_and_preempts_yet_every_request_completes() -> None:
    config = EngineConfig(
        num_gpu_blocks=16, block_size=16, max_num_seqs=4, max_num_batched_tokens=64, time_scale=FAST
    )
    requests = 24

    async def load(engine: RunningEngine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        samples: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=engine.url, timeout=60) as client:

            async def call(index: int) -> dict[str, Any]:
                body = chat(f"request {index}: " + "where is my bike? " * 8, max_tokens=60)
                response = await client.post("/v1/chat/completions", json=body)
                assert response.status_code == 200
                return dict(response.json()["usage"])

            calls = asyncio.gather(*(call(index) for index in range(requests)))
            while not calls.done():
                text = (await client.get("/metrics")).text
                families = {f.name: f for f in text_string_to_metric_families(text)}
                samples.append({name: value(families, name) for name in GAUGES})
                await asyncio.sleep(0.005)
            return await calls, samples

    with run_engine(config) as engine:
        usages, samples = asyncio.run(load(engine))
        families = metrics(engine)

    assert [usage["completion_tokens"] for usage in usages] == [60] * requests
    assert max(sample["vllm:num_requests_waiting"] for sample in samples) > 0
    assert max(sample["vllm:num_requests_running"] for sample in samples) <= 4
    assert all(0 <= sample["vllm:kv_cache_usage_perc"] <= 1 for sample in samples)
    assert max(sample["vllm:kv_cache_usage_perc"] for sample in samples) > 0
    assert value(families, "vllm:num_preemptions") > 0
    assert value(families, "vllm:request_success", finished_reason="length") == requests
    assert value(families, "vllm:generation_tokens") == 60 * requests  # recompute adds none
    assert value(families, "vllm:num_requests_waiting") == 0
    assert value(families, "vllm:kv_cache_usage_perc") == 0


def test_a_client_leaving_mid_stream_frees_its_blocks(engine: RunningEngine) -> None:
    body = {**chat("Tell me everything.", max_tokens=5000), "stream": True}

    with httpx.stream("POST", f"{engine.url}/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        next(line for line in lines if '"content":"the "' in line)

    for _ in range(500):  # the engine notices at its next write
        families = metrics(engine)
        if value(families, "vllm:num_requests_running") == 0:
            break
    assert value(families, "vllm:num_requests_running") == 0
    assert value(families, "vllm:kv_cache_usage_perc") == 0
    assert value(families, "vllm:request_success", finished_reason="length") == 0


def test_models_and_health_answer_like_vllm(engine: RunningEngine) -> None:
    models = httpx.get(f"{engine.url}/v1/models").json()

    assert [model["id"] for model in models["data"]] == ["sim-llama"]
    assert models["data"][0]["max_model_len"] == 2048 * 16
    assert httpx.get(f"{engine.url}/health").status_code == 200


def test_bad_requests_are_refused_in_openai_error_shape() -> None:
    url = "/v1/chat/completions"
    with (
        run_engine(EngineConfig(num_gpu_blocks=8, time_scale=FAST)) as engine,
        httpx.Client(base_url=engine.url) as client,
    ):
        other_model = client.post(url, json={**chat("hi"), "model": "gpt-4o"})
        too_long = client.post(url, json=chat("many words " * 200, max_tokens=10))
        not_json = client.post(url, content=b"{", headers={"Content-Type": "application/json"})

    assert other_model.status_code == 404
    assert "does not exist" in other_model.json()["error"]["message"]
    assert too_long.status_code == 400
    assert "maximum context length is 128 tokens" in too_long.json()["error"]["message"]
    assert not_json.status_code == 400


def test_simulate_command_reports_an_impossible_config_in_one_line() -> None:
    app = typer.Typer()
    app.command()(simulate_command)

    result = CliRunner().invoke(app, ["--kv-blocks", "0"])

    assert result.exit_code == 1
    assert "num_gpu_blocks must be at least 1" in result.output
