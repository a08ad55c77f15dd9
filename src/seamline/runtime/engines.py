"""The serving engines' own metric names, read into one vocabulary.

vLLM, SGLang, TGI and llama.cpp's server each export Prometheus text under names of their
own, and rename them between versions (vLLM's ``gpu_cache_usage_perc`` became
``kv_cache_usage_perc``). :func:`read_figures` takes one page of an engine's ``/metrics`` and
returns :class:`EngineFigures`: requests running and waiting, KV-cache usage (0-1), prefix
cache hits and queries, token counters, preemptions, TTFT and inter-token latency histograms,
and the cache configuration where the engine states it. A name absent from a page leaves its
figure ``None``, never zero: "not reported" and "idle" must not look alike to the router.

The parser is written here rather than taken from ``prometheus_client.parser``: it runs for
every replica every second in each gateway worker, so it looks up only the dozen names it
maps, with ``str.find`` over the page, and leaves the other hundreds of lines (most of them
histogram buckets) unread until a histogram is asked for; ``bench/routing.py`` measures it
against the library's parser.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields

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
    cache: CacheConfig | None = None
    engine: EngineName | None = None
    page: str = field(default="", repr=False, compare=False)  # read again for histograms

    @functools.cached_property
    def ttft(self) -> Histogram | None:
        """Time to first token inside the engine (TGI states none)."""
        return _histogram(self.page, NAMES[self.engine].ttft) if self.engine else None

    @functools.cached_property
    def inter_token(self) -> Histogram | None:
        return _histogram(self.page, NAMES[self.engine].inter_token) if self.engine else None


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
        """Every figure read as one number (all but the histograms and the cache info)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_SCALAR}


_NOT_SCALAR = frozenset({"ttft", "inter_token", "cache_info"})


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


RATIOS = frozenset({"kv_usage", "prefix_hit_rate"})  # averaged over label sets, not summed
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def read_figures(engine: EngineName, text: str) -> EngineFigures:
    """The figures in one ``/metrics`` page of ``engine``; :class:`UnreadableMetrics` when
    the page is not Prometheus text or carries none of the engine's load figures (the wrong
    engine named, or metrics disabled), so the router falls back instead of reading zeros.

    Only the load figures are read here; the histograms are read from the kept page when
    asked for (by a Prometheus scrape of seamline, every 15-60 s, not every second)."""
    start = text.lstrip()[:1]
    if not start or start in "<{":
        raise UnreadableMetrics("the answer is not Prometheus text")
    names = NAMES[engine]
    body = "\n" + text
    found = {
        figure: _first(body, candidates, ratio=figure in RATIOS)
        for figure, candidates in names.scalars().items()
    }
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
        **found, cache=_cache_config(body, names.cache_info), engine=engine, page=body
    )


def _first(body: str, names: Iterable[str], *, ratio: bool = False) -> float | None:
    """The first of ``names`` on the page over its label sets (several engines behind one
    endpoint, data-parallel ranks, or several served model names): counts summed, ratios
    (``ratio``) averaged. None when absent, or when every value is NaN."""
    for name in names:
        found = [value for _, value in _series(body, name)]
        if found:
            values = [value for value in found if not math.isnan(value)]
            if not values:
                return None  # present, but NaN: not reported, never idle
            return sum(values) / len(values) if ratio else sum(values)
    return None


def _histogram(body: str, names: Iterable[str]) -> Histogram | None:
    """The first of ``names`` as a histogram; None when absent or unreadable (a bound that
    is not a number, no ``+Inf`` bucket): read when seamline's /metrics is scraped, where
    one engine's bad line must not fail the whole page."""
    try:
        for name in names:
            per_bound: dict[float, float] = {}
            for labels, value in _series(body, f"{name}_bucket"):
                bound = _label(labels, "le")
                if bound is not None:
                    upper = float(bound)
                    per_bound[upper] = per_bound.get(upper, 0.0) + value
            if per_bound:
                if math.inf not in per_bound:
                    return None
                return Histogram(
                    tuple(sorted(per_bound.items())),
                    sum(value for _, value in _series(body, f"{name}_sum")),
                    sum(value for _, value in _series(body, f"{name}_count")),
                )
    except (ValueError, UnreadableMetrics):
        return None
    return None


def _cache_config(body: str, names: Iterable[str]) -> CacheConfig | None:
    for name in names:
        for label_text, _ in _series(body, name):
            labels = _labels(label_text)
            return CacheConfig(
                _whole(labels.get("block_size")),
                _whole(labels.get("num_gpu_blocks")),
                _fraction(labels.get("gpu_memory_utilization")),
                labels,
            )
    return None


def _series(body: str, name: str) -> Iterator[tuple[str, float]]:
    """The label text and value of each line of ``name`` in ``body`` (the page with a
    newline in front, so every line starts after one).

    The exposition format keeps a metric family's samples together, before the next
    family's ``#`` lines; once the first sample is found, the search ends there rather than
    scanning the rest of the page (a counter's ``_created`` lines between its samples are
    passed over)."""
    marker = "\n" + name
    size = len(marker)
    limit = len(body)
    position = body.find(marker)
    while position >= 0:
        end = body.find("\n", position + size)
        if end < 0:
            end = len(body)
        line = body[position + 1 : end]
        after = line[size - 1 : size]
        if after == "{":
            close = line.rfind("}")
            if close < 0:
                raise UnreadableMetrics(f"not Prometheus text: {line[:80]!r}")
            labels, rest = line[size:close], line[close + 1 :]
        elif after == " ":
            labels, rest = "", line[size - 1 :]
        else:  # a longer name that starts with this one: keep looking
            position = body.find(marker, end, limit)
            continue
        if limit == len(body):
            family_end = body.find("\n#", end)
            limit = family_end if family_end >= 0 else len(body)
        position = body.find(marker, end, limit)
        fields = rest.split(maxsplit=1)
        yield labels, _number(fields[0] if fields else "", line)


def _label(labels: str, key: str) -> str | None:
    """One label's value, found directly (bucket lines are the most numerous read); a label
    whose name merely ends in ``key`` (``handle`` for ``le``) is passed over."""
    wanted = f'{key}="'
    start = labels.find(wanted)
    while start > 0 and labels[start - 1] not in ", ":
        start = labels.find(wanted, start + 1)
    if start < 0:
        return None
    start += len(wanted)
    end = labels.find('"', start)
    return labels[start:end] if end >= 0 else None


def _number(text: str, line: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UnreadableMetrics(f"not Prometheus text: {line[:80]!r}") from None


def _labels(text: str) -> dict[str, str]:
    """``a="1",b="x"`` as a dict (escaped quotes inside values are kept escaped: the labels
    read here are numbers and names)."""
    return dict(_LABEL.findall(text))


def _whole(text: str | None) -> int | None:
    try:
        return int(float(text)) if text not in (None, "", "None") else None
    except (ValueError, OverflowError):  # "abc", "inf"
        return None


def _fraction(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "None") else None
    except ValueError:
        return None
