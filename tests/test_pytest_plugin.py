"""The ``seamline`` pytest fixture in a team's own test suite: asks a prompt version,
scores answers, runs an eval set, and a re-run of the suite asks the model nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seamline.core.settings import Settings
from seamline.registry.loader import draft_from_mapping
from seamline.registry.workspace import initialise, local_actor, open_registry
from tests.stub_upstream import StubUpstream

SUITE = """
def test_an_answer_is_asked_and_scored(seamline):
    answer = seamline.ask("echo@1", word="plum")
    assert "plum" in answer.text
    assert seamline.score("contains", answer, value="plum").value == 1.0
    assert seamline.score("contains", answer, value="kiwi").value == 0.0


def test_the_eval_set_holds_with_confidence(seamline):
    run = seamline.evaluate("echo@1")
    assert run.interval("contains").low == 1.0 and run.report.passed


def test_a_bar_too_high_fails(seamline):
    assert seamline.evaluate("echo@1").interval("contains").low > 1.0
"""


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, StubUpstream]]:
    stub = StubUpstream("up").start()
    home = tmp_path / "home"
    home.mkdir()
    (home / "seamline.toml").write_text(
        f'[[models]]\nname = "gpt-4o-mini"\nbase_url = "{stub.base_url}"\n'
        "[gateway]\nembedded_models = false\n"
    )
    settings = Settings(home=home, project="default", acting_user="alice")
    registry = open_registry(settings)
    initialise(settings, registry.db)
    alice = local_actor(registry.db, "default", "alice")
    words = ["apple", "pear", "plum"]
    docs = [
        {
            "name": "echo",
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say {{ word }}"}],
            "variables": [{"name": "word", "type": "string"}],
            "eval_set": "echo-set",
        },
        {
            "kind": "eval_set",
            "name": "echo-set",
            "scorers": [{"name": "contains"}],
            "cases": [
                {"variables": {"word": w}, "criteria": {"contains": {"value": w}}} for w in words
            ],
        },
    ]
    registry.push(alice, [draft_from_mapping(d, source="d.yaml") for d in docs])
    yield home, stub
    stub.stop()


def test_a_team_suite_uses_the_fixture_and_a_rerun_asks_nothing(
    home: tuple[Path, StubUpstream], tmp_path: Path
) -> None:
    folder, stub = home
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_evals.py").write_text(SUITE)
    env = {**os.environ, "SEAMLINE_HOME": str(folder), "SEAMLINE_USER": "alice"}
    env.pop("SEAMLINE_DATABASE_URL", None)
    env.pop("SEAMLINE_PROJECT", None)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
            cwd=suite,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = run()
    assert first.returncode == 1, first.stdout[-3000:]
    assert "1 failed, 2 passed" in first.stdout and "test_a_bar_too_high_fails" in first.stdout
    asked = len(stub.requests)
    assert asked == 3  # plum once (asked, then kept for the run), apple and pear
    again = run()
    assert "1 failed, 2 passed" in again.stdout and len(stub.requests) == asked
