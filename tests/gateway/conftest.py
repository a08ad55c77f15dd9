"""A running gateway on the test database, in front of stub upstreams on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import select

from seamline.core.settings import (
    AlertRule,
    BudgetConfig,
    GatewayConfig,
    ModelConfig,
    ModelPrices,
    Settings,
)
from seamline.gateway.app import SeamlineServer, build_app
from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope
from seamline.store.schema import events
from tests.live import LiveServer
from tests.stub_upstream import StubUpstream

PRICE = ModelPrices(input=1.0, output=2.0)  # USD per million tokens: easy arithmetic


@dataclass
class RunningGateway:
    server: LiveServer
    app: SeamlineServer
    registry: Registry
    key: str
    upstreams: dict[str, StubUpstream]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, key: str | None = None, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0, **options
        )

    def events(self, expected: int = 1) -> list[dict[str, Any]]:
        """The stored events, once ``expected`` of them exist: an event is emitted after its
        response is sent, so a test that has its answer may ask a moment too early."""
        deadline = time.monotonic() + 10
        while True:
            assert self.app.gateway.writer.flush(10)
            with self.registry.db.read() as conn:
                rows = conn.execute(select(events).order_by(events.c.id)).mappings().all()
            if len(rows) >= expected or time.monotonic() > deadline:
                return [dict(row) for row in rows]
            time.sleep(0.02)


@pytest.fixture
def upstreams() -> Iterator[dict[str, StubUpstream]]:
    started = {name: StubUpstream(name).start() for name in ("primary", "secondary", "backup")}
    yield started
    for stub in started.values():
        stub.stop()


def default_models(upstreams: dict[str, StubUpstream]) -> list[ModelConfig]:
    return [
        ModelConfig(
            name="gpt-4o-mini",
            base_url=upstreams["primary"].base_url,
            api_key="sk-upstream",
            prices=PRICE,
            fallbacks=["backup-model"],
            deployment="primary",
        ),
        ModelConfig(
            name="backup-model",
            upstream_model="backup-1",
            base_url=upstreams["backup"].base_url,
            prices=PRICE,
            deployment="backup",
        ),
        ModelConfig(
            name="embed-small",
            kind="embedding",
            base_url=upstreams["primary"].base_url,
            prices=PRICE,
            deployment="primary-embed",
        ),
    ]


@pytest.fixture
def start_gateway(
    registry: Registry, alice: Actor, upstreams: dict[str, StubUpstream], tmp_path: Path
) -> Iterator[Callable[..., RunningGateway]]:
    running: list[RunningGateway] = []

    def start(
        models: list[ModelConfig] | None = None,
        *,
        redis_url: str | None = None,
        key: str | None = None,
        budgets: list[BudgetConfig] | None = None,
        alerts: list[AlertRule] | None = None,
        alert_webhook: str | None = None,
        **gateway: Any,
    ) -> RunningGateway:
        config = GatewayConfig(
            **{
                "backoff_s": 0.01,
                "max_backoff_s": 0.05,
                "embedded_models": False,
                "drift": {"sample_rate": 0.0},  # these two on where a test asks for them
                "quality": {"sample_rate": 0.0},
                **gateway,
            }
        )
        settings = Settings(
            home=tmp_path,
            models=default_models(upstreams) if models is None else models,
            gateway=config,
            redis_url=redis_url,
            budgets=budgets or [],
            alerts=alerts or [],
            alert_webhook=alert_webhook,
        )
        app = build_app(settings, registry)
        if key is None:
            key, _ = registry.create_key(
                alice, owner="checkout-svc", scopes=frozenset({Scope.INVOKE}), name="svc"
            )
        live = LiveServer(app).start()
        gw = RunningGateway(live, app, registry, key, upstreams)
        running.append(gw)
        return gw

    yield start
    for gw in running:
        gw.server.stop()


@pytest.fixture
def gateway(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    return start_gateway()


@pytest.fixture
def fresh_window() -> None:
    """Start a limits test early in a one-minute window, so that no rollover falls inside it
    and resets the counts it checks."""
    from seamline.gateway.stores.limits import WINDOW_S

    left = WINDOW_S - time.time() % WINDOW_S
    if left < 15:
        time.sleep(left + 0.05)
