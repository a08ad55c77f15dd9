"""A project's ``model`` artefacts are models its keys can call, released like prompts."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from seamline.registry import Actor, Registry
from seamline.registry.loader import draft_from_mapping
from tests.conftest import make_actor
from tests.gateway.conftest import RunningGateway
from tests.stub_upstream import StubUpstream


def _model(upstream: StubUpstream | str | None, upstream_model: str, **extra: object) -> object:
    base_url = upstream.base_url if isinstance(upstream, StubUpstream) else upstream
    return draft_from_mapping(
        {
            "kind": "model",
            "name": "team-model",
            "provider": "openai",
            "upstream_model": upstream_model,
            **({"base_url": base_url} if base_url is not None else {}),
            "prices": {"input": 4.0, "output": 8.0},
            "context_window": 8000,
            **extra,
        },
        source="team-model.yaml",
    )


@pytest.fixture
def gateway(
    start_gateway: Callable[..., RunningGateway], upstreams: dict[str, StubUpstream]
) -> RunningGateway:
    return start_gateway(
        registry_model_base_urls=[upstreams["secondary"].base_url],
        registry_model_key_envs=["TEAM_MODEL_KEY"],
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


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"base_url": "http://169.254.169.254/latest"}, "base_url_not_allowed"),
        ({"base_url": "http://127.0.0.1:1/v1"}, "base_url_not_allowed"),
        ({"base_url": "{allowed}/../../escaped"}, "base_url_not_allowed"),
        ({"base_url": "{allowed}/%2e%2e/%2e%2e/escaped"}, "base_url_not_allowed"),
        ({"base_url": "{allowed}/./v1"}, "base_url_not_allowed"),
        ({"base_url": None, "provider": "anthropic"}, "base_url_not_allowed"),  # its default
        ({"api_key_env": "SEAMLINE_SECRET_KEY"}, "key_env_not_allowed"),
    ],
)
def test_registry_models_only_reach_where_the_operator_allows(
    gateway: RunningGateway,
    registry: Registry,
    alice: Actor,
    upstreams: dict[str, StubUpstream],
    extra: dict[str, str | None],
    code: str,
) -> None:
    allowed = upstreams["secondary"].base_url
    base_url = extra.get("base_url", allowed)
    model = _model(
        base_url and base_url.replace("{allowed}", allowed),
        "x",
        **{k: v for k, v in extra.items() if k != "base_url"},
    )
    registry.push(alice, [model])  # type: ignore[list-item]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        gateway.client().chat.completions.create(
            model="team-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.body["code"] == code  # type: ignore[index]
    assert all(stub.requests == [] for stub in upstreams.values())
