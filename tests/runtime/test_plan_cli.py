"""``seamline runtime plan`` as a user runs it: a readable report, JSON on request, and one
line on stderr for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seamline.cli.main import app
from seamline.runtime.model_shape import EXAMPLES

runner = CliRunner()


def test_report_shows_bytes_per_token_blocks_and_concurrency() -> None:
    result = runner.invoke(
        app, ["runtime", "plan", "--model", "llama-3.1-8b-instruct", "--gpu", "H100"]
    )
    assert result.exit_code == 0, result.output
    assert "131,072 B per GPU" in result.output
    assert "KV blocks" in result.output and "blocks each" in result.output


def test_json_is_the_plan(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text((EXAMPLES / "llama-3.1-70b-instruct.json").read_text())
    result = runner.invoke(
        app,
        ["runtime", "plan", "--model", str(config), "--gpu", "80GB", "--tp", "16", "--json"],
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["kv_bytes_per_token"] == 2 * 80 * 1 * 128 * 2  # one replicated head per GPU
    assert found["num_gpu_blocks"] > 0 and found["tp"] == 16


def _seamline(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEAMLINE_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, "-m", "seamline", "runtime", "plan", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model", "--gpu", "H100"], "no such file 'no-such-model'"),
        (["--model", "llama-3.1-70b-instruct", "--gpu", "L4"], "131.4 GiB"),
        (["--model", "llama-3.1-8b-instruct", "--gpu", "K80"], "unknown GPU 'K80'"),
    ],
)
def test_bad_input_is_one_line_and_a_failing_exit(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = _seamline(tmp_path, *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
