"""The gate report over scored cases: pairing by case id, errored cases counted apart, the
conditions in order, and bad score files named by line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seamline.core.errors import InvalidInput
from seamline.evals.report import gate_report, read_scores


def rows(values: list[float | None], metric: str = "accuracy") -> dict[str, dict[str, Any]]:
    return {
        f"c{i}": {"id": f"c{i}", "scores": {metric: v}}
        if v is not None
        else {"id": f"c{i}", "error": "judge answered nonsense"}
        for i, v in enumerate(values)
    }


def test_a_regression_fails_and_the_same_scores_pass() -> None:
    baseline = rows([1.0] * 170 + [0.0] * 30)
    regressed = rows([0.0] * 6 + [1.0] * 164 + [0.0] * 30)
    failed = gate_report(regressed, baseline, ["accuracy"], baseline_name="production")
    assert not failed.passed
    assert [c.passed for c in failed.conditions] == [False, True]  # regression, errors
    same = gate_report(baseline, baseline, ["accuracy"], minimums={"accuracy": 0.8})
    assert same.passed and [c.condition for c in same.conditions] == [
        "accuracy >= 0.8",
        "accuracy: no regression against baseline",
        "errored cases <= 5%",
    ]
    record = failed.as_record()
    assert record["passed"] is False and record["metrics"][0]["test"] == "McNemar mid-p"


def test_errored_cases_are_left_out_of_the_means_and_counted_against_the_cap() -> None:
    scored = rows([1.0] * 90 + [None] * 10)
    report = gate_report(scored, None, ["accuracy"])
    assert report.metrics[0].candidate.estimate == 1.0 and report.metrics[0].candidate.n == 90
    assert not report.passed and report.conditions[-1].detail == "10 of 100 cases errored (10.0%)"
    assert gate_report(scored, None, ["accuracy"], max_error_share=0.1).passed


def test_cases_pair_by_id_and_only_cases_scored_in_both_count() -> None:
    candidate = rows([1.0, 0.0, 1.0])
    baseline = {
        "c0": {"id": "c0", "scores": {"accuracy": 1}},
        "c2": {"id": "c2", "scores": {"accuracy": 0}},
    }
    [item] = gate_report(candidate, baseline, ["accuracy"]).metrics
    assert item.comparison is not None and item.comparison.difference.n == 2
    assert (item.comparison.better, item.comparison.worse) == (1, 0)


def test_a_metric_nobody_scored_is_a_usage_error() -> None:
    with pytest.raises(InvalidInput, match="no case has a score for 'recall'"):
        gate_report(rows([1.0]), None, ["recall"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "scores": {}}\n{oops\n', "line 2: not JSON"),
        ('{"scores": {}}\n', "line 1: a row needs a string 'id'"),
        ('{"id": "a"}\n{"id": "a"}\n', "appears twice"),
        ("\n", "no scored case"),
    ],
)
def test_a_bad_score_file_is_named_by_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=message):
        read_scores(path)
