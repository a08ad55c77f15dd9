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

Run: ``.venv/bin/python -m bench.evals [--runs 500]``.
"""

from __future__ import annotations

import argparse
import math
import random
import time

from seamline.evals.conditions import ALPHA, no_regression
from seamline.evals.stats import compare_paired

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="simulated runs per cell")
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


if __name__ == "__main__":
    main()
