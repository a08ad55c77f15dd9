"""The one settings object.

Sources, strongest first: explicit arguments, ``SEAMLINE_*`` environment variables, then
``seamline.toml`` (read from the working directory, else from ``$SEAMLINE_HOME``), then the
embedded defaults: a home at ``~/.seamline`` holding a SQLite database and the key secret.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from seamline.core.errors import InvalidInput

CONFIG_FILE_NAME = "seamline.toml"
MIN_SECRET_CHARS = 16
SECRET_FILE_NAME = "secret.key"


def default_home() -> Path:
    return Path(os.environ.get("SEAMLINE_HOME", "~/.seamline")).expanduser()


def config_file() -> Path | None:
    """The ``seamline.toml`` in force: the working directory's, else the home's, else none."""
    for folder in (Path.cwd(), default_home()):
        candidate = folder / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


# The serving engines whose metrics seamline reads (seamline.runtime.engines maps their names).
EngineName = Literal["vllm", "sglang", "tgi", "llama.cpp", "openai"]


class ModelPrices(BaseModel):
    """USD per million tokens."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    cached_input: float | None = Field(default=None, ge=0)


class ModelConfig(BaseModel):
    """One deployment of a model name; several tables with one ``name`` are replicas."""

    model_config = ConfigDict(extra="forbid")

    name: str
    provider: Literal["openai", "anthropic", "local"] = "openai"
    upstream_model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    kind: Literal["chat", "embedding"] = "chat"
    prices: ModelPrices | None = None
    context_window: int | None = Field(default=None, gt=0)
    tier: str | None = None
    weight: float = Field(default=1.0, gt=0)
    fallbacks: list[str] = Field(default_factory=list)
    context_fallback: str | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)
    total_timeout_s: float = Field(default=600.0, gt=0)
    stream_idle_timeout_s: float = Field(default=60.0, gt=0)
    stream_usage: bool = Field(
        default=True, description="ask streams for OpenAI's usage chunk (stream_options)"
    )
    deployment: str | None = Field(default=None, description="label of this replica")
    engine: EngineName | None = Field(
        default=None,
        description="the serving engine behind base_url: its metrics are scraped for "
        "`seamline runtime status`, /metrics and load-aware routing",
    )
    metrics_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+(/\S*)?$",
        description="the engine's Prometheus page (default: /metrics at base_url's host)",
    )


class LimitConfig(BaseModel):
    """Per-minute limits; 0 means unlimited."""

    requests_per_minute: int = Field(default=0, ge=0)
    tokens_per_minute: int = Field(default=0, ge=0)


class BudgetConfig(BaseModel):
    """A spending cap in USD for a project or one API key, per UTC day or month."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["project", "key"] = "project"
    name: str = Field(description="the project's name, or the key's id (key_...)")
    period: Literal["day", "month"] = "month"
    limit_usd: float = Field(gt=0)
    alert_at: float = Field(default=0.8, gt=0, le=1, description="share of the limit")
    mode: Literal["block", "soft"] = "block"
    webhook: str | None = Field(default=None, description="POSTed a JSON alert")


class TierRule(BaseModel):
    """Send calls for a model name to another model when every condition given holds.

    Rules for one name are tried in order; the first that matches wins. The name can be a
    virtual one (``auto``) that only rules serve."""

    model_config = ConfigDict(extra="forbid")

    model: str
    target: str
    use_case: str | None = None
    project: str | None = None
    key: str | None = Field(default=None, description="an API key id (key_...)")
    min_prompt_tokens: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)


class RagSampling(BaseModel):
    """Online RAG scoring for one route or prompt; what it leaves unset, the defaults give."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: float | None = Field(default=None, ge=0, le=1)
    freshness_limit_days: float | None = Field(default=None, gt=0)


class RagConfig(BaseModel):
    """Online scoring of calls that retrieve (in the gateway, or reported by the caller),
    off the request path; see ``rag.online``."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: float = Field(
        default=0.1, ge=0, le=1, description="share of retrieving calls scored"
    )
    freshness_limit_days: float | None = Field(
        default=None, gt=0, description="chunks from documents older than this are stale"
    )
    judge: str | None = Field(
        default=None, description="model that checks statements (default: embedded MiniLM)"
    )
    max_queue: int = Field(default=1000, gt=0, description="calls waiting to be scored")
    routes: dict[str, RagSampling] = Field(
        default_factory=dict, description="by route, e.g. '/v1/chat/completions'"
    )
    prompts: dict[str, RagSampling] = Field(
        default_factory=dict, description="by prompt name; wins over the route"
    )

    def for_call(self, route: str, prompt: str | None) -> tuple[float, float | None]:
        """The sample rate and freshness limit (days) for a call on ``route`` rendering
        ``prompt``: the prompt's setting, else the route's, else the default."""
        chosen = [self.prompts.get(prompt or ""), self.routes.get(route)]
        rate = next((c.sample_rate for c in chosen if c and c.sample_rate is not None), None)
        limit = next((c.freshness_limit_days for c in chosen if c and c.freshness_limit_days), None)
        return (
            self.sample_rate if rate is None else rate,
            limit or self.freshness_limit_days,
        )


class QualitySampling(BaseModel):
    """Online quality for one prompt: what it leaves unset, the defaults give."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: float | None = Field(default=None, ge=0, le=1)
    scorers: list[str | dict[str, Any]] | None = None


class QualityConfig(BaseModel):
    """Live calls scored off the request path by the eval harness's scorers
    (``monitoring.quality``)."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: float = Field(default=0.1, ge=0, le=1, description="share of answered calls")
    scorers: list[str | dict[str, Any]] = Field(
        default_factory=lambda: list[str | dict[str, Any]](["answer_relevance"]),
        description="scorer names or settings, as in an eval set",
    )
    prompts: dict[str, QualitySampling] = Field(default_factory=dict, description="by prompt")
    max_per_second: float = Field(default=5.0, gt=0, description="calls scored per second")
    max_queue: int = Field(default=1000, gt=0)

    def for_prompt(self, prompt: str | None) -> tuple[float, tuple[dict[str, Any], ...]]:
        """The sample rate and scorers for a call of ``prompt``."""
        own = self.prompts.get(prompt or "")
        rate = own.sample_rate if own and own.sample_rate is not None else self.sample_rate
        specs = own.scorers if own and own.scorers is not None else self.scorers
        return rate, tuple({"name": s} if isinstance(s, str) else dict(s) for s in specs)


class DriftConfig(BaseModel):
    """Calls embedded off the request path for semantic drift (``monitoring.drift``)."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: float = Field(
        default=1.0, ge=0, le=1, description="share of calls whose input is embedded"
    )
    max_per_second: float = Field(
        default=10.0,
        gt=0,
        description="calls embedded per second at most, per worker (MiniLM is about 5 ms of "
        "CPU a call: 10 a second is 5% of a core); the rest are skipped",
    )
    max_queue: int = Field(default=1000, gt=0, description="calls waiting to be embedded")


class RuntimeConfig(BaseModel):
    """Scraping the serving engines' metrics, and the ``load-aware`` routing built on them
    (seamline.runtime.load_aware says how the scores combine)."""

    model_config = ConfigDict(extra="forbid")

    scrape_interval_s: float = Field(default=1.0, gt=0, le=60)
    scrape_timeout_s: float = Field(default=0.5, gt=0, le=30)
    stale_after_s: float = Field(
        default=3.0, gt=0, description="older figures are not routed on: least-busy instead"
    )
    queue_weight: float = Field(default=2.0, ge=0)
    kv_cache_weight: float = Field(default=2.0, ge=0)
    prefix_weight: float = Field(default=3.0, ge=0)
    queue_slack: float = Field(
        default=2.0,
        ge=0,
        description="a replica whose queue exceeds the shortest by more (requests) is not "
        "scored, whatever prefix it holds",
    )
    queue_relative_slack: float = Field(
        default=0.25, ge=0, description="or by this share of the shortest queue, when larger"
    )
    prefix_chunk_chars: int = Field(default=512, gt=0)
    prefix_max_chunks: int = Field(default=16, gt=0)

    @model_validator(mode="after")
    def _fresh_between_scrapes(self) -> RuntimeConfig:
        if self.stale_after_s <= self.scrape_interval_s + self.scrape_timeout_s:
            raise ValueError(
                "gateway.runtime.stale_after_s must exceed scrape_interval_s + "
                "scrape_timeout_s, or figures go stale between two scrapes"
            )
        return self


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedded_models: bool = Field(
        default=True, description="serve local-smollm2 and local-minilm when installed"
    )
    routing: Literal["weighted", "round-robin", "least-busy", "lowest-latency", "load-aware"] = (
        "weighted"
    )
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    max_attempts: int = Field(default=3, ge=1, description="tries per deployment chain")
    backoff_s: float = Field(default=0.2, ge=0)
    max_backoff_s: float = Field(default=8.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        gt=0,
        description="largest request body, on /v1 and the registry API alike (413 above)",
    )
    # Slow clients (gateway/server/connections.py). A gateway's callers are services and SDKs on
    # fast links, so these are tighter than a public web server's (Node.js: headersTimeout
    # 60 s, requestTimeout 300 s) and still generous: headers are a few KB, and the largest
    # body allowed (8 MiB) arrives in 30 s at 2.2 Mbit/s.
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="request headers must arrive within this, or 408"
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="a whole request body must arrive within this, or 408"
    )
    # Per worker, as gunicorn's worker_connections (default 1000): enough for a worker's CPU
    # at a few seconds per LLM call. Each call also holds an upstream socket: allow
    # ~2 x this in `ulimit -n`.
    max_connections: int = Field(
        default=1000, gt=0, description="open connections per worker; over it: 503"
    )
    shutdown_grace_s: float = Field(
        default=10.0,
        gt=0,
        description="on SIGTERM, calls in flight (and shadow calls) get this long to finish; "
        "then they are cancelled, recorded, and the worker exits",
    )
    # Routes whose calls run under a guard policy of their own (a prompt's wins), e.g.
    # {"/v1/responses" = "html-safe"} for clients that render answers as HTML.
    route_guard_policies: dict[str, str] = Field(
        default_factory=dict, description="route -> guard policy name"
    )
    cache_ttl_s: float = Field(default=0.0, ge=0, description="exact response cache; 0: off")
    cache_max_entries: int = Field(default=10_000, gt=0, description="per worker, in memory")
    budget_completion_tokens: int = Field(
        default=4096, gt=0, description="completion tokens assumed when a call sets no max"
    )
    budget_store: Literal["auto", "memory", "database"] = Field(
        default="auto",
        description="where budget counters live; auto: Redis if set, else the database "
        "for several workers, else memory",
    )
    tier_rules: list[TierRule] = Field(default_factory=list)
    registry_model_base_urls: list[str] = Field(
        default_factory=list,
        description="URL prefixes a project's model artefacts may call (none: local only)",
    )
    registry_model_key_envs: list[str] = Field(
        default_factory=list,
        description="environment variables a project's model artefacts may use as keys",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="bearer token /metrics requires (none: open, as usual)"
    )
    alert_interval_s: float = Field(
        default=60.0, gt=0, description="how often each worker checks the [[alerts]] rules"
    )
    rag: RagConfig = Field(default_factory=RagConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    key_limits: LimitConfig = Field(default_factory=LimitConfig)
    project_limits: LimitConfig = Field(default_factory=LimitConfig)
    model_limits: dict[str, LimitConfig] = Field(default_factory=dict)


DURATION = r"^\d+[smhd]$"  # 90s, 30m, 24h, 7d


class AlertRule(BaseModel):
    """A condition on live traffic, checked every ``gateway.alert_interval_s`` per project
    (``monitoring.alerts``); firing records the alert with its evidence and sample calls,
    counts it on ``/metrics`` and posts it to the webhook (Slack-compatible)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: Literal[
        "error_rate",
        "latency",
        "guard_blocks",
        "cost_anomaly",
        "model_change",
        "quality_drop",
        "feedback_drop",
        "stale_index",
        "feedback_pattern",
        "drift",
    ]
    window: str = Field(
        default="1h", pattern=DURATION, description="the calls checked: the last 30m, 1h, 1d"
    )
    baseline: str = Field(
        default="7d",
        pattern=DURATION,
        description="cost_anomaly, quality_drop, feedback_drop: the window before, to compare",
    )
    above: float | None = Field(
        default=None,
        description="error_rate and guard_blocks: a share (0.05); latency: milliseconds; "
        "cost_anomaly: a ratio to the baseline's cost per call (default 1.5)",
    )
    percentile: float = Field(default=95, gt=0, lt=100, description="latency's percentile")
    metric: str | None = Field(
        default=None,
        description="quality_drop: an online score (default answer_relevance); "
        "feedback_drop: a feedback metric (default thumbs)",
    )
    min_calls: int = Field(default=20, ge=1, description="fewer calls: nothing to judge")
    project: str | None = Field(default=None, description="one project (default: each)")
    webhook: str | None = Field(default=None, description="default: alert_webhook")
    cooldown: str = Field(
        default="1h", pattern=DURATION, description="the same alert is not repeated within"
    )
    run_evals: bool = Field(
        default=False,
        description="model_change, quality_drop, feedback_drop, stale_index, "
        "feedback_pattern, drift: run the eval "
        "suite of each prompt concerned (its production version, on its eval set)",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEAMLINE_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite at $SEAMLINE_HOME/seamline.db"
    )
    user: str | None = Field(default=None, description="acting user for local (CLI) actions")
    project: str = Field(default="default", description="project (tenant) of local actions")
    secret_key: SecretStr | None = Field(
        default=None,
        description="key for hashing API keys; every replica must share it. "
        "Default: generated once into $SEAMLINE_HOME/secret.key",
    )
    host: str = "127.0.0.1"
    port: int = 8750
    workers: int = Field(
        default=1, ge=1, description="worker processes of this server (seamline serve sets it)"
    )
    redis_url: str | None = Field(
        default=None, description="shared limits and caches across workers and replicas"
    )
    index_store_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (with pgvector) for index chunks; "
        "default: SQLite at $SEAMLINE_HOME/indexes.db",
    )
    index_store_ef_search: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="pgvector HNSW candidates per search: higher finds more of the true "
        "nearest chunks, slower",
    )
    otel_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces"
    )
    otel_service_name: str = "seamline-gateway"
    models: list[ModelConfig] = Field(default_factory=list)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=list)
    content_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="delete calls' content (not their numbers, nor the rollups) after N days; "
        "the gateway prunes hourly",
    )
    alert_webhook: str | None = Field(
        default=None, description="where alerts (and budget alerts) are posted, Slack-compatible"
    )
    dashboard_secure_cookie: bool = Field(
        default=False,
        description="mark the dashboard's session cookie Secure even when the request arrived "
        "over plain HTTP (TLS ended at a proxy that uvicorn does not trust for "
        "X-Forwarded-Proto); over HTTPS it is always Secure",
    )
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'seamline.db'}"

    @property
    def acting_user(self) -> str:
        return self.user or getpass.getuser()

    def key_secret(self) -> bytes:
        """The secret API keys are hashed with; created (mode 0600) on first use if absent."""
        if self.secret_key is not None:
            secret = self.secret_key.get_secret_value()
            if len(secret) < MIN_SECRET_CHARS:
                raise InvalidInput(
                    f"SEAMLINE_SECRET_KEY needs at least {MIN_SECRET_CHARS} characters"
                )
            return secret.encode()
        path = self.home / SECRET_FILE_NAME
        if not path.exists():
            # Written whole under a temporary name, then linked into place: a process reading
            # the secret never sees a half-written file, and the first of two racing wins.
            self.home.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.home, prefix=".secret-")
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(32))
                with contextlib.suppress(FileExistsError):
                    os.link(temporary, path)
            finally:
                os.unlink(temporary)
        return path.read_text().strip().encode()
