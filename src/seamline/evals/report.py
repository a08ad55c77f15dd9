"""A gate report over scored cases: each metric's mean with its interval, the candidate
against its baseline case by case, and the conditions that decide the release.

Scores come as rows ``{"id": CASE, "scores": {METRIC: value}, "error": REASON?,
"metric_errors": {METRIC: REASON}?}``: what a run stores, and what a team with its own
harness can write (``seamline evals compare``). Cases are paired by id; an errored case (or
one missing a metric) is left out of that metric's comparison, and a case with any error,
of the whole case or of one scorer, counts against the errored-cases cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seamline.core.errors import InvalidInput
from seamline.core.jsonl import json_objects
from seamline.evals.conditions import (
    ConditionResult,
    errors_within,
    no_regression,
    threshold,
)
from seamline.evals.stats import Comparison, Interval, compare_paired, mean_interval

Row = Mapping[str, Any]


@dataclass(frozen=True)
class MetricReport:
    metric: str
    candidate: Interval
    baseline: Interval | None
    comparison: Comparison | None


@dataclass
class GateReport:
    metrics: list[MetricReport] = field(default_factory=list)
    conditions: list[ConditionResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.conditions)

    def as_record(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "conditions": [c.as_record() for c in self.conditions],
            "metrics": [
                {
                    "metric": m.metric,
                    "candidate": m.candidate.as_record(),
                    "baseline": m.baseline.as_record() if m.baseline else None,
                    "difference": m.comparison.difference.as_record() if m.comparison else None,
                    "p_worse": m.comparison.p_worse if m.comparison else None,
                    "test": m.comparison.test if m.comparison else None,
                }
                for m in self.metrics
            ],
        }


def read_scores(path: Path) -> dict[str, Row]:
    """Scored cases from a JSON Lines file, by case id; InvalidInput names a bad line."""
    rows: dict[str, Row] = {}
    for where, row in json_objects(path):
        if not isinstance(row.get("id"), str):
            raise InvalidInput(f"{where}: a row needs a string 'id'")
        if not isinstance(row.get("scores", {}), dict):
            raise InvalidInput(f"{where}: 'scores' must be an object")
        if row["id"] in rows:
            raise InvalidInput(f"{where}: case {row['id']!r} appears twice")
        rows[row["id"]] = row
    if not rows:
        raise InvalidInput(f"{path}: no scored case")
    return rows


def _value(row: Row | None, metric: str) -> float | None:
    if row is None or row.get("error"):
        return None
    value = (row.get("scores") or {}).get(metric)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def gate_report(
    candidate: Mapping[str, Row],
    baseline: Mapping[str, Row] | None,
    metrics: Sequence[str],
    *,
    baseline_name: str = "baseline",
    minimums: Mapping[str, float] | None = None,
    maximums: Mapping[str, float] | None = None,
    tolerance: float = 0.0,
    max_error_share: float = 0.05,
) -> GateReport:
    """The report on ``metrics``: thresholds, no regression against ``baseline`` (when
    given), and the errored-cases cap, in that order."""
    report = GateReport()
    for metric in metrics:
        ours = [v for row in candidate.values() if (v := _value(row, metric)) is not None]
        if not ours:
            raise InvalidInput(f"no case has a score for {metric!r}")
        comparison = base = None
        if baseline is not None:
            pairs = [
                (a, b)
                for case, row in candidate.items()
                if (a := _value(row, metric)) is not None
                and (b := _value(baseline.get(case), metric)) is not None
            ]
            if not pairs:
                raise InvalidInput(f"no case scored on {metric!r} in both runs")
            comparison = compare_paired([a for a, _ in pairs], [b for _, b in pairs])
            base = mean_interval([b for _, b in pairs])
        report.metrics.append(MetricReport(metric, mean_interval(ours), base, comparison))
    for item in report.metrics:
        for bound, kind in ((minimums or {}, "min"), (maximums or {}, "max")):
            if item.metric in bound:
                limit = {"minimum" if kind == "min" else "maximum": bound[item.metric]}
                report.conditions.append(threshold(item.metric, item.candidate, **limit))
        if item.comparison is not None:
            report.conditions.append(
                no_regression(
                    item.metric, item.comparison, baseline=baseline_name, tolerance=tolerance
                )
            )
    errored = sum(
        1
        for row in candidate.values()
        if row.get("error")
        or row.get("metric_errors")
        or any(_value(row, m) is None for m in metrics)
    )
    report.conditions.append(errors_within(errored, len(candidate), max_share=max_error_share))
    return report
