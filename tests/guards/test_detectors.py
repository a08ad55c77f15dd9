"""Detectors a package registers through the ``seamline.guards`` entry point group can be
named in a policy and run like the built-in ones; unregistered names are refused."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from pydantic import ValidationError

from seamline.guards import detectors
from seamline.guards.engine import GuardEngine
from seamline.guards.findings import Finding
from seamline.guards.policy import GuardPolicySpec


class ShoutingDetector:
    """A third-party detector: flags text written in capitals."""

    name = "acme.shouting"

    def scan(self, text: str, *, untrusted: bool = False) -> list[Finding]:
        letters = [c for c in text if c.isalpha()]
        shouting = bool(letters) and all(c.isupper() for c in letters)
        return [Finding(self.name, "tone", "shouting", 1.0, 0, len(text))] if shouting else []


def make_detector() -> ShoutingDetector:
    return ShoutingDetector()


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    point = EntryPoint(
        name="acme.shouting",
        value=f"{__name__}:make_detector",
        group=detectors.ENTRY_POINT_GROUP,
    )

    def entry_points(**selection: Any) -> list[EntryPoint]:
        return [point] if selection.get("group") == detectors.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(detectors, "entry_points", entry_points)
    detectors._registered.cache_clear()
    yield
    detectors._registered.cache_clear()
    detectors._built.pop("acme.shouting", None)


def _policy(action: str) -> dict[str, Any]:
    rule = {"detector": "acme.shouting", "content": ["user"], "action": action}
    return {"name": "tone", "rules": [rule]}


def test_a_registered_detector_runs_under_a_policy(registered: None) -> None:
    engine = GuardEngine(GuardPolicySpec.model_validate(_policy("redact")), 1)
    verdict = engine.check_input([{"role": "user", "content": "STOP RIGHT NOW"}])
    assert verdict.messages[0]["content"] == "[SHOUTING]"
    assert verdict.actions[0].detector == "acme.shouting"
    assert engine.check_input([{"role": "user", "content": "calm"}]).actions == []


def test_an_unregistered_detector_is_refused() -> None:
    detectors._registered.cache_clear()
    with pytest.raises(ValidationError, match=r"unknown detector 'acme\.shouting'"):
        GuardPolicySpec.model_validate(_policy("flag"))
