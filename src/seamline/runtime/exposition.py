"""The engines' figures on seamline's own ``/metrics``, one vocabulary for every engine, with
the replica as a label, next to the gateway's per-call series: one Prometheus scrape and one
Grafana dashboard see both the calls and the engines serving them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from seamline.runtime.engines import Histogram
from seamline.runtime.scraper import EngineScraper

LABELS = ["model", "replica", "engine"]


class EngineCollector(Collector):
    def __init__(self, scraper: EngineScraper, fallbacks: Callable[[], int] | None = None):
        """``fallbacks``: how many load-aware choices were made least-busy for want of
        fresh figures (the router's count)."""
        self.scraper = scraper
        self.fallbacks = fallbacks

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "seamline_engine_up",
            "1 when the engine's last metrics scrape was read, 0 when it failed",
            labels=LABELS,
        )
        age = GaugeMetricFamily(
            "seamline_engine_scrape_age_seconds",
            "Seconds since the engine's figures were last read",
            labels=LABELS,
        )
        gauges = {
            "running": GaugeMetricFamily(
                "seamline_engine_requests_running", "Requests the engine is running", labels=LABELS
            ),
            "waiting": GaugeMetricFamily(
                "seamline_engine_requests_waiting", "Requests queued in the engine", labels=LABELS
            ),
            "kv_usage": GaugeMetricFamily(
                "seamline_engine_kv_cache_usage_ratio",
                "Share of the engine's KV cache in use (0-1)",
                labels=LABELS,
            ),
        }
        hit_rate = GaugeMetricFamily(
            "seamline_engine_prefix_cache_hit_ratio",
            "Share of prompt tokens found in the prefix cache over the last interval",
            labels=LABELS,
        )
        rates = {
            "prompt": GaugeMetricFamily(
                "seamline_engine_prompt_tokens_per_second", "Prompt tokens/s", labels=LABELS
            ),
            "generation": GaugeMetricFamily(
                "seamline_engine_generation_tokens_per_second",
                "Generated tokens/s",
                labels=LABELS,
            ),
        }
        preemptions = CounterMetricFamily(
            "seamline_engine_preemptions",
            "Requests the engine preempted for want of KV cache",
            labels=LABELS,
        )
        histograms = {
            "ttft": HistogramMetricFamily(
                "seamline_engine_time_to_first_token_seconds",
                "Time to first token inside the engine",
                labels=LABELS,
            ),
            "inter_token": HistogramMetricFamily(
                "seamline_engine_inter_token_latency_seconds",
                "Time between generated tokens inside the engine",
                labels=LABELS,
            ),
        }
        now = self.scraper.now()
        for state in self.scraper.states.values():
            target = state.target
            names = [target.model, target.replica, target.engine]
            up.add_metric(names, 0.0 if state.error or state.load is None else 1.0)
            if state.load is not None:
                age.add_metric(names, now - state.load.scraped_at)
            load = self.scraper.load(target.replica)
            if load is None:  # never read, or stale: a frozen load must not look live
                continue
            figures = load.figures
            for field, family in gauges.items():
                value = getattr(figures, field)
                if value is not None:
                    family.add_metric(names, value)
            if load.prefix_hit_rate is not None:
                hit_rate.add_metric(names, load.prefix_hit_rate)
            if load.prompt_tokens_per_s is not None:
                rates["prompt"].add_metric(names, load.prompt_tokens_per_s)
            if load.generation_tokens_per_s is not None:
                rates["generation"].add_metric(names, load.generation_tokens_per_s)
            if figures.preemptions is not None:
                preemptions.add_metric(names, figures.preemptions)
            for field, histogram_family in histograms.items():
                histogram: Histogram | None = getattr(figures, field)
                if histogram is not None:
                    histogram_family.add_metric(
                        names,
                        [(_bound(le), count) for le, count in histogram.buckets],
                        histogram.sum,
                    )
        yield from (up, age, *gauges.values(), hit_rate, *rates.values(), preemptions)
        yield from histograms.values()
        if self.fallbacks is not None:
            yield CounterMetricFamily(
                "seamline_load_aware_fallbacks",
                "Load-aware routing choices made least-busy: a replica's figures were "
                "missing or stale",
                value=self.fallbacks(),
            )


def _bound(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)
