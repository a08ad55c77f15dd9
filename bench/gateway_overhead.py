"""Gateway overhead: what passing through seamline costs, against calling the upstream directly
and against the least a Python gateway can do.

One run measures all three, at several concurrencies, non-streamed and streamed:

* upstream: ``bench/stub_upstream.py``, a raw asyncio server in its own process that answers
  every call with the same bytes (so any latency added is the gateway's);
* direct: the load generator calls the stub with the body the prompt renders to;
* bare: ``bench/bare_passthrough.py`` in its own process, the floor (raw ASGI on uvicorn with
  uvloop and httptools, one aiohttp session to the stub, the key checked, ``usage`` read, an
  in-memory event), called with that same rendered body and a bearer key. uvicorn runs as
  ``seamline serve`` runs it (no access log);
* gateway: the load generator calls ``seamline serve`` (one worker, SQLite) with
  ``model: prompt:bench@production`` and variables: auth, limits, budgets, prompt resolution,
  events (written to SQLite), metrics and the shipped guard policy on (``--no-guards``: a
  policy with no rules).

It prints added latency (p50, p99) and the CPU time per request of the gateway and of the
bare floor (process CPU seconds from /proc, all threads, divided by requests: stable on a
noisy machine), with the ratios: gateway p50 / direct p50 and gateway CPU / bare CPU. Bare
and gateway are measured in alternating rounds, so drift in the machine's load falls on
both. Run: ``.venv/bin/python -m bench.gateway_overhead [--seconds 5]``
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.loadgen import LoadResult, build_request, free_port, run_load
from seamline.core.settings import Settings
from seamline.registry import Actor, Registry
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
Row = dict[str, float | int | str]
NO_GUARDS = {"kind": "guard_policy", "name": "default", "rules": []}
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


def bench_home(
    home: Path, upstream_port: int, *, embedded_models: bool = False
) -> tuple[Registry, Actor]:
    """A seamline home for a benchmark: ``bench-model`` on the stub upstream, rate limits out
    of the way, the registry initialised; its registry and an author in project default."""
    (home / "seamline.toml").write_text(
        "[[models]]\n"
        'name = "bench-model"\n'
        f'base_url = "http://127.0.0.1:{upstream_port}/v1"\n'
        "prices = {input = 0.15, output = 0.6}\n"
        "[gateway]\n"
        f"embedded_models = {'true' if embedded_models else 'false'}\n"
        # Drift's embedder works beside the calls, bounded by its own pace: measured apart
        # (bench.monitoring), not in a call's overhead.
        "drift = {sample_rate = 0.0}\n"
        "quality = {sample_rate = 0.0}\n"
        "key_limits = {requests_per_minute = 100000000, tokens_per_minute = 100000000000}\n"
    )
    settings = Settings(home=home)
    registry = open_registry(settings)
    initialise(settings, registry.db)
    return registry, local_actor(registry.db, "default", "author")


def bench_key(registry: Registry, author: Actor) -> str:
    key, _ = registry.create_key(
        author, owner="bench", scopes=frozenset({Scope.INVOKE}), name="bench"
    )
    return key


def serve(home: str, port: int) -> subprocess.Popen[bytes]:
    """``seamline serve`` on ``home`` (SQLite, one worker), its output discarded."""
    env = {**os.environ, "SEAMLINE_HOME": home}
    env.pop("SEAMLINE_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "seamline", "serve", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def prepare(
    home: Path, upstream_port: int, *, guards: bool = True
) -> tuple[str, list[dict[str, str]]]:
    registry, author = bench_home(home, upstream_port)
    reviewer = local_actor(registry.db, "default", "reviewer")
    registry.push(author, [draft_from_mapping(PROMPT, source="bench.yaml")])
    if not guards:  # the project's own default policy, with no rules
        registry.push(author, [draft_from_mapping(NO_GUARDS, source="default.yaml")])
    registry.approve(reviewer, "prompt", "bench", 1)
    registry.move_alias(
        author, "prompt", "bench", "production", 1, override=True, reason="benchmark"
    )
    key = bench_key(registry, author)
    rendered = registry.get_version(author, "prompt", "bench", "production").as_prompt()
    messages = rendered.render(**VARIABLES).messages
    registry.db.dispose()
    return key, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating bare/gateway rounds per cell"
    )
    parser.add_argument(
        "--no-guards",
        action="store_true",
        help="run the gateway under a guard policy with no rules (default: the shipped one)",
    )
    args = parser.parse_args()
    with running_servers(guards=not args.no_guards) as servers:
        rows = measure(args, servers)
    report(rows, args.seconds, guards=not args.no_guards)


@dataclass(frozen=True)
class Servers:
    key: str
    messages: list[dict[str, str]]
    upstream_port: int
    gateway_port: int
    gateway_pid: int
    bare_port: int
    bare_pid: int

    def request(self, port: int, body: bytes, *, auth: bool = True) -> bytes:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.key}"
        return build_request("127.0.0.1", port, "POST", "/v1/chat/completions", headers, body)

    def direct_body(self, stream: bool) -> bytes:
        """What the prompt renders to: the stub's and the bare floor's body."""
        return json.dumps(
            {
                "model": "bench-model",
                "messages": self.messages,
                "temperature": 0.2,
                "max_tokens": 64,
                "stream": stream,
            }
        ).encode()

    @staticmethod
    def gateway_body(stream: bool) -> bytes:
        return json.dumps(
            {
                "model": "prompt:bench@production",
                "seamline": {"variables": VARIABLES},
                "metadata": {"user_id": "bench-user"},
                "stream": stream,
            }
        ).encode()


@contextmanager
def running_servers(*, guards: bool = True) -> Iterator[Servers]:
    """The stub upstream, the bare floor and ``seamline serve`` (in a temporary home), each
    in its own process, ready."""
    upstream_port, gateway_port, bare_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        key, messages = prepare(home, upstream_port, guards=guards)
        stub = subprocess.Popen([sys.executable, "-m", "bench.stub_upstream", str(upstream_port)])
        bare = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.bare_passthrough", str(bare_port)),
                str(upstream_port),
            ],
            env={**os.environ, "BARE_KEY": key},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        gateway = serve(folder, gateway_port)
        try:
            wait_ready(f"http://127.0.0.1:{upstream_port}/")
            wait_ready(f"http://127.0.0.1:{gateway_port}/healthz")
            wait_ready(f"http://127.0.0.1:{bare_port}/")
            yield Servers(
                key, messages, upstream_port, gateway_port, gateway.pid, bare_port, bare.pid
            )
        finally:
            for process in (gateway, bare, stub):
                process.terminate()
            for process in (gateway, bare, stub):
                process.wait(30)


def measure(args: argparse.Namespace, servers: Servers) -> list[Row]:
    rows: list[Row] = []
    for stream in (False, True):
        direct_body = servers.direct_body(stream)
        direct = servers.request(servers.upstream_port, direct_body, auth=False)
        bare = servers.request(servers.bare_port, direct_body)
        through = servers.request(servers.gateway_port, servers.gateway_body(stream))
        for concurrency in args.concurrency:
            run_load("127.0.0.1", servers.gateway_port, through, concurrency=concurrency, seconds=1)
            run_load("127.0.0.1", servers.bare_port, bare, concurrency=concurrency, seconds=1)
            base = run_load(
                "127.0.0.1",
                servers.upstream_port,
                direct,
                concurrency=concurrency,
                seconds=args.seconds,
            )
            floor, via = Measured(), Measured()
            share = args.seconds / args.rounds
            for _ in range(args.rounds):
                floor.add(servers.bare_port, bare, servers.bare_pid, concurrency, share)
                via.add(servers.gateway_port, through, servers.gateway_pid, concurrency, share)
            rows.append(row(stream, concurrency, base, floor, via))
    return rows


@dataclass
class Measured:
    """One server's load results and process CPU seconds, summed over rounds."""

    load: LoadResult = field(default_factory=LoadResult)
    cpu_s: float = 0.0

    def add(self, port: int, request: bytes, pid: int, concurrency: int, seconds: float) -> None:
        before = cpu_seconds(pid)
        result = run_load("127.0.0.1", port, request, concurrency=concurrency, seconds=seconds)
        self.cpu_s += cpu_seconds(pid) - before
        self.load.requests += result.requests
        self.load.errors += result.errors
        self.load.seconds += result.seconds
        self.load.latencies_ms += result.latencies_ms

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000 / max(self.load.requests, 1)


def row(stream: bool, concurrency: int, base: LoadResult, floor: Measured, via: Measured) -> Row:
    return {
        "mode": "streamed" if stream else "non-streamed",
        "concurrency": concurrency,
        "direct_p50": statistics.median(base.latencies_ms),
        "direct_p99": percentile(base.latencies_ms, 0.99),
        "bare_p50": statistics.median(floor.load.latencies_ms),
        "gateway_p50": statistics.median(via.load.latencies_ms),
        "gateway_p99": percentile(via.load.latencies_ms, 0.99),
        "direct_rps": base.per_second,
        "bare_rps": floor.load.per_second,
        "gateway_rps": via.load.per_second,
        "bare_cpu_ms": floor.cpu_ms,
        "cpu_ms": via.cpu_ms,
        "errors": base.errors + floor.load.errors + via.load.errors,
        "requests": via.load.requests,
    }


def report(rows: list[Row], seconds: float, *, guards: bool) -> None:
    print(
        f"seamline gateway overhead ({os.cpu_count()} cores, one gateway worker, SQLite, "
        f"{seconds:g} s per cell; prompt resolution, auth, limits, budgets, events, metrics on; "
        f"guards {'on (the shipped policy)' if guards else 'off'}; "
        "neither logs a line per request)"
    )
    print(
        f"{'mode':13} {'conc':>4} | {'direct p50':>10} {'p99':>7} | {'gateway p50':>11} "
        f"{'p99':>7} | {'added p50':>9} {'p99':>7} | {'ratio p50':>9} | {'bare p50':>8} | "
        f"{'gw req/s':>8} {'bare req/s':>10} {'direct req/s':>12} | {'gw CPU ms/req':>13} "
        f"{'bare CPU ms/req':>15} {'CPU ratio':>9} | errors"
    )
    for r in rows:
        d50, d99 = float(r["direct_p50"]), float(r["direct_p99"])
        g50, g99 = float(r["gateway_p50"]), float(r["gateway_p99"])
        cpu, bare_cpu = float(r["cpu_ms"]), float(r["bare_cpu_ms"])
        print(
            f"{r['mode']:13} {r['concurrency']:>4} | {d50:10.3f} {d99:7.3f} | {g50:11.3f} "
            f"{g99:7.3f} | {g50 - d50:9.3f} {g99 - d99:7.3f} | {g50 / d50:8.2f}x | "
            f"{float(r['bare_p50']):8.3f} | {float(r['gateway_rps']):8.0f} "
            f"{float(r['bare_rps']):10.0f} {float(r['direct_rps']):12.0f} | {cpu:13.3f} "
            f"{bare_cpu:15.3f} {cpu / bare_cpu if bare_cpu else 0.0:8.2f}x | {r['errors']}"
        )
    print(
        "latencies in ms; ratio p50 = gateway p50 / direct p50; CPU = server process CPU time "
        "(user+system, all threads) / requests served; CPU ratio = gateway CPU / bare CPU "
        "(bare: bench/bare_passthrough.py, the floor; target at most 2x)"
    )


if __name__ == "__main__":
    main()
