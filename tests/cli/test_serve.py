"""``seamline serve`` as a real process: what it prints while it serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port


def _served_output(tmp_path: Path, *args: str) -> str:
    """Start ``seamline serve`` on a fresh home, call /healthz twice, stop it, and return what
    it printed (stdout and stderr)."""
    env = {**os.environ, "SEAMLINE_HOME": str(tmp_path / "home"), "SEAMLINE_USER": "ops"}
    for inherited in ("SEAMLINE_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "SEAMLINE_ACCESS_LOG"):
        env.pop(inherited, None)
    command = [sys.executable, "-m", "seamline"]
    subprocess.run([*command, "init"], env=env, check=True, capture_output=True, cwd=tmp_path)
    port = free_port()
    output = tmp_path / "output.txt"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port), *args],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            answered = 0
            while answered < 2 and time.monotonic() < deadline:
                try:
                    answered += httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert answered == 2, "seamline serve did not answer"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    return output.read_text()


@pytest.mark.parametrize(
    ("args", "logged"), [((), False), (("--access-log",), True)], ids=["default", "access-log"]
)
def test_the_access_log_is_off_unless_asked_for(
    tmp_path: Path, args: tuple[str, ...], logged: bool
) -> None:
    printed = _served_output(tmp_path, *args)
    assert "Uvicorn running on" in printed  # the server's own lines stay
    assert ('"GET /healthz HTTP/1.1" 200' in printed) is logged
