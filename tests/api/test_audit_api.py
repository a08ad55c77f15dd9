"""``/api/v1/audit``: a remote monitor anchors the chain over HTTP and verifies against it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope
from tests.factories import prompt_draft
from tests.live import LiveServer
from tests.registry.test_audit import _tamper


@pytest.fixture
def monitor(server: LiveServer, registry: Registry, alice: Actor) -> Iterator[httpx.Client]:
    """A client with a read-only key: anchoring and verifying change nothing."""
    key, _ = registry.create_key(alice, owner="monitor", scopes=frozenset({Scope.READ}), name="m")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def test_a_monitor_anchors_over_http_and_catches_entries_cut_off_the_end(
    monitor: httpx.Client, registry: Registry, alice: Actor
) -> None:
    registry.push(alice, [prompt_draft()])
    anchor = monitor.post("/api/v1/audit/anchor").json()
    # entries: 1 project.create, 2 key.create (the monitor's key), 3 version.create
    assert (anchor["project"], anchor["entries"]) == ("acme", 3)
    held = monitor.post("/api/v1/audit/verify", json={"anchors": [anchor]}).json()
    assert held["ok"] and held["anchor"] == anchor

    _tamper(registry.db, "DELETE FROM audit_log WHERE seq = 3")
    assert monitor.get("/api/v1/audit/verify").json()["ok"]  # the chain alone cannot tell
    report = monitor.post("/api/v1/audit/verify", json={"anchors": [anchor]}).json()
    assert (report["ok"], report["first_bad_seq"]) == (False, 3)
    assert "truncated" in report["problem"]
    _tamper(registry.db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    refused = monitor.post("/api/v1/audit/anchor")  # an anchor vouches for a sound chain only
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "audit_chain_broken"


@pytest.mark.parametrize(
    "body",
    [{"anchors": []}, {"anchors": [{"v": 1, "entries": "many"}]}, {"anchors": ["x"]}],
    ids=["none", "malformed", "not-an-object"],
)
def test_malformed_anchors_get_a_400_in_the_api_format(
    monitor: httpx.Client, body: dict[str, object]
) -> None:
    answer = monitor.post("/api/v1/audit/verify", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
