"""The statistics behind the gate: intervals that narrow with more cases and cover the truth,
paired tests with the exact p-values a hand computation gives, identical numbers on a re-run,
and conditions that fail a real regression but not noise of the same mean."""

from __future__ import annotations

import random

import numpy as np
import pytest

from seamline.evals.conditions import errors_within, no_regression, threshold
from seamline.evals.stats import compare_paired, mean_interval


def _passes(n: int, rate: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [1.0 if rng.random() < rate else 0.0 for _ in range(n)]


def test_the_interval_of_a_metric_narrows_as_cases_grow() -> None:
    widths = []
    for n in (40, 200, 1000):
        interval = mean_interval(_passes(n, 0.85, seed=n))
        assert interval.low <= interval.estimate <= interval.high and interval.n == n
        widths.append(interval.high - interval.low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] > 2 * widths[2]


def test_a_95_percent_interval_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    intervals = [mean_interval(_passes(100, 0.8, seed=s), resamples=2000) for s in range(200)]
    covered = sum(interval.low <= 0.8 <= interval.high for interval in intervals)
    assert 0.88 <= covered / 200 <= 0.99


def test_the_same_scores_give_identical_numbers() -> None:
    scores = [0.2, 0.9, 0.4, 0.7, 1.0, 0.3]
    assert mean_interval(scores) == mean_interval(list(scores))
    assert compare_paired(scores, scores[::-1]) == compare_paired(scores, scores[::-1])
    assert mean_interval([1.0] * 5).as_record() == {
        "estimate": 1.0, "low": 1.0, "high": 1.0, "n": 5, "confidence": 0.95,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("values", "message"),
    [([], "at least one"), ([0.5, float("nan")], "not a finite"), ([[1.0]], "at least one")],
)
def test_no_interval_over_missing_or_undefined_scores(values: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mean_interval(values)


def test_paired_scores_must_cover_the_same_cases() -> None:
    with pytest.raises(ValueError, match="same cases"):
        compare_paired([1.0, 0.0], [1.0])


def test_binary_scores_get_mcnemars_mid_p_value() -> None:
    baseline = [1.0] * 190 + [0.0] * 10
    candidate = list(baseline)
    for i in range(6):  # six passing cases now fail, nothing else changes
        candidate[i] = 0.0
    result = compare_paired(candidate, baseline)
    assert result.test == "McNemar mid-p" and (result.better, result.worse) == (0, 6)
    # all six discordant cases went one way: P(X < 0) + P(X = 0) / 2 with X ~ B(6, 1/2)
    assert result.p_worse == pytest.approx(0.5 / 64)
    assert result.p_value == pytest.approx(1 / 64)
    assert result.difference.estimate == pytest.approx(-0.03)
    assert result.difference.high < 0
    # two better, six worse: P(X < 2) + P(X = 2) / 2 with X ~ B(8, 1/2) = (1 + 8 + 14) / 256
    candidate[190], candidate[191] = 1.0, 1.0
    assert compare_paired(candidate, baseline).p_worse == pytest.approx(23 / 256)
    same = compare_paired(baseline, baseline)
    assert (same.p_value, same.p_worse, same.difference.estimate) == (1.0, 1.0, 0.0)


def test_other_scores_get_a_paired_permutation_test() -> None:
    rng = np.random.default_rng(3)
    baseline = rng.uniform(0.3, 0.9, 60)
    shifted = baseline - 0.05 + rng.normal(0, 0.02, 60)
    worse = compare_paired(list(shifted), list(baseline))
    assert worse.test == "paired permutation"
    assert worse.p_worse < 0.001 and worse.p_value < 0.001
    assert worse.difference.high < 0 < 1 - worse.p_worse
    noise = baseline + rng.normal(0, 0.02, 60)
    assert compare_paired(list(noise), list(baseline)).p_value > 0.05


def test_a_scripted_regression_fails_the_gate_and_noise_of_the_same_mean_does_not() -> None:
    baseline = [1.0] * 170 + [0.0] * 30
    regressed = [0.0] * 6 + [1.0] * 164 + [0.0] * 30  # 3 points worse
    churned = [0.0] * 3 + [1.0] * 167 + [1.0] * 3 + [0.0] * 27  # 3 flips each way: same mean
    failed = no_regression("accuracy", compare_paired(regressed, baseline), baseline="production")
    held = no_regression("accuracy", compare_paired(churned, baseline), baseline="production")
    assert not failed.passed and held.passed
    assert failed.condition == "accuracy: no regression against production"
    assert "6 cases worse, 0 better" in failed.detail and "McNemar mid-p" in failed.detail
    tolerant = no_regression(
        "accuracy", compare_paired(regressed, baseline), baseline="production", tolerance=0.05
    )
    assert tolerant.passed and "beyond 0.05" in tolerant.condition


def test_a_threshold_says_whether_the_whole_interval_agrees() -> None:
    clear = threshold("faithfulness", mean_interval([0.95] * 50), minimum=0.88)
    assert clear.passed and "the whole interval agrees" in clear.detail
    close = threshold("faithfulness", mean_interval(_passes(40, 0.9, seed=1)), minimum=0.88)
    assert "another sample of cases could decide otherwise" in close.detail
    over = threshold("latency_s", mean_interval([2.0, 2.2, 2.4]), maximum=1.5)
    assert not over.passed and over.condition == "latency_s <= 1.5"
    with pytest.raises(ValueError):
        threshold("x", mean_interval([1.0]))


def test_errored_cases_over_the_cap_fail_closed() -> None:
    assert errors_within(2, 100).passed
    capped = errors_within(6, 100)
    assert not capped.passed and capped.detail == "6 of 100 cases errored (6.0%)"
    assert not errors_within(0, 0).passed  # nothing scored is not a pass


def test_noise_fails_the_gate_at_most_about_alpha_of_the_time() -> None:
    # candidate and baseline differ only by random flips both ways (same mean on average)
    rng = random.Random(9)
    failures = 0
    for _ in range(400):
        baseline = _passes(200, 0.85, seed=rng.randrange(10**9))
        passing = sum(baseline)
        up = 0.03 * passing / (len(baseline) - passing)  # as many flips up as down, on average
        candidate = [1.0 - v if rng.random() < (0.03 if v else up) else v for v in baseline]
        comparison = compare_paired(candidate, baseline, resamples=100)
        failures += not no_regression("x", comparison, baseline="b").passed
    assert failures / 400 <= 0.08
