"""The ``seamline`` fixture: the command line on a fresh, initialised home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import Run, _runner
from tests.stub_upstream import StubUpstream


@pytest.fixture
def seamline(tmp_path: Path) -> Run:
    env = {**os.environ, "SEAMLINE_HOME": str(tmp_path / "home"), "SEAMLINE_USER": "alice"}
    env.pop("SEAMLINE_DATABASE_URL", None)
    run = _runner(env)
    run("init")
    return run


@pytest.fixture
def stub_home(tmp_path: Path) -> Iterator[Path]:
    """A home (not initialised) whose ``gpt-4o-mini`` is a stub upstream that echoes the
    last message, at $1 and $2 per million tokens."""
    stub = StubUpstream("up").start()
    home = tmp_path / "home"
    home.mkdir()
    (home / "seamline.toml").write_text(
        f'[[models]]\nname = "gpt-4o-mini"\nbase_url = "{stub.base_url}"\n'
        f'deployment = "stub"\nprices = {{input = 1.0, output = 2.0}}\n'
        "[gateway]\nembedded_models = false\n"
    )
    yield home
    stub.stop()
