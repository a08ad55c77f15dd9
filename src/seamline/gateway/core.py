"""The gateway's per-worker state: catalog, router, limiter, registry view, metrics, writer.

One :class:`Gateway` per worker process. :meth:`start` and :meth:`stop` run in the ASGI
lifespan; :meth:`stop` waits for background (shadow) calls and flushes every event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from seamline.core.clock import utcnow
from seamline.core.settings import BudgetConfig, Settings
from seamline.gateway.catalog import ModelCatalog
from seamline.gateway.metrics import GatewayMetrics
from seamline.gateway.stages.registry_view import RegistryView
from seamline.gateway.stages.router import Router
from seamline.gateway.stores.budgets import Budgets, store_for
from seamline.gateway.stores.cache import ResponseCache
from seamline.gateway.stores.changes import ChangeProbe, probe_for
from seamline.gateway.stores.limits import LocalLimiter
from seamline.gateway.stores.limits_redis import RedisLimiter
from seamline.monitoring.delivery import record_budget_alert
from seamline.monitoring.embeddings import CallEmbedder, CallEmbeddingStore
from seamline.monitoring.quality import CallScores, QualityScorer
from seamline.providers.anthropic import AnthropicProvider
from seamline.providers.base import Deployment, Provider
from seamline.providers.local import LocalProvider
from seamline.providers.openai_compat import OpenAICompatibleProvider
from seamline.rag.assessments import Assessments
from seamline.rag.freshness import with_sources
from seamline.rag.sampler import OnlineScorer
from seamline.rag.store import ChunkStore, open_store
from seamline.registry import Actor, Registry
from seamline.runtime.scraper import EngineScraper, targets_of
from seamline.telemetry.event import CallEvent
from seamline.telemetry.otel import SpanExporter, exporter_from
from seamline.telemetry.retention import prune_content
from seamline.telemetry.writer import EventWriter

log = logging.getLogger("seamline.gateway")
SPILL_FILE_NAME = "events-spill.jsonl"
PRUNE_INTERVAL_S = 3600.0
T = TypeVar("T")


class Gateway:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        providers: dict[str, Provider] | None = None,
        probe: ChangeProbe | None = None,
        writer: EventWriter | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.gateway
        self.registry = registry
        self.metrics = GatewayMetrics(name_tenants=self.config.metrics_token is not None)
        embedded = LocalProvider.available() if self.config.embedded_models else {}
        self.catalog = ModelCatalog(settings.models, embedded)
        runtime = self.config.runtime
        self.engines = EngineScraper(
            targets_of(d for entry in self.catalog.entries.values() for d in entry.deployments),
            interval_s=runtime.scrape_interval_s,
            timeout_s=runtime.scrape_timeout_s,
            stale_after_s=runtime.stale_after_s,
        )
        self.router = Router(
            self.catalog,
            self.config,
            on_breaker_change=self._breaker_changed,
            loads=self.engines.load,
        )
        self.metrics.watch_engines(self.engines, lambda: self.router.load_fallbacks)
        self.limiter: LocalLimiter | RedisLimiter = (
            RedisLimiter(settings.redis_url) if settings.redis_url else LocalLimiter()
        )
        self.budgets = Budgets(
            settings.budgets,
            registry.db,
            store_for(settings, registry.db),
            on_alert=self._budget_alert,
        )
        self.cache = ResponseCache(
            self.config.cache_ttl_s, self.config.cache_max_entries, settings.redis_url
        )
        self.view = RegistryView(registry, probe or probe_for(registry.db))
        self.writer = writer or EventWriter(registry.db, settings.home / SPILL_FILE_NAME)
        self.providers: dict[str, Provider] = providers or {
            "openai": OpenAICompatibleProvider(),
            "anthropic": AnthropicProvider(),
            "local": LocalProvider(),
        }
        self._background: set[asyncio.Task[Any]] = set()
        self._opening = asyncio.Lock()
        self._pruning: asyncio.Task[None] | None = None
        self.spans: SpanExporter | None = exporter_from(
            settings.otel_endpoint, settings.otel_service_name
        )

    async def catalog_for(self, actor: Actor, generation: int | None, model: str) -> ModelCatalog:
        """The configured catalog, extended with the project's registry model of that name
        when no configured model has it."""
        if model in self.catalog.entries:
            return self.catalog
        config = await self.view.model_config(actor, generation, model, self.config)
        if config is None:
            return self.catalog
        return self.catalog.extended([config])

    @functools.cached_property
    def chunks(self) -> ChunkStore:
        """The index store (the embedded one in the home unless ``index_store_url`` names
        PostgreSQL), opened on first use; from the event loop, open it with
        :meth:`index_store`."""
        return open_store(self.settings)

    async def index_store(self) -> ChunkStore:
        """:attr:`chunks`, opened off the event loop (a PostgreSQL connection, its schema
        checked): an unreachable store holds up only the calls that retrieve. A failure is
        not kept: the next call tries again."""
        if "chunks" not in self.__dict__:
            async with self._opening:
                await asyncio.to_thread(lambda: self.chunks)
        return self.chunks

    @functools.cached_property
    def rag_scorer(self) -> OnlineScorer:
        """Online RAG scoring's worker, started by the first sampled call."""
        from seamline.providers import local_vectors

        scorer = OnlineScorer(
            Assessments(self.registry.db).record,
            local_vectors.embed,
            max_queue=self.config.rag.max_queue,
            prepare=functools.partial(with_sources, store=self.chunks),
            on_assessed=self.metrics.rag_assessed,
        )
        self.metrics.watch_queue("rag-scorer", scorer.queue)
        return scorer

    @functools.cached_property
    def quality_scorer(self) -> QualityScorer:
        """Online quality's scorer of calls, started by the first call it gets."""
        scorer = QualityScorer(
            CallScores(self.registry.db),
            max_queue=self.config.quality.max_queue,
            per_second=self.config.quality.max_per_second,
        )
        self.metrics.watch_queue("quality-scorer", scorer.queue)
        return scorer

    @functools.cached_property
    def call_embedder(self) -> CallEmbedder | None:
        """Drift's embedder of calls, started by the first call it gets; None without the
        embedded MiniLM (the ``[local]`` extra)."""
        from seamline.providers import local_vectors

        try:
            version = local_vectors.model_version()
        except local_vectors.LocalModelMissing:
            log.warning("calls are not embedded for drift: the embedded MiniLM is missing")
            return None
        embedder = CallEmbedder(
            CallEmbeddingStore(self.registry.db),
            local_vectors.embed,
            f"{local_vectors.MODEL_NAME}:{version[:16]}",
            max_queue=self.config.drift.max_queue,
            per_second=self.config.drift.max_per_second,
        )
        self.metrics.watch_queue("drift-embedder", embedder.queue)
        return embedder

    def provider(self, deployment: Deployment) -> Provider:
        return self.providers[deployment.provider]

    def emit(self, event: CallEvent) -> None:
        """The one exit of every call: metrics now, the store in the background."""
        event.finish()
        try:
            self.metrics.observe(event)
            if self.spans is not None:
                self.spans.export(event, event.parent_span_id)
        finally:
            self.writer.submit(event)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        self.writer.start()
        self.engines.start()
        if self.settings.content_retention_days:
            self._pruning = asyncio.create_task(self._prune_content_hourly())
        if self.config.drift.sample_rate > 0:  # hashes the model file: not on a call's path
            await asyncio.to_thread(lambda: self.call_embedder)

    async def _prune_content_hourly(self) -> None:
        """Calls' content past ``content_retention_days`` deleted, once an hour."""
        assert self.settings.content_retention_days is not None
        keep = timedelta(days=self.settings.content_retention_days)
        while True:
            try:
                pruned = await asyncio.to_thread(prune_content, self.registry.db, utcnow() - keep)
                if pruned:
                    log.info("content deleted from %d events past retention", pruned)
            except Exception:
                log.exception("pruning content failed")
            await asyncio.sleep(PRUNE_INTERVAL_S)

    def _budget_alert(self, budget: BudgetConfig, level: str, spent_usd: float) -> None:
        """A budget's alert, counted and sent down the same channel as every alert (its own
        webhook, if it names one, is still called by the budgets)."""
        self.metrics.budget_alert(budget, level, spent_usd)
        self.metrics.alert_fired(f"budget:{budget.name}", "budget")
        self.in_background(
            asyncio.to_thread(
                record_budget_alert,
                self.registry.db,
                budget,
                level,
                spent_usd,
                self.settings.alert_webhook,
                utcnow(),
            )
        )

    async def stop(self) -> None:
        """Shadow calls get the shutdown grace, then are cancelled (each records its event);
        the providers close after, stopping whatever still generates."""
        if self._pruning is not None:
            self._pruning.cancel()
        await self.engines.stop()
        if "rag_scorer" in self.__dict__:  # first: its judge calls need the providers
            await asyncio.to_thread(self.rag_scorer.close)
        if self._background:
            await asyncio.wait(self._background, timeout=self.config.shutdown_grace_s)
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
        for provider in self.providers.values():
            await provider.close()
        await self.limiter.close()
        await self.budgets.close()
        await self.cache.close()
        await self.view.probe.close()
        quality: QualityScorer | None = self.__dict__.get("quality_scorer")
        if quality is not None:
            await asyncio.to_thread(quality.queue.close)
        embedder: CallEmbedder | None = self.__dict__.get("call_embedder")
        if embedder is not None:
            await asyncio.to_thread(embedder.queue.close)
        if "chunks" in self.__dict__:
            self.chunks.close()
        await asyncio.to_thread(self.writer.close)
        if self.spans is not None:
            await asyncio.to_thread(self.spans.shutdown)

    def _breaker_changed(self, deployment: Deployment, state: str) -> None:
        log.warning("circuit breaker of %s is now %s", deployment.id, state)
        self.metrics.circuit_changed(deployment.id, state)


class GatewayThread:
    """A gateway on an event loop of its own, in a background thread, for synchronous code
    that calls models in-process (the pytest plugin, ``seamline index`` with a configured
    embedding model)."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.gateway = Gateway(settings, registry)
        self.wait(self.gateway.start())

    def wait(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the gateway's loop; its result, or what it raised."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def close(self) -> None:
        self.wait(self.gateway.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
