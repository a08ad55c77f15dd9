"""``seamline serve --workers 2``: two processes, one server, one set of metrics."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.served import serve
from tests.stub_upstream import StubUpstream


def test_metrics_sum_every_worker(tmp_path: Path) -> None:
    stub = StubUpstream("up").start()
    server = serve(
        tmp_path,
        f'[[models]]\nname = "m"\nbase_url = "{stub.base_url}"\n'
        "[gateway]\nembedded_models = false\n",
        workers=2,
    )
    try:
        for _ in range(40):  # new connections: the kernel hands them to either worker
            with httpx.Client() as http:
                reply = http.post(
                    f"{server.url}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {server.key}"},
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert reply.status_code == 200
        # Every scrape, whichever worker answers it, reports all 40 calls.
        for _ in range(10):
            with httpx.Client() as http:
                metrics = http.get(f"{server.url}/metrics").text
            totals = [
                float(v)
                for v in re.findall(
                    r'seamline_requests_total\{[^}]*status="ok"\} ([0-9.e+]+)', metrics
                )
            ]
            assert sum(totals) == 40
        assert len(list((server.home / "metrics").glob("counter_*.db"))) == 2
    finally:
        server.stop()
        stub.stop()
    assert not (server.home / "events-spill.jsonl").exists()
