"""``seamline runtime status`` and ``seamline runtime check`` as a user runs them, against
simulated vLLM engines named in seamline.toml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seamline.runtime.gpus import gpu_memory_bytes
from seamline.runtime.model_shape import load_model_config
from seamline.runtime.planner import plan
from seamline.runtime.simulated import EngineConfig
from seamline.runtime.simulated_server import RunningEngine, run_engine

MODEL = "llama-3.1-8b-instruct"


def planned_blocks() -> int:
    return plan(load_model_config(MODEL), gpu_memory_bytes("L40S")).num_gpu_blocks


@pytest.fixture
def engines() -> Iterator[dict[str, RunningEngine]]:
    blocks = planned_blocks()
    started = {
        "as-planned": run_engine(EngineConfig(model="llama", num_gpu_blocks=blocks)),
        "smaller": run_engine(EngineConfig(model="llama", num_gpu_blocks=blocks * 8 // 10)),
    }
    yield started
    for engine in started.values():
        engine.stop()


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEAMLINE_HOME": str(home)}
    env.pop("SEAMLINE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "seamline", "runtime", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def home_with(tmp_path: Path, models: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "seamline.toml").write_text(models)
    return home


def replicas_toml(engines: dict[str, RunningEngine]) -> str:
    return "".join(
        f'[[models]]\nname = "llama"\nbase_url = "{engine.url}/v1"\n'
        f'deployment = "{name}"\nengine = "vllm"\n\n'
        for name, engine in engines.items()
    )


def test_status_shows_every_replicas_live_figures(
    tmp_path: Path, engines: dict[str, RunningEngine]
) -> None:
    home = home_with(
        tmp_path,
        replicas_toml(engines) + '[[models]]\nname = "llama"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'deployment = "gone"\nengine = "vllm"\n',
    )
    result = run(home, "status", "--rates-over", "0.2", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["replica"]: row for row in json.loads(result.stdout)}
    assert rows["as-planned"]["up"] is True and rows["as-planned"]["waiting"] == 0
    assert rows["as-planned"]["num_gpu_blocks"] == planned_blocks()
    assert rows["gone"]["up"] is False and rows["gone"]["error"]
    table = run(home, "status", "--rates-over", "0")
    assert "as-planned" in table.stdout and "KV_CACHE" in table.stdout


def test_check_compares_the_plan_with_the_blocks_each_engine_reports(
    tmp_path: Path, engines: dict[str, RunningEngine]
) -> None:
    home = home_with(tmp_path, replicas_toml(engines))
    result = run(home, "check", "--model", MODEL, "--gpu", "L40S", "--json")
    assert result.returncode == 1  # one replica is 20% short of the plan
    rows = {row["replica"]: row for row in json.loads(result.stdout)}
    assert rows["as-planned"]["verdict"] == "agrees"
    assert rows["as-planned"]["difference"] == 0
    assert rows["smaller"]["verdict"] == "differs"
    assert rows["smaller"]["difference"] == pytest.approx(0.25, abs=0.001)  # 1 / 0.8 - 1


def test_no_engine_named_is_one_line_and_an_error(tmp_path: Path) -> None:
    home = home_with(tmp_path, '[[models]]\nname = "gpt-4o"\n')
    result = run(home, "status")
    assert result.returncode != 0
    assert "engine" in result.stderr and len(result.stderr.strip().splitlines()) == 1
