"""Each engine's real /metrics text (fixtures/README.md says where each page comes from)
read into seamline's one vocabulary."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from seamline.runtime.engines import UnreadableMetrics, read_figures

FIXTURES = Path(__file__).parent / "fixtures"


def page(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_vllm_current_names() -> None:
    figures = read_figures("vllm", page("vllm.txt"))
    assert (figures.running, figures.waiting, figures.kv_usage) == (12, 3, 0.42)
    assert (figures.prefix_queries, figures.prefix_hits) == (100_000, 62_000)
    assert figures.preemptions == 7
    assert figures.prompt_tokens == 1_843_211
    assert figures.generation_tokens == 412_877
    assert figures.ttft is not None and figures.ttft.count == 1707
    assert figures.ttft.buckets[-1][0] == math.inf
    # Both the new and the deprecated inter-token names are on the page: one is read, once.
    assert figures.inter_token is not None and figures.inter_token.count == 411_170
    assert figures.cache is not None
    assert (figures.cache.block_size, figures.cache.num_gpu_blocks) == (16, 27_264)
    assert figures.cache.gpu_memory_utilization == 0.9


def test_vllm_legacy_names_are_mapped_to_the_same_figures() -> None:
    figures = read_figures("vllm", page("vllm_legacy.txt"))
    assert (figures.running, figures.waiting) == (5, 0)
    assert figures.kv_usage == 0.8  # from vllm:gpu_cache_usage_perc
    assert figures.prefix_hit_rate == 0.35  # the V0 engine's gauge
    assert figures.preemptions == 2
    assert figures.cache is not None and figures.cache.num_gpu_blocks == 28_086


def test_sglang() -> None:
    figures = read_figures("sglang", page("sglang.txt"))
    assert (figures.running, figures.waiting, figures.kv_usage) == (8, 2, 0.55)
    assert figures.prefix_hit_rate == 0.3
    assert (figures.prompt_tokens, figures.generation_tokens) == (987_654, 345_678)
    assert figures.ttft is not None and figures.ttft.count == 2410
    assert figures.cache is None


def test_tgi_kv_usage_is_the_batch_tokens_over_the_most_it_may_hold() -> None:
    figures = read_figures("tgi", page("tgi.txt"))
    assert (figures.running, figures.waiting) == (6, 4)
    assert figures.kv_usage == pytest.approx(12_000 / 163_840)
    assert figures.generation_tokens == 762_522
    assert figures.ttft is None  # TGI has no TTFT histogram: not reported, not zero


@pytest.mark.parametrize(
    ("engine", "text"),
    [
        ("vllm", page("garbage.txt")),  # an HTML error page from a proxy
        ("vllm", ""),
        ("vllm", page("sglang.txt")),  # the wrong engine named in the settings
        ("sglang", page("vllm.txt")),
        ("vllm", 'vllm:num_requests_running{model_name="m"} twelve\n'),
        ("vllm", '{"detail": "Not Found"}'),
        ("openai", page("vllm.txt")),  # a hosted API exports nothing to read
    ],
)
def test_unreadable_pages_say_so_rather_than_reading_zeros(engine: str, text: str) -> None:
    with pytest.raises(UnreadableMetrics):
        read_figures(engine, text)  # type: ignore[arg-type]


def test_series_of_several_engines_behind_one_page_are_summed() -> None:
    text = (
        'vllm:num_requests_running{engine="0",model_name="m"} 3.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 4.0\n'
        'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0\n'
        'vllm:num_requests_waiting{engine="1",model_name="m"} 0.0\n'
    )
    figures = read_figures("vllm", text)
    assert (figures.running, figures.waiting, figures.kv_usage) == (7, 1, None)


def test_ratios_are_averaged_over_label_sets_and_counters_summed_past_created_lines() -> None:
    text = (
        "# HELP vllm:kv_cache_usage_perc KV-cache usage.\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.7\n'
        'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6\n'
        "# HELP vllm:prompt_tokens_total Prompt tokens.\n"
        "# TYPE vllm:prompt_tokens_total counter\n"
        'vllm:prompt_tokens_total{engine="0",model_name="m"} 100.0\n'
        'vllm:prompt_tokens_created{engine="0",model_name="m"} 1.7e9\n'
        'vllm:prompt_tokens_total{engine="1",model_name="m"} 200.0\n'
        'vllm:prompt_tokens_created{engine="1",model_name="m"} 1.7e9\n'
        'vllm:num_requests_running_extra{model_name="m"} 9.0\n'
        'vllm:num_requests_running{model_name="m"} 2.0\n'
        'vllm:num_requests_waiting{model_name="m"} NaN\n'
    )
    figures = read_figures("vllm", text)
    assert figures.kv_usage == pytest.approx(0.65)
    assert figures.prompt_tokens == 300
    assert figures.running == 2  # not the longer name that starts the same
    assert figures.waiting is None  # NaN is "not reported", not idle


@pytest.mark.parametrize(
    "bucket",
    [
        'vllm:time_to_first_token_seconds_bucket{le="abc",model_name="m"} 1.0\n',
        'vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} x\n',
        'vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 1.0\n',  # no +Inf
    ],
)
def test_an_unreadable_histogram_is_absent_and_the_load_still_read(bucket: str) -> None:
    text = 'vllm:num_requests_running{model_name="m"} 1.0\n' + bucket
    figures = read_figures("vllm", text)
    assert figures.running == 1 and figures.ttft is None


def test_bucket_bounds_are_read_from_le_only() -> None:
    text = (
        'vllm:num_requests_running{model_name="m"} 1.0\n'
        'vllm:time_to_first_token_seconds_bucket{handle="9",le="0.5",model_name="m"} 3.0\n'
        'vllm:time_to_first_token_seconds_bucket{handle="9",le="+Inf",model_name="m"} 4.0\n'
        'vllm:time_to_first_token_seconds_count{model_name="m"} 4.0\n'
    )
    figures = read_figures("vllm", text)
    assert figures.ttft is not None
    assert figures.ttft.buckets == ((0.5, 3.0), (math.inf, 4.0))


def test_a_cache_configuration_with_impossible_numbers_is_read_as_unknown() -> None:
    text = (
        'vllm:num_requests_running{model_name="m"} 1.0\n'
        'vllm:cache_config_info{block_size="inf",num_gpu_blocks="abc"} 1.0\n'
    )
    cache = read_figures("vllm", text).cache
    assert cache is not None and (cache.block_size, cache.num_gpu_blocks) == (None, None)
