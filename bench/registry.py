"""Registry benchmark: how fast an application gets its live prompt.

Measured in one run, against a real ``seamline serve`` process on SQLite in a temporary home:

* SDK alias resolution, cached (the common case: within the TTL) and uncached (every call
  goes to the server), p50 and p99; the uncached figure is compared with a direct read of the
  same database in local mode (the floor without HTTP).
* API resolution throughput: ``GET /api/v1/artefacts/prompt/NAME/versions/production`` with
  keep-alive connections, compared with ``GET /healthz`` on the same server (the floor of
  the HTTP stack itself).

Run: ``.venv/bin/python -m bench.registry [--seconds 5] [--concurrency 8]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.loadgen import free_port, run_load
from bench.loadgen import get as get_request
from seamline import Client
from seamline.core.settings import Settings
from seamline.registry import load_drafts
from seamline.registry.identity import Scope
from seamline.registry.workspace import initialise, local_actor, open_registry

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROMPT = "support-answer"


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def time_calls(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def prepare(home: Path) -> tuple[Settings, str]:
    settings = Settings(home=home, user="author")
    registry = open_registry(settings)
    initialise(settings, registry.db)
    author = local_actor(registry.db, "default", "author")
    reviewer = local_actor(registry.db, "default", "reviewer")
    registry.push(author, load_drafts([EXAMPLES]))
    registry.approve(reviewer, "prompt", PROMPT, 1)
    registry.move_alias(
        author, "prompt", PROMPT, "production", 1, override=True, reason="benchmark"
    )
    key, _ = registry.create_key(
        author, owner="bench", scopes=frozenset({Scope.READ}), name="bench"
    )
    registry.db.dispose()
    return settings, key


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SEAMLINE_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "seamline", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--calls", type=int, default=500, help="uncached SDK calls")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    args.port = args.port or free_port()

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        settings, key = prepare(home)
        server = start_server(home, args.port)
        base_url = f"http://127.0.0.1:{args.port}"
        try:
            remote = Client(base_url=base_url, api_key=key, cache_ttl=0)
            local = Client.local(settings, cache_ttl=0)
            cached = Client(base_url=base_url, api_key=key, cache_ttl=3600)

            def get(client: Client) -> Callable[[], object]:
                return lambda: client.prompts.get(PROMPT, alias="production")

            for client in (remote, local, cached):  # warm connections and caches
                time_calls(get(client), 20)
            uncached = percentiles(time_calls(get(remote), args.calls))
            direct = percentiles(time_calls(get(local), args.calls))
            hits = percentiles(time_calls(get(cached), 100_000))

            headers = {"Authorization": f"Bearer {key}"}
            path = f"/api/v1/artefacts/prompt/{PROMPT}/versions/production"
            host, port = "127.0.0.1", args.port
            floor = run_load(
                host,
                port,
                get_request(host, port, "/healthz", {}),
                concurrency=args.concurrency,
                seconds=args.seconds,
            )
            resolve = run_load(
                host,
                port,
                get_request(host, port, path, headers),
                concurrency=args.concurrency,
                seconds=args.seconds,
            )
        finally:
            server.terminate()
            server.wait(timeout=10)

    print(f"seamline registry benchmark (SQLite, one server process, {os.cpu_count()} cores)")
    print("SDK alias resolution            p50 ms     p99 ms")
    print(f"  cached (within TTL)        {hits[0]:9.4f}  {hits[1]:9.4f}")
    print(f"  uncached, over HTTP        {uncached[0]:9.3f}  {uncached[1]:9.3f}")
    print(f"  uncached, local database   {direct[0]:9.3f}  {direct[1]:9.3f}   (baseline)")
    print(f"  ratio HTTP / local (p50)   {uncached[0] / direct[0]:9.2f}x")
    print(f"  ratio uncached / cached    {uncached[0] / hits[0]:9.0f}x")
    print(f"API throughput at concurrency {args.concurrency}, {args.seconds:.0f} s each")
    for label, result in (
        ("GET /healthz (baseline)", floor),
        ("resolve prompt@production", resolve),
    ):
        p50, p99 = percentiles(result.latencies_ms)
        print(
            f"  {label:27s} {result.per_second:8.0f} req/s  p50 {p50:6.2f} ms  "
            f"p99 {p99:6.2f} ms  errors {result.errors}"
        )
    print(f"  ratio resolve / healthz    {resolve.per_second / floor.per_second:9.2f}x")


if __name__ == "__main__":
    main()
