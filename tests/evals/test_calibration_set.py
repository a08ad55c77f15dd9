"""The shipped judge calibration set holds together: every row well formed, labels that
follow the rubric's scores, both labels and every task represented."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import seamline.evals
from seamline.evals.agreement import cohen_kappa

CALIBRATION = Path(seamline.evals.__file__).parent / "calibration" / "judge_calibration.jsonl"
KEYS = {"id", "task", "question", "contexts", "reference", "answer", "label", "score", "why"}


def test_the_calibration_set_is_well_formed_and_balanced() -> None:
    rows = [json.loads(line) for line in CALIBRATION.read_text(encoding="utf-8").splitlines()]
    assert 100 <= len(rows) <= 200
    assert all(set(row) == KEYS for row in rows)
    assert len({row["id"] for row in rows}) == len(rows)
    assert all((row["label"] == "pass") == (row["score"] >= 4) for row in rows)
    assert all(bool(row["contexts"]) == (row["task"] == "rag") for row in rows)
    by = Counter((row["task"], row["label"]) for row in rows)
    assert set(by) == {(t, lab) for t in ("qa", "rag", "support") for lab in ("pass", "fail")}
    # a judge that said "pass" to everything would agree on half the rows, and kappa says 0
    labels = [row["label"] for row in rows]
    assert cohen_kappa(["pass"] * len(rows), labels) == 0.0
