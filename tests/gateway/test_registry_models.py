"""A project's ``model`` artefacts are models its keys can call, released like prompts."""

from __future__ import annotations

import openai
import pytest

from seamline.registry import Actor, Registry
from seamline.registry.loader import draft_from_mapping
from tests.conftest import make_actor
from tests.gateway.conftest import RunningGateway
from tests.stub_upstream import StubUpstream


def _model(upstream: StubUpstream, upstream_model: str) -> object:
    return draft_from_mapping(
        {
            "kind": "model",
            "name": "team-model",
            "provider": "openai",
            "upstream_model": upstream_model,
            "base_url": upstream.base_url,
            "prices": {"input": 4.0, "output": 8.0},
            "context_window": 8000,
        },
        source="team-model.yaml",
    )


def test_a_registry_model_serves_its_production_version(
    gateway: RunningGateway,
    registry: Registry,
    alice: Actor,
    bob: Actor,
    upstreams: dict[str, StubUpstream],
) -> None:
    registry.push(alice, [_model(upstreams["secondary"], "v1-model")])  # type: ignore[list-item]
    registry.push(alice, [_model(upstreams["secondary"], "v2-model")])  # type: ignore[list-item]
    client = gateway.client()
    hello = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="team-model", messages=hello)
    assert upstreams["secondary"].requests[-1]["model"] == "v2-model"  # latest: no production
    registry.approve(bob, "model", "team-model", 1)
    registry.move_alias(alice, "model", "team-model", "production", 1, override=True, reason="pin")
    client.chat.completions.create(model="team-model", messages=hello)
    assert upstreams["secondary"].requests[-1]["model"] == "v1-model"  # the next request
    rows = gateway.events(2)
    assert rows[-1]["replica"] == "registry:acme:team-model@v1"
    assert rows[-1]["cost_usd"] == pytest.approx((1 * 4.0 + 3 * 8.0) / 1e6)


def test_another_projects_model_is_not_found(
    gateway: RunningGateway, registry: Registry, upstreams: dict[str, StubUpstream]
) -> None:
    other = make_actor(registry, "olga", project="other")
    registry.push(other, [_model(upstreams["secondary"], "secret")])  # type: ignore[list-item]
    with pytest.raises(openai.NotFoundError):
        gateway.client().chat.completions.create(
            model="team-model", messages=[{"role": "user", "content": "hi"}]
        )
