"""The pointwise judge: its grade becomes a 0-1 score with the rationale as reason; a verdict
that is not a grade from 1 to 5 errors the case; labels files are checked line by line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seamline.core.errors import InvalidInput
from seamline.evals.calibration import SHIPPED_LABELS, read_labels
from seamline.evals.scorers.rubric import Rubric
from seamline.evals.scoring import Answer, Case, ScoreError, build_scorer
from tests.evals.conftest import ScriptedJudge

CASE = Case(id="c1", variables={"question": "Capital of France?"}, reference="Paris.")


def test_a_grade_is_scored_from_0_to_1_with_the_rationale_and_the_data_fenced(
    judge: ScriptedJudge,
) -> None:
    judge.answers.append({"score": 4, "rationale": "right, terse"})
    score = build_scorer({"name": "judge", "judge": "gpt-4o"}).score(CASE, Answer("Paris"))
    assert (score.value, score.reason) == (0.75, "4/5: right, terse")
    user = judge.asked[0][1]["messages"][1]["content"]
    assert "REFERENCE ANSWER:\n<data>\nParis.\n</data>" in user
    assert judge.asked[0][1]["temperature"] == 0


@pytest.mark.parametrize(
    ("verdict", "reason"),
    [
        ({"score": 7, "rationale": ""}, "outside 1-5"),
        ({"score": "5", "rationale": ""}, "no integer score"),
        ({"score": True, "rationale": ""}, "no integer score"),
    ],
)
def test_a_verdict_that_is_not_a_grade_errors_the_case(
    judge: ScriptedJudge, verdict: dict[str, Any], reason: str
) -> None:
    judge.answers.append(verdict)
    with pytest.raises(ScoreError, match=reason):
        Rubric(judge="gpt-4o").score(CASE, Answer("Paris"))


def test_samples_are_separate_requests_and_the_reason_shows_their_spread(
    judge: ScriptedJudge,
) -> None:
    judge.answers += [{"score": 5, "rationale": "ok"}, {"score": 3, "rationale": "meh"}]
    score = Rubric(judge="gpt-4o", samples=2).score(CASE, Answer("Paris"))
    assert score.value == 0.75 and score.reason == "4/5: ok (samples: 5, 3)"
    assert [body["seed"] for _, body in judge.asked] == [0, 1]


def test_a_judge_needs_a_model_and_a_resolved_prompt() -> None:
    with pytest.raises(ValueError, match="not resolved"):
        Rubric(judge="gpt-4o", prompt="grader@production")
    with pytest.raises(ValueError, match="samples"):
        Rubric(judge="gpt-4o", samples=0)


def test_labels_are_read_and_a_bad_line_is_named(tmp_path: Path) -> None:
    shipped = read_labels(SHIPPED_LABELS)
    assert len(shipped) == 150 and {item.label for item in shipped} == {"pass", "fail"}
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"question": "q", "answer": "a", "label": "pass"}\n{"question": "q"}\n')
    with pytest.raises(InvalidInput, match="line 2: a row needs"):
        read_labels(bad)
    bad.write_text('{"question": "q", "answer": "a", "label": "good"}\n')
    with pytest.raises(InvalidInput, match='"pass" or "fail"'):
        read_labels(bad)
