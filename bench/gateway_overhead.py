"""Gateway overhead: what passing through seamline costs, against calling the upstream directly.

One run measures both, at several concurrencies, non-streamed and streamed:

* upstream: ``bench/stub_upstream.py``, a raw asyncio server in its own process that answers
  every call with the same bytes (so any latency added is the gateway's);
* direct: the load generator calls the stub with the body the prompt renders to;
* gateway: the load generator calls ``seamline serve`` (one worker, SQLite) with
  ``model: prompt:bench@production`` and variables: auth, limits, prompt resolution, events
  and metrics on, guards off.

It prints added latency (p50, p99) and the gateway's CPU time per request (process CPU
seconds from /proc divided by requests: stable on a noisy machine), plus the ratios against
the direct baseline. Run: ``.venv/bin/python -m bench.gateway_overhead [--seconds 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.loadgen import LoadResult, build_request, free_port, run_load
from seamline.core.settings import Settings
from seamline.registry.identity import Scope
from seamline.registry.loader import draft_from_mapping
from seamline.registry.workspace import initialise, local_actor, open_registry

PROMPT = {
    "name": "bench",
    "model": "bench-model",
    "parameters": {"temperature": 0.2, "max_tokens": 64},
    "variables": [{"name": "question"}, {"name": "context"}],
    "messages": [
        {"role": "system", "content": "Answer from the context only.\n\n{{ context }}"},
        {"role": "user", "content": "{{ question }}"},
    ],
}
VARIABLES = {"question": "What is the answer?", "context": "[kb-1] The answer is 42. " * 20}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code in (200, 404):
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def prepare(home: Path, upstream_port: int) -> tuple[str, list[dict[str, str]]]:
    (home / "seamline.toml").write_text(
        "[[models]]\n"
        'name = "bench-model"\n'
        f'base_url = "http://127.0.0.1:{upstream_port}/v1"\n'
        "prices = {input = 0.15, output = 0.6}\n"
        "[gateway]\n"
        "embedded_models = false\n"
        "key_limits = {requests_per_minute = 100000000, tokens_per_minute = 100000000000}\n"
    )
    settings = Settings(home=home)
    registry = open_registry(settings)
    initialise(settings, registry.db)
    author = local_actor(registry.db, "default", "author")
    reviewer = local_actor(registry.db, "default", "reviewer")
    registry.push(author, [draft_from_mapping(PROMPT, source="bench.yaml")])
    registry.approve(reviewer, "prompt", "bench", 1)
    registry.move_alias(
        author, "prompt", "bench", "production", 1, override=True, reason="benchmark"
    )
    key, _ = registry.create_key(
        author, owner="bench", scopes=frozenset({Scope.INVOKE}), name="bench"
    )
    rendered = registry.get_version(author, "prompt", "bench", "production").as_prompt()
    messages = rendered.render(**VARIABLES).messages
    registry.db.dispose()
    return key, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()

    upstream_port, gateway_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        key, messages = prepare(home, upstream_port)
        env = {**os.environ, "SEAMLINE_HOME": str(home)}
        env.pop("SEAMLINE_DATABASE_URL", None)
        stub = subprocess.Popen([sys.executable, "-m", "bench.stub_upstream", str(upstream_port)])
        gateway = subprocess.Popen(
            [sys.executable, "-m", "seamline", "serve", "--port", str(gateway_port)],
            env=env,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(f"http://127.0.0.1:{upstream_port}/")
            wait_ready(f"http://127.0.0.1:{gateway_port}/healthz")
            rows = measure(args, key, messages, upstream_port, gateway_port, gateway.pid)
        finally:
            gateway.terminate()
            stub.terminate()
            gateway.wait(30)
            stub.wait(10)
    report(rows, args.seconds)


def measure(
    args: argparse.Namespace,
    key: str,
    messages: list[dict[str, str]],
    upstream_port: int,
    gateway_port: int,
    gateway_pid: int,
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for stream in (False, True):
        direct_body = json.dumps(
            {
                "model": "bench-model",
                "messages": messages,
                "temperature": 0.2,
                "max_tokens": 64,
                "stream": stream,
            }
        ).encode()
        gateway_body = json.dumps(
            {
                "model": "prompt:bench@production",
                "seamline": {"variables": VARIABLES},
                "metadata": {"user_id": "bench-user"},
                "stream": stream,
            }
        ).encode()
        json_headers = {"Content-Type": "application/json"}
        direct = build_request(
            "127.0.0.1", upstream_port, "POST", "/v1/chat/completions", json_headers, direct_body
        )
        through = build_request(
            "127.0.0.1",
            gateway_port,
            "POST",
            "/v1/chat/completions",
            {**json_headers, "Authorization": f"Bearer {key}"},
            gateway_body,
        )
        for concurrency in args.concurrency:
            run_load("127.0.0.1", gateway_port, through, concurrency=concurrency, seconds=1)
            base = run_load(
                "127.0.0.1", upstream_port, direct, concurrency=concurrency, seconds=args.seconds
            )
            before = cpu_seconds(gateway_pid)
            via = run_load(
                "127.0.0.1", gateway_port, through, concurrency=concurrency, seconds=args.seconds
            )
            cpu_ms = (cpu_seconds(gateway_pid) - before) * 1000 / max(via.requests, 1)
            rows.append(row(stream, concurrency, base, via, cpu_ms))
    return rows


def row(
    stream: bool, concurrency: int, base: LoadResult, via: LoadResult, cpu_ms: float
) -> dict[str, object]:
    return {
        "mode": "streamed" if stream else "non-streamed",
        "concurrency": concurrency,
        "direct_p50": statistics.median(base.latencies_ms),
        "direct_p99": percentile(base.latencies_ms, 0.99),
        "gateway_p50": statistics.median(via.latencies_ms),
        "gateway_p99": percentile(via.latencies_ms, 0.99),
        "direct_rps": base.per_second,
        "gateway_rps": via.per_second,
        "cpu_ms": cpu_ms,
        "errors": base.errors + via.errors,
        "requests": via.requests,
    }


def report(rows: list[dict[str, object]], seconds: float) -> None:
    print(
        f"seamline gateway overhead ({os.cpu_count()} cores, one gateway worker, SQLite, "
        f"{seconds:.0f} s per cell; prompt resolution, auth, limits, events, metrics on)"
    )
    print(
        f"{'mode':13} {'conc':>4} | {'direct p50':>10} {'p99':>7} | {'gateway p50':>11} "
        f"{'p99':>7} | {'added p50':>9} {'p99':>7} | {'ratio p50':>9} | {'gw req/s':>8} "
        f"{'direct req/s':>12} | {'gw CPU ms/req':>13} | errors"
    )
    for r in rows:
        d50, d99 = float(r["direct_p50"]), float(r["direct_p99"])  # type: ignore[arg-type]
        g50, g99 = float(r["gateway_p50"]), float(r["gateway_p99"])  # type: ignore[arg-type]
        print(
            f"{r['mode']:13} {r['concurrency']:>4} | {d50:10.3f} {d99:7.3f} | {g50:11.3f} "
            f"{g99:7.3f} | {g50 - d50:9.3f} {g99 - d99:7.3f} | {g50 / d50:8.2f}x | "
            f"{float(r['gateway_rps']):8.0f} {float(r['direct_rps']):12.0f} | "  # type: ignore[arg-type]
            f"{float(r['cpu_ms']):13.3f} | {r['errors']}"
        )  # type: ignore[arg-type]
    print(
        "latencies in ms; ratio = gateway p50 / direct p50; CPU = gateway process CPU time "
        "(user+system, all threads) / requests served"
    )


if __name__ == "__main__":
    main()
