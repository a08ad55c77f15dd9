"""Where the gateway's CPU goes: ``seamline serve`` (or, with ``--server bare``, the bare
floor, for comparison under the same rules) under the load of ``gateway_overhead``, broken
down by thread and, with py-spy, by stage of the request path.

Two phases against the same server (set up exactly as in ``bench/gateway_overhead.py``):

1. the load alone: CPU per request of the whole process and of each of its threads
   (``/proc/PID/task/*/stat``), the figure the stages below are scaled to;
2. the load with ``py-spy record`` sampling every thread of the server (not pausing it), its
   stacks then attributed to stages: each sample goes to the innermost frame that a rule in
   ``STAGES`` names (so a hash inside the registry view counts as the registry view, the
   aiohttp parser called back by the event loop as the upstream client).

py-spy is not a dependency: install it anywhere (``pip install --target /tmp/pyspy py-spy``)
and pass ``--py-spy /tmp/pyspy/bin/py-spy``; without it only phase 1 runs. Run:
``.venv/bin/python -m bench.profile_gateway [--server bare] [--stream] [--concurrency 16]
[--seconds 10] [--py-spy PATH]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench.gateway_overhead import running_servers
from bench.loadgen import run_load

# (stage, pattern on "function (file:line)"), tried on each frame from the innermost out;
# the first frame that matches a rule names the sample's stage. Order matters only within one
# frame: more specific rules first.
STAGES: list[tuple[str, str]] = [
    ("access log (uvicorn.access, logging)", r"\(logging/|uvicorn/logging\.py"),
    ("event writer: rows from events", r"telemetry/writer\.py"),
    ("event writer: SQLAlchemy + sqlite3 insert", r"sqlalchemy/|sqlite3|json/"),
    ("metrics (prometheus_client)", r"gateway/metrics\.py|prometheus_client/"),
    ("event: ids, build, finish, content policy", r"telemetry/(event|otel)\.py|secrets\.py"),
    ("guards (policy rules, detectors, stream scan)", r"seamline/guards/|stages/guard\.py"),
    ("auth + registry view + change probe", r"stages/registry_view\.py|stores/changes\.py"),
    ("prompt render (jinja2)", r"registry/(prompt|templating)\.py|jinja2/"),
    ("parse + params check", r"stages/(request|params)\.py"),
    ("limits", r"stores/limits"),
    ("budgets (reserve, settle, token count)", r"stores/budgets\.py|telemetry/tokens\.py"),
    ("router (retries, breaker)", r"stages/router\.py"),
    ("tiers/calls/catalog", r"stages/(tiers|calls)\.py|gateway/catalog\.py"),
    ("upstream client (aiohttp + provider)", r"aiohttp/|yarl/|multidict/|providers/"),
    ("chat.py own lines (JSON dumps/loads, dicts)", r"gateway/chat\.py"),
    ("bare floor's own app code", r"bench/bare_passthrough\.py"),
    ("ASGI plumbing (app, server/http.py)", r"gateway/app\.py|gateway/server/"),
    ("uvicorn + httptools protocol", r"uvicorn/"),
    ("event loop (uvloop: I/O, callbacks)", r"asyncio/|uvloop|threading\.py"),
]
# Samples py-spy takes of a thread blocked in C without the GIL (the writer waiting on its
# queue): not CPU time, so left out before scaling the thread's samples to its CPU.
IDLE = re.compile(r"^EventWriter\._collect \(")
THREAD = re.compile(r"^thread \((\d+)\)")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        totals[task.name] = (int(fields[11]) + int(fields[12])) / tick
    return totals


def stage_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for stage, pattern in STAGES:
            if re.search(pattern, frame):
                return stage
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="profile streamed calls")
    parser.add_argument(
        "--server",
        choices=["seamline", "bare"],
        default="seamline",
        help="bare: profile the floor (bench/bare_passthrough.py) under the same rules",
    )
    parser.add_argument("--py-spy", dest="py_spy", help="path to the py-spy executable")
    parser.add_argument("--top", type=int, default=25, help="self-time lines to list")
    parser.add_argument("--raw", help="keep py-spy's raw stacks in this file")
    parser.add_argument(
        "--gil",
        action="store_true",
        help="sample only the thread holding the GIL (leaves out time spent waiting for it)",
    )
    args = parser.parse_args()

    with running_servers() as servers:
        if args.server == "bare":
            pid, port = servers.bare_pid, servers.bare_port
            body = servers.direct_body(args.stream)
        else:
            pid, port = servers.gateway_pid, servers.gateway_port
            body = servers.gateway_body(args.stream)
        with tempfile.TemporaryDirectory() as folder:
            profile(args, pid, port, servers.request(port, body), folder)


def profile(args: argparse.Namespace, pid: int, port: int, request: bytes, folder: str) -> None:
    load = {"concurrency": args.concurrency, "seconds": args.seconds}
    warm_up = min(2.0, args.seconds)
    run_load("127.0.0.1", port, request, concurrency=args.concurrency, seconds=warm_up)
    before = thread_cpu(pid)
    result = run_load(
        "127.0.0.1", port, request, concurrency=args.concurrency, seconds=args.seconds
    )
    after = thread_cpu(pid)
    served = max(result.requests, 1)
    per_thread = {
        tid: (after[tid] - before.get(tid, 0.0)) * 1000 / served
        for tid in after
        if after[tid] > before.get(tid, 0.0)
    }
    total_ms = sum(per_thread.values())
    mode = "streamed" if args.stream else "non-streamed"
    server = "seamline serve" if args.server == "seamline" else "bare floor"
    print(
        f"{server}, {mode}, concurrency {args.concurrency}, {args.seconds:g} s: "
        f"{result.per_second:.0f} req/s, {result.errors} errors, "
        f"{total_ms:.3f} ms CPU per request"
    )
    for tid, ms in sorted(per_thread.items(), key=lambda item: -item[1]):
        name = "main (event loop)" if tid == str(pid) else f"thread {tid}"
        print(f"  {name:24} {ms:7.3f} ms/req  {100 * ms / total_ms:5.1f} %")
    if not args.py_spy:
        return

    samples_file = Path(args.raw or Path(folder) / "samples.txt")
    spy = subprocess.Popen(
        [
            *(args.py_spy, "record", "--pid", str(pid), "--duration", str(int(args.seconds))),
            *("--rate", "500", "--nonblocking", "--threads", "--format", "raw"),
            *("--output", str(samples_file)),
            *(("--gil",) if args.gil else ()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    loader = threading.Thread(target=run_load, args=("127.0.0.1", port, request), kwargs=load)
    loader.start()
    spy.wait()
    loader.join()
    report_samples(samples_file.read_text(), per_thread, str(pid), args.top)


def report_samples(raw: str, per_thread: dict[str, float], main_tid: str, top: int) -> None:
    """Each thread's samples scaled to its CPU per request (phase 1), then summed by stage."""
    stacks: dict[str, Counter[str]] = {}  # thread id -> stage -> samples
    names: dict[str, str] = {}
    lines: Counter[str] = Counter()  # the main thread's innermost frames
    for entry in raw.splitlines():
        stack_text, _, count_text = entry.rpartition(" ")
        thread = THREAD.match(stack_text)
        if thread is None:
            continue
        stack = stack_text.split(";")
        if IDLE.match(stack[-1]):
            continue
        tid = thread.group(1)
        names[tid] = stack[0].partition(": ")[2]
        stacks.setdefault(tid, Counter())[stage_of(stack[1:])] += int(count_text)
        if tid == main_tid:
            lines[stack[-1]] += int(count_text)
    main_samples = sum(stacks.get(main_tid, Counter()).values()) or 1
    ms_per_sample = per_thread.get(main_tid, 0.0) / main_samples
    stages: dict[str, float] = {}
    print("\nthreads sampled (CPU per request from /proc; by samples where /proc had none):")
    for tid, counted in stacks.items():
        samples = sum(counted.values())
        thread_ms = per_thread.get(tid, samples * ms_per_sample)
        print(f"  {names[tid] or tid:24} {samples:6d} samples  {thread_ms:7.3f} ms/req")
        for stage, count in counted.items():
            stages[stage] = stages.get(stage, 0.0) + thread_ms * count / samples
    total_ms = sum(stages.values())
    print(f"\nby stage (ms/req; of {total_ms:.3f} ms):")
    for stage, ms in sorted(stages.items(), key=lambda item: -item[1]):
        print(f"  {stage:46} {ms:6.3f} ms/req  {100 * ms / total_ms:5.1f} %")
    print(f"\ntop {top} lines by own samples, event loop thread:")
    for line, count in lines.most_common(top):
        print(f"  {100 * count / main_samples:5.1f} %  {count * ms_per_sample:6.3f} ms  {line}")


if __name__ == "__main__":
    main()
