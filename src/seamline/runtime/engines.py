"""The serving engines' own metric names, read into one vocabulary.

vLLM, SGLang, TGI and llama.cpp's server each export Prometheus text under names of their
own, and rename them between versions (vLLM's ``gpu_cache_usage_perc`` became
``kv_cache_usage_perc``). :func:`read_figures` takes one page of an engine's ``/metrics`` and
returns :class:`EngineFigures`: requests running and waiting, KV-cache usage (0-1), prefix
cache hits and queries, token counters, preemptions, TTFT and inter-token latency histograms,
and the cache configuration where the engine states it. A name absent from a page leaves its
figure ``None``, never zero: "not reported" and "idle" must not look alike to the router.

The parser is written here rather than taken from ``prometheus_client.parser``: it runs for
every replica every second in each gateway worker, and reads only the few dozen lines whose
names it maps (a vLLM page has hundreds), which makes it about an order of magnitude cheaper
(``bench/routing.py`` measures both).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from seamline.core.settings import EngineName


class UnreadableMetrics(ValueError):
    """The page is not Prometheus text of the engine the deployment names."""


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts by upper bound (``+Inf`` last), summed over label sets."""

    buckets: tuple[tuple[float, float], ...]
    sum: float
    count: float


@dataclass(frozen=True)
class CacheConfig:
    """What ``vllm:cache_config_info`` states about the engine's KV cache."""

    block_size: int | None
    num_gpu_blocks: int | None
    gpu_memory_utilization: float | None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineFigures:
    """One replica's live figures in seamline's vocabulary. Counters are totals since the
    engine started; the scraper turns consecutive totals into rates."""

    running: float | None = None
    waiting: float | None = None
    kv_usage: float | None = None  # share of the KV cache in use, 0-1
    prefix_hit_rate: float | None = None  # as the engine states it (a gauge), 0-1
    prefix_queries: float | None = None  # tokens looked up in the prefix cache (counter)
    prefix_hits: float | None = None  # of which found (counter)
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    preemptions: float | None = None
    ttft: Histogram | None = None
    inter_token: Histogram | None = None
    cache: CacheConfig | None = None


@dataclass(frozen=True)
class _Names:
    """Where each figure is found in one engine's page: the first name present wins, so a
    current name comes before the one it replaced."""

    running: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    kv_usage: tuple[str, ...] = ()
    prefix_hit_rate: tuple[str, ...] = ()
    prefix_queries: tuple[str, ...] = ()
    prefix_hits: tuple[str, ...] = ()
    prompt_tokens: tuple[str, ...] = ()
    generation_tokens: tuple[str, ...] = ()
    preemptions: tuple[str, ...] = ()
    ttft: tuple[str, ...] = ()
    inter_token: tuple[str, ...] = ()
    # TGI states no KV usage: it is read as the batch's tokens over the most it may hold.
    kv_used_tokens: tuple[str, ...] = ()
    kv_total_tokens: tuple[str, ...] = ()
    cache_info: tuple[str, ...] = ()

    def scalars(self) -> dict[str, tuple[str, ...]]:
        return {
            name: getattr(self, name)
            for name in (
                "running",
                "waiting",
                "kv_usage",
                "prefix_hit_rate",
                "prefix_queries",
                "prefix_hits",
                "prompt_tokens",
                "generation_tokens",
                "preemptions",
                "kv_used_tokens",
                "kv_total_tokens",
            )
        }


NAMES: dict[EngineName, _Names] = {
    "vllm": _Names(
        running=("vllm:num_requests_running",),
        waiting=("vllm:num_requests_waiting",),
        kv_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        prefix_hit_rate=("vllm:gpu_prefix_cache_hit_rate",),  # V0 engine's gauge
        prefix_queries=("vllm:prefix_cache_queries_total",),
        prefix_hits=("vllm:prefix_cache_hits_total",),
        prompt_tokens=("vllm:prompt_tokens_total",),
        generation_tokens=("vllm:generation_tokens_total",),
        preemptions=("vllm:num_preemptions_total",),
        ttft=("vllm:time_to_first_token_seconds",),
        inter_token=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        cache_info=("vllm:cache_config_info",),
    ),
    "sglang": _Names(
        running=("sglang:num_running_reqs",),
        waiting=("sglang:num_queue_reqs",),
        kv_usage=("sglang:token_usage",),
        prefix_hit_rate=("sglang:cache_hit_rate",),
        prompt_tokens=("sglang:prompt_tokens_total",),
        generation_tokens=("sglang:generation_tokens_total",),
        preemptions=("sglang:num_retracted_reqs",),
        ttft=("sglang:time_to_first_token_seconds",),
        inter_token=(
            "sglang:inter_token_latency_seconds",
            "sglang:time_per_output_token_seconds",
        ),
    ),
    "tgi": _Names(
        running=("tgi_batch_current_size",),
        waiting=("tgi_queue_size",),
        generation_tokens=("tgi_request_generated_tokens_sum",),
        prompt_tokens=("tgi_request_input_length_sum",),
        kv_used_tokens=("tgi_batch_current_max_tokens",),
        kv_total_tokens=("tgi_batch_max_total_tokens",),
    ),
    "llama.cpp": _Names(
        running=("llamacpp:requests_processing",),
        waiting=("llamacpp:requests_deferred",),
        kv_usage=("llamacpp:kv_cache_usage_ratio",),
        prompt_tokens=("llamacpp:prompt_tokens_total",),
        generation_tokens=("llamacpp:tokens_predicted_total",),
    ),
    "openai": _Names(),  # a hosted API: nothing to scrape
}


def read_figures(engine: EngineName, text: str) -> EngineFigures:
    """The figures in one ``/metrics`` page of ``engine``; :class:`UnreadableMetrics` when
    the page is not Prometheus text or carries none of the engine's load figures (the wrong
    engine named, or metrics disabled), so the router falls back instead of reading zeros."""
    names = NAMES[engine]
    scalars = names.scalars()
    histograms = {"ttft": names.ttft, "inter_token": names.inter_token}
    wanted = {n for group in scalars.values() for n in group} | set(names.cache_info)
    wanted_histograms = {n for group in histograms.values() for n in group}
    sample = _Page.parse(text, wanted, wanted_histograms)
    found = {figure: sample.first(candidates) for figure, candidates in scalars.items()}
    if found["running"] is None and found["waiting"] is None and found["kv_usage"] is None:
        raise UnreadableMetrics(
            f"no {engine} load figures in the answer (expected {', '.join(names.running)})"
            if names.running
            else f"{engine} exports no metrics to read"
        )
    used, total = found.pop("kv_used_tokens"), found.pop("kv_total_tokens")
    if found["kv_usage"] is None and used is not None and total:
        found["kv_usage"] = min(1.0, used / total)
    return EngineFigures(
        **found,
        ttft=sample.histogram(names.ttft),
        inter_token=sample.histogram(names.inter_token),
        cache=sample.cache_config(names.cache_info),
    )


@dataclass
class _Page:
    """The wanted series of one page, summed over label sets (several engines behind one
    endpoint, data-parallel ranks, or several served model names)."""

    values: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, wanted: set[str], histograms: set[str]) -> _Page:
        page = cls()
        prefixes = tuple(wanted | histograms)
        lines = 0
        for line in text.splitlines():
            if not line or line[0] == "#":
                continue
            lines += 1
            if not line.startswith(prefixes):
                continue
            brace = line.find("{")
            space = line.find(" ")
            if space < 0:
                raise UnreadableMetrics(f"not Prometheus text: {line[:80]!r}")
            if 0 <= brace < space:
                name, close = line[:brace], line.rfind("}")
                if close < brace:
                    raise UnreadableMetrics(f"not Prometheus text: {line[:80]!r}")
                label_text, rest = line[brace + 1 : close], line[close + 1 :]
            else:
                name, label_text, rest = line[:space], "", line[space:]
            value = _number(rest.split(maxsplit=1)[0] if rest.strip() else "", line)
            page.add(name, label_text, value, wanted, histograms)
        if lines == 0 or (text.lstrip()[:1] == "<"):
            raise UnreadableMetrics("the answer is not Prometheus text")
        return page

    def add(
        self, name: str, label_text: str, value: float, wanted: set[str], histograms: set[str]
    ) -> None:
        if name in wanted:
            if name.endswith("_info"):
                self.labels[name] = _labels(label_text)
            if not math.isnan(value):
                self.values[name] = self.values.get(name, 0.0) + value
            return
        base, _, part = name.rpartition("_")
        if base not in histograms or part not in ("bucket", "sum", "count"):
            return
        if part == "bucket":
            bound = _labels(label_text).get("le")
            if bound is None:
                return
            per_bound = self.buckets.setdefault(base, {})
            upper = float(bound)
            per_bound[upper] = per_bound.get(upper, 0.0) + value
        else:
            key = f"{base}_{part}"
            self.values[key] = self.values.get(key, 0.0) + value

    def first(self, names: Iterable[str]) -> float | None:
        for name in names:
            if name in self.values:
                return self.values[name]
        return None

    def histogram(self, names: Iterable[str]) -> Histogram | None:
        for name in names:
            buckets = self.buckets.get(name)
            if buckets:
                return Histogram(
                    tuple(sorted(buckets.items())),
                    self.values.get(f"{name}_sum", 0.0),
                    self.values.get(f"{name}_count", buckets.get(math.inf, 0.0)),
                )
        return None

    def cache_config(self, names: Iterable[str]) -> CacheConfig | None:
        for name in names:
            labels = self.labels.get(name)
            if labels is not None:
                return CacheConfig(
                    _whole(labels.get("block_size")),
                    _whole(labels.get("num_gpu_blocks")),
                    _fraction(labels.get("gpu_memory_utilization")),
                    labels,
                )
        return None


def _number(text: str, line: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UnreadableMetrics(f"not Prometheus text: {line[:80]!r}") from None


def _labels(text: str) -> dict[str, str]:
    """``a="1",b="x"`` as a dict; label values with escaped quotes are kept escaped (the
    labels read here are numbers and names)."""
    labels: dict[str, str] = {}
    rest = text
    while rest:
        key, eq, rest = rest.partition("=")
        if not eq or not rest.startswith('"'):
            break
        end = 1
        while True:
            end = rest.find('"', end)
            if end < 0 or rest[end - 1] != "\\":
                break
            end += 1
        if end < 0:
            break
        labels[key.strip().lstrip(",").strip()] = rest[1:end]
        rest = rest[end + 1 :].lstrip(",").strip()
    return labels


def _whole(text: str | None) -> int | None:
    try:
        return int(float(text)) if text not in (None, "", "None") else None
    except ValueError:
        return None


def _fraction(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "None") else None
    except ValueError:
        return None
