"""``seamline serve --workers 2``: two processes, one server, one set of metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.live import free_port
from tests.stub_upstream import StubUpstream


def test_metrics_sum_every_worker(tmp_path: Path) -> None:
    stub = StubUpstream("up").start()
    home = tmp_path / "home"
    home.mkdir()
    (home / "seamline.toml").write_text(
        f'[[models]]\nname = "m"\nbase_url = "{stub.base_url}"\n'
        "[gateway]\nembedded_models = false\n"
    )
    env = {**os.environ, "SEAMLINE_HOME": str(home), "SEAMLINE_USER": "ops"}
    env.pop("SEAMLINE_DATABASE_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    run = [sys.executable, "-m", "seamline"]
    subprocess.run([*run, "init"], env=env, check=True, capture_output=True, cwd=tmp_path)
    key = json.loads(
        subprocess.run(
            [*run, "keys", "create", "--scopes", "invoke", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        ).stdout
    )["key"]
    port = free_port()
    server = subprocess.Popen(
        [*run, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for _ in range(20):  # new connections: the kernel spreads them over both workers
            with httpx.Client() as http:
                reply = http.post(
                    f"{url}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert reply.status_code == 200
                metrics = http.get(f"{url}/metrics").text
        totals = [
            float(v)
            for v in re.findall(r'seamline_requests_total\{[^}]*status="ok"\} ([0-9.e+]+)', metrics)
        ]
        assert sum(totals) == 20
        writers = {path.name for path in (home / "metrics").glob("counter_*.db")}
        assert len(writers) == 2  # both workers served calls, and /metrics added them up
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        stub.stop()
    assert not (home / "events-spill.jsonl").exists()
