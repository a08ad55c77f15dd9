"""The models the gateway serves: names clients use, their deployments, prices, fallbacks.

Built from ``[[models]]`` in ``seamline.toml`` (several tables with one name are replicas of
that model) plus the embedded local models when their packages are installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from seamline.core.errors import NotFound
from seamline.core.settings import ModelConfig, ModelPrices
from seamline.providers.base import DEFAULT_BASE_URLS, Deployment
from seamline.telemetry.prices import FREE, Price, shipped_price


@dataclass
class ModelEntry:
    name: str
    kind: str
    deployments: list[Deployment] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    context_fallback: str | None = None

    @property
    def context_window(self) -> int | None:
        windows = [d.context_window for d in self.deployments if d.context_window]
        return min(windows) if windows else None


class ModelCatalog:
    def __init__(
        self, configs: Iterable[ModelConfig], embedded: dict[str, str] | None = None
    ) -> None:
        """``embedded``: the installed local models (name -> kind), served unless a
        configured model takes the name."""
        self.entries: dict[str, ModelEntry] = {}
        for config in configs:
            self.add(config)
        for name, kind in (embedded or {}).items():
            if name not in self.entries:
                self.add(
                    ModelConfig(
                        name=name,
                        provider="local",
                        kind=kind,
                        deployment=f"local:{name}",
                        prices=ModelPrices(input=0.0, output=0.0),
                    )
                )

    def add(self, config: ModelConfig) -> Deployment:
        upstream = config.upstream_model or config.name
        entry = self.entries.setdefault(config.name, ModelEntry(config.name, config.kind))
        deployment_id = config.deployment or (
            f"{config.provider}:{upstream}@{_host(config.base_url)}#{len(entry.deployments)}"
        )
        if config.prices is not None:
            price = Price(config.prices.input, config.prices.output, config.prices.cached_input)
        else:
            price = shipped_price(upstream) or FREE
        api_key = config.api_key.get_secret_value() if config.api_key else None
        if api_key is None and config.api_key_env:
            api_key = os.environ.get(config.api_key_env)
        deployment = Deployment(
            id=deployment_id,
            model=config.name,
            provider=config.provider,
            upstream_model=upstream,
            base_url=(config.base_url or DEFAULT_BASE_URLS.get(config.provider) or "").rstrip("/")
            or None,
            api_key=api_key,
            weight=config.weight,
            tier=config.tier,
            context_window=config.context_window,
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
            total_timeout_s=config.total_timeout_s,
            stream_idle_timeout_s=config.stream_idle_timeout_s,
            price=price,
            stream_usage=config.stream_usage,
            engine=config.engine,
            metrics_url=config.metrics_url or _metrics_url(config),
        )
        entry.deployments.append(deployment)
        entry.fallbacks = entry.fallbacks or list(config.fallbacks)
        entry.context_fallback = entry.context_fallback or config.context_fallback
        return deployment

    def get(self, name: str) -> ModelEntry:
        entry = self.entries.get(name)
        if entry is None:
            raise NotFound(
                f"The model `{name}` does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        return entry

    def extended(self, configs: Iterable[ModelConfig]) -> ModelCatalog:
        """This catalog plus ``configs`` (a project's registry models), leaving this one as
        it is."""
        catalog = ModelCatalog([])
        catalog.entries = dict(self.entries)
        for config in configs:
            catalog.add(config)
        return catalog


def _host(base_url: str | None) -> str:
    """The host (and port) of a base URL: deployment ids appear in errors and metrics, and
    must not carry credentials a URL may hold."""
    if not base_url:
        return "local"
    parts = urlsplit(base_url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "?"


def _metrics_url(config: ModelConfig) -> str | None:
    """Where an engine serves its Prometheus page unless told: ``/metrics`` at the host of
    its OpenAI-compatible base URL (vLLM, SGLang, TGI and llama.cpp's server all do)."""
    if config.engine in (None, "openai") or not config.base_url:
        return None
    parts = urlsplit(config.base_url)
    return f"{parts.scheme}://{parts.netloc}/metrics"
