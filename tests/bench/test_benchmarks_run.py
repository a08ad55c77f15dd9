"""The benchmarks still run end to end (briefly): a refactor must not leave them broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ("round-robin", "least-busy", "load-aware")


def _run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLINE_")}
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_gateway_overhead_benchmark_runs() -> None:
    out = _run("bench.gateway_overhead", "--seconds", "0.3", "--concurrency", "2")
    rows = [line for line in out.splitlines() if line.startswith(("non-streamed", "streamed"))]
    assert len(rows) == 2
    assert all(line.rstrip().endswith("| 0") for line in rows)  # no errors in any cell
    # seamline's CPU per request against the bare floor's, measured in the same run
    assert "bare CPU ms/req" in out and "CPU ratio" in out
    assert all(line.split("|")[-2].strip().endswith("x") for line in rows)


def test_gateway_profile_runs_without_py_spy() -> None:
    out = _run("bench.profile_gateway", "--seconds", "0.5", "--concurrency", "2")
    assert "0 errors" in out and "main (event loop)" in out


def test_registry_benchmark_runs() -> None:
    out = _run("bench.registry", "--seconds", "0.3", "--calls", "20")
    assert "ratio HTTP / local" in out and "errors 0" in out


def test_event_writer_benchmark_runs() -> None:
    out = _run("bench.event_writer", "--events", "300", "--rounds", "1")
    assert "x baseline" in out and "EventWriter" in out


def test_guard_benchmarks_run() -> None:
    rules = _run("bench.guard_rules", "--messages", "20", "--rounds", "1")
    assert "ratio p50" in rules and "flagged at 0.8" in rules
    pii = _run("bench.guard_pii", "--messages", "20")
    assert "str.lower (floor)" in pii and "findings:" in pii


def test_guard_path_benchmark_runs() -> None:
    out = _run("bench.guard_path", "--seconds", "0.4", "--rounds", "1", "--streams", "1")
    rows = [
        line
        for line in out.splitlines()
        if line.startswith(("shipped", "no rules")) and "adds" not in line
    ]
    assert len(rows) == 3 and all(line.rstrip().endswith(" 0") for line in rows)  # no errors
    assert out.count("the shipped policy adds") == 2 and "x the CPU without guards" in out
    assert "time to first content" in out  # CI installs [local]: the streamed part runs too


def test_evals_gate_benchmark_runs() -> None:
    out = _run("bench.evals", "--runs", "20", "--cases", "20", "--local-cases", "2")
    rows = [line for line in out.splitlines() if line.strip().endswith(tuple("0123456789"))]
    assert len(rows) == 5 and "seamline caught" in out and "unpaired caught" in out
    assert rows[0].split("|")[1].split() == ["100.0%", "100.0%"]  # no churn: every one caught
    # the runner, cold and cached, on the stub and on the embedded model
    runs = [line for line in out.splitlines() if line.rstrip().endswith("x") and "|" in line]
    assert [line.split("|")[0].strip() for line in runs[-2:]] == [
        "stub upstream",
        "embedded SmolLM2",
    ]


def test_retrieval_benchmark_runs() -> None:
    out = _run("bench.retrieval", "--sizes", "500", "--queries", "20", "--embed-sample", "2")
    rows = {
        cells[1].strip(): cells
        for cells in (line.split("|") for line in out.splitlines())
        if cells[0].strip() == "500"
    }
    assert set(rows) == {
        "sqlite (seamline)",
        "sqlite-vec MATCH",
        "pgvector HNSW ef 100",
        "pgvector HNSW ef 1000",
    }
    # exact search: recall@10 against brute force; HNSW on 500 chunks finds them all too
    assert rows["sqlite (seamline)"][4].split()[2] == "1.000"
    assert float(rows["pgvector HNSW ef 1000"][4].split()[2]) >= 0.95
    assert "MATCH p50 / seamline p50: " in out and "chunks/s in all" in out


def test_rag_attribution_benchmark_runs() -> None:
    out = _run("bench.rag_attribution")
    kinds = ["retrieval", "freshness", "integration", "unknown", "ok"]
    lines = out.splitlines()
    assert kinds in [line.split() for line in lines]  # the columns
    rows = [line.split() for line in lines if line.split()[:1] in ([k] for k in kinds)]
    rows = [row for row in rows if row != kinds]
    # every constructed call attributed once: 12 passages, five calls each
    assert sum(int(cell) for row in rows for cell in row[1:]) == 60
    assert "baseline (best retriever score only)" in out and out.rstrip().endswith("x")


def test_monitoring_benchmark_runs() -> None:
    out = _run("bench.monitoring", "--trials", "3", "--window", "100", "--shifts", "0.05")
    rows = [line.split("|") for line in out.splitlines() if line.strip().endswith("x")]
    assert [row[0].strip() for row in rows] == ["5%", "10%"]  # a row per shift
    assert all(len(row[1].split()) == 2 for row in rows)  # power and A/A alarms, both methods
    assert "one test of two 100-call windows" in out


def test_rollups_benchmark_runs() -> None:
    out = _run("bench.rollups", "--events", "300")
    rows = [line.split("|") for line in out.splitlines() if line.rstrip().endswith("x")]
    assert {row[0].strip() for row in rows} == {"sqlite", "postgresql"}
    assert all(int(row[1]) == 300 and float(row[2]) > 0 for row in rows)


def test_dashboard_benchmark_runs() -> None:
    out = _run("bench.dashboard", "--events", "2000", "--rounds", "1")
    rows = [line.split("|") for line in out.splitlines() if line.rstrip().endswith("x")]
    assert [row[0].strip() for row in rows] == [
        "overview 24h",
        "overview 7d",
        "traces, first page",
        "traces, errors of one model",
        "a call's page",
    ]
    assert all(float(row[1]) > 0 and float(row[2]) > 0 for row in rows)


def test_routing_benchmark_runs() -> None:
    out = _run("bench.routing", "--seconds", "1.5", "--burst-rate", "20")
    rows = [line for line in out.splitlines() if "TTFT p50" in line]
    assert [row.split()[0] for row in rows] == list(STRATEGIES)
    assert all(row.rstrip().endswith("failed 0") for row in rows)
    assert out.count("load-aware vs") == 2 and "prometheus_client" in out
    assert "added per routed call" in out
