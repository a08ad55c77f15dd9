"""Does the gate tell a regression from noise? Simulated runs, decided by seamline's paired
test and, as the baseline in the same run, by the unpaired comparison of two means that a
threshold-on-the-mean tool amounts to.

Each simulated run scores 200 cases pass/fail (temperature 0: a case's outcome is fixed for a
given prompt version). The baseline passes each case with probability 0.85. The candidate
keeps the baseline's outcomes except for:

* churn: each case's outcome flips with probability ``r`` (failing cases a little more
  often, so that as many pass as fail on average: a change of wording moves some answers
  both ways, and the mean does not move);
* regression: 6 more passing cases now fail, 3 points of pass rate.

"Noise" is churn alone; "regression" is churn plus the regression. Over ``--runs`` runs per
churn rate, it prints the share of regressions the gate catches and the share of noise runs
it lets through, for seamline's gate (exact McNemar, one-sided, alpha 0.05) and for the
unpaired baseline (a one-sided two-proportion z-test at the same alpha), with the ratio of
their catch rates. The issue's target: at least 95% caught and 95% of noise passed.

Then the runner, for real: an eval set run through an in-process gateway, first on
``bench/stub_upstream.py`` (an upstream that answers at once, so the figure is what the
harness itself costs per case) and then on the embedded SmolLM2 (warmed first, so loading is
not counted), each at concurrency 8; then each again, every answer now kept. It prints cases
per second cold and cached and their ratio, measured in the same run. The issue's target: a
cached re-run at least 50x faster than the cold run (of a real model).

Run: ``.venv/bin/python -m bench.evals [--runs 500] [--cases 200] [--local-cases 16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.gateway_overhead import bench_home, wait_ready
from bench.loadgen import free_port
from seamline.core.settings import Settings
from seamline.evals.conditions import ALPHA, no_regression
from seamline.evals.evaluation import Evaluation, RunRequest
from seamline.evals.stats import compare_paired
from seamline.gateway.chat import EvalModelCall
from seamline.gateway.core import Gateway
from seamline.registry import Actor, Registry
from seamline.registry.loader import draft_from_mapping

CASES = 200
PASS_RATE = 0.85
REGRESSION = 6  # cases: 3 points of 200
CHURN = (0.0, 0.005, 0.01, 0.02, 0.05)
TARGET = 0.95
RESAMPLES = 200  # for the difference's interval only: the test itself is exact


def simulate(rng: random.Random, churn: float, regression: int) -> tuple[list[float], list[float]]:
    baseline = [1.0 if rng.random() < PASS_RATE else 0.0 for _ in range(CASES)]
    passing = [i for i, v in enumerate(baseline) if v == 1.0]
    failing = [i for i, v in enumerate(baseline) if v == 0.0]
    up = min(1.0, churn * len(passing) / max(len(failing), 1))  # as many up as down, on average
    candidate = [(1.0 - v) if rng.random() < (churn if v == 1.0 else up) else v for v in baseline]
    still_passing = [i for i in passing if candidate[i] == 1.0]
    for i in rng.sample(still_passing, min(regression, len(still_passing))):
        candidate[i] = 0.0
    return candidate, baseline


def gate_passes(candidate: list[float], baseline: list[float]) -> bool:
    comparison = compare_paired(candidate, baseline, resamples=RESAMPLES)
    return no_regression("pass rate", comparison, baseline="production").passed


def unpaired_passes(candidate: list[float], baseline: list[float]) -> bool:
    """Two independent proportions, one-sided z-test: what comparing two means amounts to."""
    n = len(candidate)
    p1, p0 = sum(candidate) / n, sum(baseline) / n
    pooled = (p1 + p0) / 2
    se = math.sqrt(2 * pooled * (1 - pooled) / n) or 1e-12
    z = (p1 - p0) / se
    p_worse = 0.5 * math.erfc(-z / math.sqrt(2))
    return not (p_worse < ALPHA and p1 < p0)


def push_definitions(registry: Registry, author: Actor, model: str, cases: int) -> str:
    """A prompt on ``model`` and an eval set of ``cases`` distinct questions; its ref."""
    name = f"bench-{model}"
    prompt = {
        "name": name,
        "model": model,
        "messages": [
            {"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "Question {{ n }}: what is six times seven?"},
        ],
        "variables": [{"name": "n", "type": "integer"}],
        "parameters": {"temperature": 0, "max_tokens": 16},
        "eval_set": name,
    }
    eval_set = {
        "kind": "eval_set",
        "name": name,
        "scorers": [{"name": "contains"}, {"name": "length", "max_words": 40}],
        "cases": [
            {"id": f"q{n}", "variables": {"n": n}, "criteria": {"contains": {"value": "42"}}}
            for n in range(cases)
        ],
    }
    drafts = [draft_from_mapping(d, source=f"{name}.yaml") for d in (prompt, eval_set)]
    registry.push(author, drafts)
    return f"{name}@1"


async def timed_runs(
    settings: Settings, registry: Registry, author: Actor, prompt: str, warm: str | None
) -> tuple[float, float]:
    """Seconds of the cold run and of the cached re-run of ``prompt``, at concurrency 8,
    after one call to the model ``warm`` (loading it) when given."""
    gateway = Gateway(settings, registry)
    await gateway.start()
    try:
        call = EvalModelCall(gateway, author)
        if warm is not None:
            hello = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
            await call(warm, hello, use_case="bench")
        evaluation = Evaluation(registry, author, call)
        request = RunRequest(prompt=prompt, against=None, concurrency=8)
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            outcome = await evaluation.run(request)
            timings.append(time.perf_counter() - started)
            errored = [r for r in outcome.cases.values() if r.error]
            if errored:
                raise SystemExit(f"{prompt}: {len(errored)} cases errored: {errored[0].error}")
        return timings[0], timings[1]
    finally:
        await gateway.stop()


def runner_figures(cases: int, local_cases: int) -> None:
    port = free_port()
    stub = subprocess.Popen([sys.executable, "-m", "bench.stub_upstream", str(port)])
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models")
        with tempfile.TemporaryDirectory() as home:
            registry, author = bench_home(Path(home), port, embedded_models=local_cases > 0)
            os.environ["SEAMLINE_HOME"] = home  # where Settings finds the home's seamline.toml
            os.environ.pop("SEAMLINE_DATABASE_URL", None)
            settings = Settings()
            print(
                f"\n{'runner, concurrency 8':>22} | {'cases':>5} | {'cold s':>7} {'cases/s':>8} | "
                f"{'cached s':>8} {'cases/s':>8} | {'cached speed-up':>15}"
            )
            models = [("bench-model", cases)] + (
                [("local-smollm2", local_cases)] if local_cases else []
            )
            for model, count in models:
                prompt = push_definitions(registry, author, model, count)
                cold, cached = asyncio.run(
                    timed_runs(
                        settings,
                        registry,
                        author,
                        prompt,
                        warm=None if model == "bench-model" else model,
                    )
                )
                label = "stub upstream" if model == "bench-model" else "embedded SmolLM2"
                print(
                    f"{label:>22} | {count:>5} | {cold:>7.2f} {count / cold:>8.1f} | "
                    f"{cached:>8.3f} {count / cached:>8.1f} | {cold / cached:>14.1f}x"
                )
    finally:
        stub.terminate()
        stub.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="simulated runs per cell")
    parser.add_argument("--cases", type=int, default=200, help="cases run on the stub")
    parser.add_argument(
        "--local-cases", type=int, default=16, help="cases run on the embedded model (0: none)"
    )
    args = parser.parse_args()
    print(
        f"gate on {CASES} pass/fail cases, baseline pass rate {PASS_RATE}, regression "
        f"{REGRESSION} cases ({REGRESSION / CASES:.0%}), {args.runs} simulated runs per cell; "
        f"target: caught >= {TARGET:.0%} and noise passed >= {TARGET:.0%}"
    )
    print(
        f"{'churn rate':>14} | {'seamline caught':>15} {'noise passed':>12} | "
        f"{'unpaired caught':>15} {'noise passed':>12} | {'catch ratio':>11} | {'ms/run':>6}"
    )
    for churn in CHURN:
        rng = random.Random(int(churn * 10_000))
        caught = passed = caught_unpaired = passed_unpaired = 0
        started = time.perf_counter()
        for _ in range(args.runs):
            regressed = simulate(rng, churn, REGRESSION)
            noise = simulate(rng, churn, 0)
            caught += not gate_passes(*regressed)
            passed += gate_passes(*noise)
            caught_unpaired += not unpaired_passes(*regressed)
            passed_unpaired += unpaired_passes(*noise)
        ms = (time.perf_counter() - started) * 1000 / (2 * args.runs)
        ratio = caught / caught_unpaired if caught_unpaired else float("inf")
        print(
            f"{churn:>14.1%} | {caught / args.runs:>15.1%} {passed / args.runs:>12.1%} | "
            f"{caught_unpaired / args.runs:>15.1%} {passed_unpaired / args.runs:>12.1%} | "
            f"{ratio:>10.1f}x | {ms:>6.2f}"
        )
    runner_figures(args.cases, args.local_cases)


if __name__ == "__main__":
    main()
