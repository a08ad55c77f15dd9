"""``seamline serve`` as a real process, on a fresh home with one key: for tests of what only
a whole server shows (signals, several workers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.live import free_port


@dataclass
class ServedGateway:
    url: str
    key: str
    home: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> int:
        """SIGTERM, then the exit status once the graceful shutdown is over."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def serve(tmp_path: Path, config: str, *, workers: int = 1) -> ServedGateway:
    """Initialise a home with ``config`` as its seamline.toml, make an invoke key, start the
    server and wait until it is ready."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "seamline.toml").write_text(config)
    env = {**os.environ, "SEAMLINE_HOME": str(home), "SEAMLINE_USER": "ops"}
    for inherited in ("SEAMLINE_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(inherited, None)
    command = [sys.executable, "-m", "seamline"]

    def run(*args: str) -> str:
        return subprocess.run(
            [*command, *args], env=env, check=True, capture_output=True, text=True, cwd=tmp_path
        ).stdout

    run("init")
    key = json.loads(run("keys", "create", "--scopes", "invoke", "--json"))["key"]
    port = free_port()
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    served = ServedGateway(f"http://127.0.0.1:{port}", key, home, process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{served.url}/readyz").status_code == 200:
                return served
        except httpx.HTTPError:
            time.sleep(0.1)
    served.stop()
    raise RuntimeError("seamline serve did not become ready")
