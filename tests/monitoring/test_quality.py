"""Online quality: sampled live calls scored by the eval harness's scorers off the request
path, attached to the call; per prompt version with intervals; a worse canary is told from
its control."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seamline.evals.stats import compare_groups
from seamline.monitoring.quality import CallScores, QualitySample, QualityScorer
from seamline.providers.local_models import minilm_files
from seamline.registry import Actor, Registry

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
QUESTION = "How many days of paid time off do employees get?"


def _sample(i: int, who: Actor, arm: str, answer: str) -> QualitySample:
    return QualitySample(
        f"req_{arm}_{i}",
        who.project.id,
        NOW - timedelta(minutes=i),
        "hr-answer",
        2 if arm == "canary" else 1,
        arm,
        {"question": QUESTION},
        (),
        answer,
        ({"name": "answer_relevance"}, {"name": "json_valid"}),
    )


def test_a_worse_canary_is_told_from_its_control(registry: Registry, alice: Actor) -> None:
    scorer = QualityScorer(CallScores(registry.db))
    for i in range(12):
        scorer.queue.submit(_sample(i, alice, "control", "Employees get 25 days of paid time off."))
        scorer.queue.submit(_sample(i, alice, "canary", "The office kitchen closes at five."))
    scorer.queue.wait()
    scorer.queue.close()
    report = CallScores(registry.db).report(alice.project.id, NOW - timedelta(days=1)).as_record()
    versions = {(v["prompt"], v["metric"]): v for v in report["versions"]}
    assert versions[("hr-answer@1", "answer_relevance")]["n"] == 12
    assert versions[("hr-answer@1", "json_valid")]["estimate"] == 0.0  # prose, not JSON
    assert versions[("hr-answer@2", "answer_relevance")]["estimate"] < 0.3
    [relevance] = [c for c in report["canary_vs_control"] if c["metric"] == "answer_relevance"]
    assert relevance["difference"]["high"] < 0 and relevance["p_worse"] < 0.01
    assert CallScores(registry.db).of_call(alice.project.id, "req_canary_0")[0]["metric"] == (
        "answer_relevance"
    )


def test_independent_groups_with_the_same_scores_are_not_told_apart() -> None:
    same = compare_groups([0.6, 0.7, 0.8, 0.65] * 5, [0.6, 0.7, 0.8, 0.65] * 5)
    assert same.p_value > 0.9 and same.difference.low < 0 < same.difference.high
