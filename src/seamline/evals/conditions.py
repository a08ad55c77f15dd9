"""The gate's conditions on a run: each says whether it held, by how much, and how sure.

* :func:`threshold` — a metric's mean against an absolute ``min`` or ``max`` (the prompt
  YAML's ``gate`` block). The decision is on the mean; the interval says whether the verdict
  is certain (the whole interval on one side) or could go the other way on another sample of
  cases.
* :func:`no_regression` — the candidate against its baseline on the same cases: it fails
  when the candidate is significantly worse (one-sided p below ``alpha``) *and* worse by
  more than ``tolerance``. Noise alone fails it at most ``alpha`` of the time.
* :func:`errors_within` — the share of errored cases against a cap: a run whose cases could
  not be scored fails closed rather than passing on the cases that could.
"""

from __future__ import annotations

from dataclasses import dataclass

from seamline.evals.stats import Comparison, Interval

ALPHA = 0.05
MAX_ERROR_SHARE = 0.05


@dataclass(frozen=True)
class ConditionResult:
    condition: str  # "faithfulness >= 0.88", "accuracy: no regression against production"
    passed: bool
    detail: str  # by how much, and how sure

    def as_record(self) -> dict[str, str | bool]:
        return {"condition": self.condition, "passed": self.passed, "detail": self.detail}


def threshold(
    metric: str, interval: Interval, *, minimum: float | None = None, maximum: float | None = None
) -> ConditionResult:
    if (minimum is None) == (maximum is None):
        raise ValueError("a threshold has exactly one of minimum and maximum")
    if minimum is not None:
        condition, passed = f"{metric} >= {minimum:g}", interval.estimate >= minimum
        margin = interval.estimate - minimum
        certain = interval.low >= minimum if passed else interval.high < minimum
    else:
        assert maximum is not None
        condition, passed = f"{metric} <= {maximum:g}", interval.estimate <= maximum
        margin = maximum - interval.estimate
        certain = interval.high <= maximum if passed else interval.low > maximum
    sureness = (
        "the whole interval agrees"
        if certain
        else "the interval crosses the threshold: another sample of cases could decide otherwise"
    )
    return ConditionResult(
        condition,
        passed,
        f"{_mean(interval)}, {abs(margin):.3f} {'inside' if passed else 'outside'} the "
        f"threshold; {sureness}",
    )


def no_regression(
    metric: str,
    comparison: Comparison,
    *,
    baseline: str,
    tolerance: float = 0.0,
    alpha: float = ALPHA,
) -> ConditionResult:
    difference = comparison.difference
    regressed = comparison.p_worse < alpha and difference.estimate < -tolerance
    condition = f"{metric}: no regression against {baseline}" + (
        f" beyond {tolerance:g}" if tolerance else ""
    )
    return ConditionResult(
        condition,
        not regressed,
        f"difference {_mean(difference)}; {comparison.worse} cases worse, "
        f"{comparison.better} better; p(worse) = {comparison.p_worse:.4f} "
        f"({comparison.test}, alpha {alpha:g})",
    )


def errors_within(
    errored: int, total: int, *, max_share: float = MAX_ERROR_SHARE
) -> ConditionResult:
    share = errored / total if total else 1.0
    return ConditionResult(
        f"errored cases <= {max_share:.0%}",
        share <= max_share,
        f"{errored} of {total} cases errored ({share:.1%})",
    )


def _mean(interval: Interval) -> str:
    return (
        f"{interval.estimate:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}] "
        f"({interval.confidence:.0%} CI, n={interval.n})"
    )


def calibrated(judge: str, kappa: Interval | None, *, minimum: float) -> ConditionResult:
    """A judge's measured agreement with human labels (``seamline evals calibrate``) against
    the minimum a gate asks of it; a judge never measured fails."""
    condition = f"judge {judge} agrees with labels: kappa >= {minimum:g}"
    if kappa is None:
        return ConditionResult(
            condition, False, f"never calibrated: run seamline evals calibrate --judge {judge}"
        )
    passed = kappa.estimate >= minimum
    certain = kappa.low >= minimum if passed else kappa.high < minimum
    return ConditionResult(
        condition,
        passed,
        f"kappa {kappa.estimate:.3f} [{kappa.low:.3f}, {kappa.high:.3f}] over {kappa.n} items; "
        + ("the whole interval agrees" if certain else "the interval crosses the minimum"),
    )
