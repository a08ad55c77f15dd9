from __future__ import annotations

from pathlib import Path

import pytest

from seamline import Client
from seamline.core.errors import NotFound, Unavailable
from seamline.core.settings import Settings
from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope
from seamline.registry.workspace import initialise, open_registry
from tests.factories import prompt_doc, prompt_draft
from tests.live import LiveServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def service_key(registry: Registry, alice: Actor) -> str:
    key, _ = registry.create_key(alice, owner="svc", scopes=frozenset({Scope.READ}), name="svc")
    return key


def _release_two_versions(registry: Registry, alice: Actor) -> None:
    registry.push(alice, [prompt_draft()])
    registry.push(alice, [prompt_draft(text="Hi {{ who }}")])
    registry.move_alias(alice, "prompt", "greeter", "staging", 1)


def test_alias_move_reaches_the_sdk_after_the_ttl_without_restart(
    server: LiveServer, registry: Registry, alice: Actor, service_key: str
) -> None:
    _release_two_versions(registry, alice)
    clock = FakeClock()
    client = Client(base_url=server.url, api_key=service_key, cache_ttl=60, clock=clock)
    first = client.prompts.get("greeter", alias="staging")
    assert (first.version, first.alias) == (1, "staging")
    assert first.render(who="Ada").messages[1]["content"] == "Hello Ada!"
    registry.move_alias(alice, "prompt", "greeter", "staging", 2)
    clock.now += 30
    assert client.prompts.get("greeter", alias="staging").version == 1  # still cached
    clock.now += 31
    assert client.prompts.get("greeter", alias="staging").version == 2
    registry.rollback(alice, "prompt", "greeter", "staging")
    clock.now += 61
    assert client.prompts.get("greeter", alias="staging").version == 1
    client.close()


def test_sdk_serves_the_last_good_version_while_the_server_is_down(
    server: LiveServer, registry: Registry, alice: Actor, service_key: str
) -> None:
    _release_two_versions(registry, alice)
    clock = FakeClock()
    client = Client(base_url=server.url, api_key=service_key, cache_ttl=60, clock=clock, timeout=1)
    assert client.prompts.get("greeter", alias="staging").version == 1
    server.stop()
    clock.now += 3600
    stale = client.prompts.get("greeter", alias="staging")
    assert stale.version == 1 and stale.render(who="Bo").messages[1]["content"] == "Hello Bo!"
    with pytest.raises(Unavailable):
        client.prompts.get("greeter", version=2)  # never fetched, no fallback
    fallback = client.prompts.get("greeter", version=2, fallback=prompt_doc(text="Yo {{ who }}"))
    assert fallback.render(who="Cy").messages[1]["content"] == "Yo Cy"
    client.close()


def test_sdk_raises_for_a_missing_alias_rather_than_guessing(
    server: LiveServer, registry: Registry, alice: Actor, service_key: str
) -> None:
    registry.push(alice, [prompt_draft()])
    with Client(base_url=server.url, api_key=service_key) as client:
        with pytest.raises(NotFound, match="no alias 'production'"):
            client.prompts.get("greeter", alias="production")
        assert client.prompts.get("greeter").version == 1


def test_local_mode_reads_the_database_directly(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, user="alice")
    registry = open_registry(settings)
    initialise(settings, registry.db)
    from seamline.registry.workspace import local_actor

    actor = local_actor(registry.db, "default", "alice")
    registry.push(actor, [prompt_draft()])
    registry.move_alias(actor, "prompt", "greeter", "dev", 1)
    with Client.local(settings) as client:
        assert (
            client.prompts.get("greeter", alias="dev").render(who="Ada").messages[1]["content"]
            == "Hello Ada!"
        )


def test_during_an_outage_the_sdk_does_not_wait_on_every_call() -> None:
    """After a failed fetch the last good version is served for a while without retrying,
    so an outage does not cost every call a timeout."""
    from typing import Any

    class FlakyRegistry:  # stands in for the remote registry server
        def __init__(self) -> None:
            self.calls = 0
            self.down = False

        def fetch(self, kind: str, name: str, ref: str) -> dict[str, Any]:
            self.calls += 1
            if self.down:
                raise Unavailable("registry unreachable")
            return {"content": prompt_doc(), "version": 1, "content_hash": "h"}

        def close(self) -> None:
            return None

    source, clock = FlakyRegistry(), FakeClock()
    client = Client(source=source, cache_ttl=60, clock=clock)
    client.prompts.get("greeter", alias="prod")
    source.down = True
    clock.now += 61
    assert client.prompts.get("greeter", alias="prod").version == 1  # stale, one try
    assert client.prompts.get("greeter", alias="prod").version == 1  # no new try yet
    assert source.calls == 2
    clock.now += 6
    client.prompts.get("greeter", alias="prod")
    assert source.calls == 3
