"""The ``seamline`` fixture: the command line on a fresh, initialised home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.test_cli import Run, _runner


@pytest.fixture
def seamline(tmp_path: Path) -> Run:
    env = {**os.environ, "SEAMLINE_HOME": str(tmp_path / "home"), "SEAMLINE_USER": "alice"}
    env.pop("SEAMLINE_DATABASE_URL", None)
    run = _runner(env)
    run("init")
    return run
