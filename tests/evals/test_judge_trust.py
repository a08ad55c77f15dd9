"""Judge trust: the position-flip rate of a scripted position-biased judge, and agreement
with human labels (Cohen's kappa, Spearman) against hand computations, with intervals."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from seamline.evals.agreement import cohen_kappa, spearman, with_interval
from seamline.evals.judging import judge_client
from seamline.evals.scorers.pairwise import PairVerdict, compare, flip_rate
from seamline.evals.scoring import Answer, Case, build_scorer

GOOD = "Refunds reach the original card within 14 days of the return."
POOR = "Refunds happen sometimes."


class PositionBiased:
    """Always prefers the answer shown first: what a biased judge does."""

    def __call__(self, model: str, body: dict[str, Any]) -> str:
        return json.dumps({"better": "A"})


class Fair:
    """Prefers the answer that holds the facts, wherever it is shown."""

    def __call__(self, model: str, body: dict[str, Any]) -> str:
        user = body["messages"][1]["content"]
        first = user.split("ANSWER B:")[0]
        return json.dumps({"better": "A" if GOOD in first else "B"})


@pytest.fixture
def client() -> Iterator[list[Any]]:
    holder: list[Any] = [None]
    token = judge_client.set(lambda model, body: holder[0](model, body))
    yield holder
    judge_client.reset(token)


def test_a_position_biased_judge_flips_every_time(client: list[Any]) -> None:
    client[0] = PositionBiased()
    verdicts = [compare("judge", "Refund time?", GOOD, POOR) for _ in range(5)]
    assert verdicts == [PairVerdict("tie", flipped=True)] * 5
    assert flip_rate(verdicts) == 1.0


def test_a_fair_judge_is_consistent_in_both_orders(client: list[Any]) -> None:
    client[0] = Fair()
    assert compare("judge", "Refund time?", GOOD, POOR) == PairVerdict("candidate", False)
    assert compare("judge", "Refund time?", POOR, GOOD) == PairVerdict("baseline", False)
    scorer = build_scorer({"name": "pairwise", "judge": "judge"})
    case = Case(variables={"question": "Refund time?"}, reference=POOR)
    assert scorer.score(case, Answer(GOOD)).value == 1.0
    client[0] = PositionBiased()
    biased = scorer.score(case, Answer(GOOD))
    assert biased.value == 0.5 and "decided by position" in biased.reason


def test_cohen_kappa_by_hand() -> None:
    # 10 items: agree on 4 passes and 3 fails, disagree on 3.
    judge = ["pass"] * 4 + ["fail"] * 3 + ["pass", "pass", "fail"]
    human = ["pass"] * 4 + ["fail"] * 3 + ["fail", "fail", "pass"]
    # observed 0.7; expected 0.6*0.5 + 0.4*0.5 = 0.5; kappa (0.7 - 0.5) / 0.5 = 0.4
    assert cohen_kappa(judge, human) == pytest.approx(0.4)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == 1.0
    assert cohen_kappa(["a", "a"], ["a", "a"]) == 1.0


def test_spearman_by_hand_with_ties() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): r = 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    assert spearman([3, 3, 3], [1, 2, 3]) == 0.0


def test_agreement_intervals_narrow_with_more_labels() -> None:
    rng = random.Random(4)

    def labels(n: int) -> tuple[list[int], list[int]]:
        human = [rng.randrange(2) for _ in range(n)]
        judge = [h if rng.random() < 0.85 else 1 - h for h in human]
        return judge, human

    small = with_interval(cohen_kappa, *labels(40))
    large = with_interval(cohen_kappa, *labels(400))
    assert small.low <= small.estimate <= small.high and large.n == 400
    assert (small.high - small.low) > 1.5 * (large.high - large.low)
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa([1], [1, 0])
