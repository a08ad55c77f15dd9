"""The guard stages on the gateway path: what the shipped policy adds to a call, against the
same call under a policy with no rules, in one run on one gateway.

``seamline serve`` (one worker, SQLite, a temporary home) serves two prompts that differ
only in their guard policy: ``guarded`` runs under the shipped one, ``open`` names a policy
with no rules. Both render a question and a retrieved passage declared ``untrusted`` (so the
shipped policy's learned detector reads it, as it would on a RAG call). The passage is the
same in every call, or new in every call: the learned detector keeps the scores of texts it
read lately (a retrieved chunk comes back with many questions), so only a new one costs a
MiniLM pass:

* non-streamed calls to ``bench.stub_upstream`` (instant answers, its own process):
  latency p50/p99 and the gateway's CPU per call, in alternating rounds so that drift in
  the machine's load falls on both. The shipped policy's learned detector only flags, so it
  runs beside the upstream call: its CPU counts, its latency mostly does not (past one
  check per core in flight, calls wait for it, and an instant upstream makes that the
  common case here);
* streamed calls to the embedded ``local-smollm2``: time to the first content the client
  receives. The shipped policy guards the answer (secrets, exfiltration), so its stream
  holds back enough text to catch a key cut across chunks: that hold-back is what guarding
  the output adds to time to first token.

Run: ``.venv/bin/python -m bench.guard_path [--seconds 5] [--streams 6]``.
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
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.gateway_overhead import (
    Measured,
    bench_home,
    bench_key,
    percentile,
    serve,
    wait_ready,
)
from bench.loadgen import build_request, free_port
from seamline.providers.local_models import smollm2_gguf
from seamline.registry.loader import draft_from_mapping

PASSAGE = (
    "[kb-7] Refunds are issued to the original payment method within 14 days of the return "
    "being received. Items bought on sale can be exchanged but not refunded. "
) * 4
VARIABLES = {"question": "How long does a refund take?", "context": PASSAGE}
POLICIES = {"guarded": None, "open": "none"}  # prompt name -> the guard policy it names
# Passages that differ in one sentence: the learned detector has scored none of them before.
NEW_PASSAGES = 2_000


def _prompt(name: str, model: str, policy: str | None) -> dict[str, object]:
    spec: dict[str, object] = {
        "kind": "prompt",
        "name": name,
        "model": model,
        "parameters": {"temperature": 0, "max_tokens": 48},
        "variables": [{"name": "question"}, {"name": "context", "untrusted": True}],
        "messages": [
            {"role": "system", "content": "Answer from the passage only.\n\n{{ context }}"},
            {"role": "user", "content": "{{ question }}"},
        ],
    }
    if policy is not None:
        spec["guard_policy"] = policy
    return spec


@dataclass(frozen=True)
class Gateway:
    port: int
    pid: int
    key: str

    def body(self, prompt: str, *, stream: bool = False, passage: str = PASSAGE) -> bytes:
        variables = {**VARIABLES, "context": passage}
        return json.dumps(
            {"model": f"prompt:{prompt}@latest", "seamline": {"variables": variables},
             "stream": stream}
        ).encode()  # fmt: skip

    def request(self, prompt: str, passage: str = PASSAGE) -> bytes:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}
        body = self.body(prompt, passage=passage)
        return build_request("127.0.0.1", self.port, "POST", "/v1/chat/completions", headers, body)

    def requests(self, prompt: str) -> list[bytes]:
        """One call each with a passage never seen before (a ticket number makes it new)."""
        return [
            self.request(prompt, f"Ticket {i} was closed on day {i % 28 + 1}. {PASSAGE}")
            for i in range(NEW_PASSAGES)
        ]


def _prepare(home: Path, upstream_port: int) -> str:
    registry, author = bench_home(home, upstream_port, embedded_models=True)
    none = {"kind": "guard_policy", "name": "none", "rules": []}
    drafts = [draft_from_mapping(none, source="none.yaml")]
    for name, policy in POLICIES.items():
        drafts.append(draft_from_mapping(_prompt(name, "bench-model", policy), source=name))
        local = _prompt(f"{name}-local", "local-smollm2", policy)
        drafts.append(draft_from_mapping(local, source=f"{name}-local"))
    registry.push(author, drafts)
    key = bench_key(registry, author)
    registry.db.dispose()
    return key


@contextmanager
def running_gateway() -> Iterator[Gateway]:
    upstream_port, port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as folder:
        key = _prepare(Path(folder), upstream_port)
        stub = subprocess.Popen([sys.executable, "-m", "bench.stub_upstream", str(upstream_port)])
        gateway = serve(folder, port)
        try:
            wait_ready(f"http://127.0.0.1:{upstream_port}/")
            wait_ready(f"http://127.0.0.1:{port}/healthz")
            yield Gateway(port, gateway.pid, key)
        finally:
            for process in (gateway, stub):
                process.terminate()
                process.wait(30)


def first_content_ms(gateway: Gateway, prompt: str) -> float:
    """Seconds to the first non-empty content delta of a streamed call, in ms."""
    started = time.perf_counter()
    with httpx.stream(
        "POST",
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}"},
        content=gateway.body(prompt, stream=True),
        timeout=120,
    ) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    return (time.perf_counter() - started) * 1000
    raise SystemExit(f"{prompt}: the stream carried no content ({response.status_code})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per prompt, non-streamed")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds")
    parser.add_argument("--streams", type=int, default=6, help="streamed calls per prompt")
    args = parser.parse_args()
    with running_gateway() as gateway:
        report_calls(gateway, args.seconds, args.rounds)
        if smollm2_gguf() is None:
            print("time to first token: skipped (needs the [local] extra)")
        else:
            report_first_token(gateway, args.streams)


CASES = {  # what is measured: the prompt called, and whether each call's passage is new
    "shipped, same passage": ("guarded", False),
    "shipped, new passages": ("guarded", True),
    "no rules": ("open", False),
}


def report_calls(gateway: Gateway, seconds: float, rounds: int) -> None:
    measured = {case: Measured() for case in CASES}
    for name in POLICIES:  # warm up: the learned detector loads MiniLM on first use
        Measured().add(gateway.port, gateway.request(name), gateway.pid, 1, 1.0)
    calls = {
        case: gateway.requests(name) if new else gateway.request(name)
        for case, (name, new) in CASES.items()
    }
    for _ in range(rounds):
        for case, into in measured.items():
            into.add(gateway.port, calls[case], gateway.pid, 1, seconds / rounds)
            # rules running beside the last calls finish before the next round is measured
            time.sleep(0.5)
    print(
        f"guards on the gateway path ({os.cpu_count()} cores, one worker, SQLite, concurrency 1, "
        f"{seconds:g} s each; a {len(PASSAGE)}-char untrusted passage and a question)"
    )
    print(f"{'policy':<22} {'calls':>6} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/call':>11} errors")
    for case, into in measured.items():
        latencies = into.load.latencies_ms
        print(
            f"{case:<22} {into.load.requests:>6} {statistics.median(latencies):7.2f} "
            f"{percentile(latencies, 0.99):7.2f} {into.cpu_ms:11.3f} {into.load.errors}"
        )
    off = measured["no rules"]
    for case in ("shipped, same passage", "shipped, new passages"):
        on = measured[case]
        added = statistics.median(on.load.latencies_ms) - statistics.median(off.load.latencies_ms)
        print(
            f"{case}: the shipped policy adds {added:.2f} ms at p50 and "
            f"{on.cpu_ms - off.cpu_ms:.3f} ms of CPU per call "
            f"(ratio {on.cpu_ms / max(off.cpu_ms, 1e-9):.2f}x the CPU without guards)"
        )


def report_first_token(gateway: Gateway, streams: int) -> None:
    first_content_ms(gateway, "open-local")  # loads SmolLM2
    times: dict[str, list[float]] = {"guarded-local": [], "open-local": []}
    for _ in range(streams):
        for name, into in times.items():
            into.append(first_content_ms(gateway, name))
    on, off = statistics.median(times["guarded-local"]), statistics.median(times["open-local"])
    print(
        f"\ntime to first content, streamed local-smollm2 ({streams} calls each, medians): "
        f"shipped policy {on:.0f} ms, no rules {off:.0f} ms: output guards add {on - off:.0f} "
        f"ms ({on / max(off, 1e-9):.2f}x), the answer's hold-back for split secrets"
    )


if __name__ == "__main__":
    main()
