"""Statistics that tell a change from noise: intervals on every metric, paired comparisons.

An eval metric is a mean over cases, and a mean over 40 or 200 cases moves by several points
from run to run for no reason but which cases were hard. So every mean comes with a
bootstrap 95% interval (:func:`mean_interval`), and a candidate is compared with its
baseline *on the same cases* (:func:`compare_paired`): per case, candidate minus baseline.
Pairing removes the cases' own difficulty from the comparison, which is what lets 200 cases
see a 3-point change that two independent means could not.

* The interval of a mean is the percentile bootstrap: resample the cases with replacement,
  take each resample's mean, keep the middle 95%.
* The interval of a paired difference is the same over the per-case differences.
* The p-value of binary scores (pass or fail) is McNemar's exact test with the mid-p
  correction: only the cases where the two disagree carry information, and under "no
  difference" each disagreement is a fair coin. Of other scores it is a paired permutation
  (sign-flip) test on the mean difference. Both are reported two-sided (``p_value``) and
  one-sided towards "the candidate is worse" (``p_worse``): the release gate asks only
  whether a change made things worse.

Resampling is seeded: the same scores give the same interval and p-value every time (a
re-run of an eval from its cache must report identical numbers).

Written with numpy rather than scipy: scipy is not a dependency, and the three procedures
are a few vectorised lines each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 20261129
# Resamples drawn at once: bounds memory to CHUNK x cases indices.
_CHUNK = 1_000


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap interval."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def as_record(self) -> dict[str, float | int]:
        return {
            "estimate": round(self.estimate, 6),
            "low": round(self.low, 6),
            "high": round(self.high, 6),
            "n": self.n,
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class Comparison:
    """Candidate against baseline on the same cases."""

    difference: Interval  # mean of candidate - baseline, with its paired bootstrap interval
    p_value: float  # two-sided: any difference
    p_worse: float  # one-sided: the candidate is worse (its mean is lower)
    test: str  # "McNemar mid-p" or "paired permutation"
    better: int  # cases where the candidate scored higher
    worse: int  # cases where it scored lower


def mean_interval(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """The mean of ``values`` with its percentile-bootstrap interval. ValueError when there
    are none, or a value is not a finite number (an errored case is counted apart, never
    averaged in as a NaN)."""
    data = _finite(values)
    means = _bootstrap_means(data, resamples, seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(data.mean()), float(low), float(high), len(data), confidence)


def compare_paired(
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Comparison:
    """``candidate`` against ``baseline``, case by case (the same cases in the same order)."""
    ours, theirs = _finite(candidate), _finite(baseline)
    if len(ours) != len(theirs):
        raise ValueError(f"paired scores need the same cases: {len(ours)} against {len(theirs)}")
    differences = ours - theirs
    interval = mean_interval(differences, confidence=confidence, resamples=resamples, seed=seed)
    better, worse = int((differences > 0).sum()), int((differences < 0).sum())
    if _binary(ours) and _binary(theirs):
        p_value, p_worse = _mcnemar(better, worse)
        test = "McNemar mid-p"
    else:
        p_value, p_worse = _sign_flip(differences, resamples, seed)
        test = "paired permutation"
    return Comparison(interval, p_value, p_worse, test, better, worse)


@dataclass(frozen=True)
class GroupComparison:
    """Two independent groups (a canary's calls and the control's): not the same cases."""

    difference: Interval  # candidate mean - baseline mean, with its bootstrap interval
    p_value: float  # two-sided permutation test on the difference of means
    p_worse: float  # one-sided: the candidate's mean is lower
    candidate: int
    baseline: int


def compare_groups(
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> GroupComparison:
    """``candidate`` against ``baseline`` when they are different cases (live traffic split
    between two arms): the difference of their means, each group resampled on its own for
    the interval, the labels shuffled for the p-value."""
    ours, theirs = _finite(candidate), _finite(baseline)
    spread = _bootstrap_means(ours, resamples, seed) - _bootstrap_means(theirs, resamples, seed + 1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(spread, [tail, 1 - tail])
    observed = float(ours.mean() - theirs.mean())
    pooled = np.concatenate([ours, theirs])
    rng = np.random.default_rng(seed)
    extreme = lower = 0
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        shuffled = np.argsort(rng.random((size, len(pooled))), axis=1)
        first = pooled[shuffled[:, : len(ours)]].mean(axis=1)
        second = pooled[shuffled[:, len(ours) :]].mean(axis=1)
        differences = first - second
        extreme += int((np.abs(differences) >= abs(observed) - 1e-12).sum())
        lower += int((differences <= observed + 1e-12).sum())
    return GroupComparison(
        Interval(observed, float(low), float(high), len(ours) + len(theirs), confidence),
        (extreme + 1) / (resamples + 1),
        (lower + 1) / (resamples + 1),
        len(ours),
        len(theirs),
    )


def _finite(values: Sequence[float]) -> np.ndarray:
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or len(data) == 0:
        raise ValueError("statistics need at least one score")
    if not np.isfinite(data).all():
        raise ValueError("a score is not a finite number: count errored cases apart")
    return data


def _bootstrap_means(data: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        picks = rng.integers(0, len(data), size=(size, len(data)))
        out[start : start + size] = data[picks].mean(axis=1)
    return out


def _binary(data: np.ndarray) -> bool:
    return bool(np.isin(data, (0.0, 1.0)).all())


def _mcnemar(better: int, worse: int) -> tuple[float, float]:
    """McNemar's test, exact and with the mid-p correction: of the ``better + worse``
    discordant cases, how surprising is a split this uneven if each were a fair coin.
    Returns (two-sided, one-sided towards worse).

    The mid-p counts the observed split at half weight: the plain exact test is conservative
    on the few discordant cases a temperature-0 run leaves (one case gone the other way can
    double its p-value), and the mid-p keeps the false-positive rate near its nominal level
    (Fagerland, Lydersen and Laake, BMC Medical Research Methodology 2013, recommend it)."""
    n = better + worse
    if n == 0:
        return 1.0, 1.0

    def below(k: int) -> float:  # P(X < k) + P(X = k) / 2, X ~ Binomial(n, 1/2), exactly
        return (sum(math.comb(n, i) for i in range(k)) + math.comb(n, k) / 2) / (1 << n)

    two_sided = min(1.0, 2 * below(min(better, worse)))
    return two_sided, below(better)  # few cases better than worse: the candidate is worse


def _sign_flip(differences: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """Paired permutation test: under "no difference" each case's difference is as likely
    to have had the other sign. Monte Carlo over sign flips, with the observed assignment
    counted among them (so p is never 0)."""
    observed = differences.mean()
    rng = np.random.default_rng(seed)
    extreme = lower = 0
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        signs = rng.choice((-1.0, 1.0), size=(size, len(differences)))
        means = (signs * differences).mean(axis=1)
        # a small tolerance: flipped sums equal to the observed one up to rounding count
        extreme += int((np.abs(means) >= abs(observed) - 1e-12).sum())
        lower += int((means <= observed + 1e-12).sum())
    return (extreme + 1) / (resamples + 1), (lower + 1) / (resamples + 1)
