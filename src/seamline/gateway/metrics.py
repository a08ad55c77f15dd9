"""Prometheus metrics of the gateway, in a registry of its own (one per app, so tests and
several apps in one process do not collide).

With several worker processes (``seamline serve --workers N``) each worker writes its
values to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums every worker's, so a
scrape sees the whole server whichever worker answers it.

Tenants are named in labels (project, budget name) only when ``gateway.metrics_token`` is
set: an open ``/metrics`` is the Prometheus convention, and an open one must not list every
project and its spend to whoever can reach the port. Without a token those labels are
empty and the totals stay whole."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from seamline.core.background import BackgroundQueue
from seamline.core.clock import as_utc
from seamline.core.settings import BudgetConfig
from seamline.rag.freshness import FreshnessTracker
from seamline.rag.online import Assessment, RetrievedChunk
from seamline.runtime.exposition import EngineCollector
from seamline.runtime.scraper import EngineScraper
from seamline.telemetry.event import CallEvent

# Buckets in seconds: gateway calls range from cache hits (~1 ms) to long generations.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Document ages in seconds: an hour, a day, a week, a month, a quarter, a year, two years.
AGE_BUCKETS = (3600, 86400, 7 * 86400, 30 * 86400, 90 * 86400, 365 * 86400, 730 * 86400)
EXTERNAL = "external"  # the index label of retrieval an application reports
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}


class GatewayMetrics:
    def __init__(self, *, name_tenants: bool = False) -> None:
        self.name_tenants = name_tenants
        self.registry = CollectorRegistry()
        labels = ("model", "provider", "project", "route", "status")
        self.requests = Counter(
            "seamline_requests_total", "Gateway calls", labels, registry=self.registry
        )
        self.latency = Histogram(
            "seamline_request_latency_seconds",
            "Whole call latency",
            ("model", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "seamline_time_to_first_token_seconds",
            "Time to the first streamed token",
            ("model",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream = Histogram(
            "seamline_upstream_latency_seconds",
            "Upstream call latency",
            ("model", "provider"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "seamline_tokens_total", "Tokens", ("model", "project", "type"), registry=self.registry
        )
        self.cost = Counter(
            "seamline_cost_usd_total", "Cost in USD", ("model", "project"), registry=self.registry
        )
        self.cache_hits = Counter(
            "seamline_cache_hits_total", "Response cache hits", ("model",), registry=self.registry
        )
        self.limit_rejections = Counter(
            "seamline_limit_rejections_total",
            "Calls refused by a rate limit or budget",
            ("project", "reason"),
            registry=self.registry,
        )
        self.budget_alerts = Counter(
            "seamline_budget_alerts_total",
            "Budgets crossing their alert share or their cap",
            ("scope", "name", "level"),
            registry=self.registry,
        )
        self.guard_actions = Counter(
            "seamline_guard_actions_total",
            "What guard rules did: block, redact, pseudonymise or flag, by policy version and "
            "detector (enforced=false: a shadow policy's)",
            ("policy", "detector", "action", "enforced"),
            registry=self.registry,
        )
        self.guard_time = Histogram(
            "seamline_guard_seconds",
            "Time the guard stages held a call before and after its upstream call",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rag_assessments = Counter(
            "seamline_rag_assessments_total",
            "Live RAG calls scored off the request path, by the stage blamed (ok when none)",
            ("index", "attribution"),
            registry=self.registry,
        )
        self.alerts = Counter(
            "seamline_alerts_fired_total",
            "Alerts fired (rules of [[alerts]], and budgets crossing their alert share)",
            ("rule", "kind"),
            registry=self.registry,
        )
        self._engines: EngineCollector | None = None
        self._queues = _BackgroundQueues()
        self.registry.register(self._queues)
        self.rag_scores = Histogram(
            "seamline_rag_score",
            "Online RAG scores (0-1): context_relevance, groundedness, answer_relevance, "
            "citation_coverage",
            ("score",),
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self.document_age = Histogram(
            "seamline_retrieved_document_age_seconds",
            "How long before the call the source of each retrieved chunk last changed",
            ("index",),
            buckets=AGE_BUCKETS,
            registry=self.registry,
        )
        self.freshness = FreshnessTracker()
        self._index_freshness = _IndexFreshness(self.freshness, name_tenants)
        self.registry.register(self._index_freshness)
        self.circuit = Gauge(
            "seamline_circuit_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open",
            ("deployment",),
            registry=self.registry,
            multiprocess_mode="max",
        )

    def observe(self, event: CallEvent) -> None:
        # Only served names become labels: a requested name is whatever a client typed, and
        # every distinct label value is a new time series for Prometheus to keep.
        model = event.model_used or ""
        project = (event.project or "") if self.name_tenants else ""
        self.requests.labels(model, event.provider or "", project, event.route, event.status).inc()
        self.latency.labels(model, event.route).observe(event.latency_ms / 1000)
        if event.ttft_ms is not None:
            self.ttft.labels(model).observe(event.ttft_ms / 1000)
        if event.upstream_ms is not None:
            self.upstream.labels(model, event.provider or "").observe(event.upstream_ms / 1000)
        if event.prompt_tokens:
            self.tokens.labels(model, project, "prompt").inc(event.prompt_tokens)
        if event.completion_tokens:
            self.tokens.labels(model, project, "completion").inc(event.completion_tokens)
        if event.cost_usd:
            self.cost.labels(model, project).inc(event.cost_usd)
        if event.cache_hit:
            self.cache_hits.labels(model).inc()
        if event.http_status == 429:
            self.limit_rejections.labels(project, event.error_type or "rate_limit").inc()
        if event.guard_ms is not None:
            self.guard_time.labels(event.route).observe(event.guard_ms / 1000)
        for action in event.guard_actions or ():
            self.guard_actions.labels(
                action["policy"], action["detector"], action["action"], str(action["enforced"])
            ).inc()

    def budget_alert(self, budget: BudgetConfig, level: str, spent_usd: float) -> None:
        name = budget.name if self.name_tenants else ""
        self.budget_alerts.labels(budget.scope, name, level).inc()

    def retrieved(self, index: str, at: datetime, chunks: Iterable[RetrievedChunk]) -> None:
        """The ages of the documents a call retrieved from ``index`` (NAME@VERSION, or
        ``external`` for what an application reports: a name any client can invent must
        not become a new time series)."""
        name = index.partition("@")[0]
        for chunk in chunks:
            if chunk.source_modified is not None:
                changed = as_utc(datetime.fromisoformat(chunk.source_modified))
                self.document_age.labels(name).observe((at - changed).total_seconds())

    def alert_fired(self, rule: str, kind: str) -> None:
        self.alerts.labels(rule, kind).inc()

    def watch_queue(self, name: str, queue: BackgroundQueue[Any]) -> None:
        """Count what a background queue drops, skips and fails on ``/metrics``."""
        self._queues.queues[name] = queue

    def watch_engines(self, scraper: EngineScraper, fallbacks: Callable[[], int]) -> None:
        """The serving engines' live figures on ``/metrics`` (seamline.runtime), and how
        often load-aware routing went without them."""
        self._engines = EngineCollector(scraper, fallbacks)
        self.registry.register(self._engines)

    def rag_assessed(self, assessment: Assessment) -> None:
        sample = assessment.sample
        index = EXTERNAL if sample.external else sample.index.partition("@")[0]
        self.rag_assessments.labels(index, assessment.attribution).inc()
        for name, value in assessment.scores.items():
            self.rag_scores.labels(name).observe(value)

    def circuit_changed(self, deployment: str, state: str) -> None:
        self.circuit.labels(deployment).set(CIRCUIT_STATES[state])

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            merged.register(self._index_freshness)  # read from files: the same in every worker
            merged.register(self._queues)  # the answering worker's own queues
            if self._engines is not None:  # the answering worker's own scrapes
                merged.register(self._engines)
            return generate_latest(merged)
        return generate_latest(self.registry)


class _IndexFreshness(Collector):
    """Per index version a worker has retrieved from: when it was built, its sources, how
    many changed since, and the newest source it indexed (``rag.freshness``)."""

    def __init__(self, tracker: FreshnessTracker, name_tenants: bool) -> None:
        self.tracker = tracker
        self.name_tenants = name_tenants

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["project", "index"]
        built = GaugeMetricFamily(
            "seamline_index_built_timestamp_seconds",
            "When the index version calls retrieve from was built",
            labels=labels,
        )
        sources = GaugeMetricFamily(
            "seamline_index_sources", "Sources (documents) of the index version", labels=labels
        )
        stale = GaugeMetricFamily(
            "seamline_index_stale_sources",
            "Sources changed or gone since the index version was built",
            labels=labels,
        )
        newest = GaugeMetricFamily(
            "seamline_index_newest_source_timestamp_seconds",
            "The latest change among the sources, as the index version holds them",
            labels=labels,
        )
        for figures in self.tracker.figures():
            names = [figures.project if self.name_tenants else "", figures.index]
            built.add_metric(names, figures.built_at.timestamp())
            sources.add_metric(names, figures.sources)
            stale.add_metric(names, figures.stale)
            if figures.newest_source is not None:
                newest.add_metric(names, figures.newest_source.timestamp())
        yield from (built, sources, stale, newest)


class _BackgroundQueues(Collector):
    """The work beside the request path (online RAG scoring, drift's embedder): what each
    queue turned away (over its pace), dropped (full, or at shutdown) and failed on."""

    def __init__(self) -> None:
        self.queues: dict[str, BackgroundQueue[Any]] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        found = CounterMetricFamily(
            "seamline_background_items",
            "Items of background work not done: skipped (over the pace), dropped (queue full "
            "or shutdown), failed (their batch raised)",
            labels=["queue", "outcome"],
        )
        for name, queue in sorted(self.queues.items()):
            for outcome in ("skipped", "dropped", "failed"):
                found.add_metric([name, outcome], getattr(queue, outcome))
        yield found
