"""The built-in scorers: what each accepts and rejects, settings from the eval set or the
case, and cases that cannot be scored raising rather than scoring 0."""

from __future__ import annotations

from typing import Any

import pytest

from seamline.evals.scoring import (
    Answer,
    Case,
    Score,
    ScoreError,
    UnknownScorer,
    build_scorer,
    known_scorers,
)
from seamline.providers.local_models import minilm_files


def value(spec: dict[str, Any], text: str, **case: Any) -> float:
    return build_scorer(spec).score(Case(id="c1", **case), Answer(text)).value


def test_exact_compares_with_the_reference_whitespace_and_case_aside() -> None:
    assert value({"name": "exact"}, "  Paris\n", reference="paris") == 1.0
    assert value({"name": "exact", "normalise": False}, "Paris ", reference="Paris") == 0.0
    assert value({"name": "exact"}, "Lyon", reference="Paris") == 0.0


def test_contains_all_or_any_from_settings_or_the_case() -> None:
    spec = {"name": "contains", "value": ["Paris", "Seine"]}
    assert value(spec, "Paris lies on the Seine.") == 1.0
    assert value(spec, "Paris is big.") == 0.0
    assert value({**spec, "mode": "any"}, "Paris is big.") == 1.0
    # the case's criteria win over the eval set's setting
    assert value(spec, "Lyon", criteria={"contains": {"value": "lyon"}}) == 1.0
    result = build_scorer(spec).score(Case(), Answer("Paris"))
    assert result.reason == "missing ['Seine']"


def test_regex_searches_and_a_bad_pattern_is_refused_when_built() -> None:
    assert value({"name": "regex", "pattern": r"\b\d{4}\b"}, "in 1969, then") == 1.0
    assert value({"name": "regex", "pattern": r"^\d+$"}, "about 12") == 0.0
    with pytest.raises(ValueError, match="not a regular expression"):
        build_scorer({"name": "regex", "pattern": "("})


def test_json_scorers_read_an_answer_in_a_fence() -> None:
    fenced = '```json\n{"city": "Paris", "tags": ["a", "b"]}\n```'
    assert value({"name": "json_valid"}, fenced) == 1.0
    assert value({"name": "json_valid"}, "{'city': 1}") == 0.0
    schema = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
    assert value({"name": "json_schema", "schema": schema}, fenced) == 1.0
    wrong = build_scorer({"name": "json_schema", "schema": schema}).score(
        Case(), Answer('{"city": 3}')
    )
    assert wrong.value == 0.0 and wrong.reason.startswith("at city:")
    assert value({"name": "json_field", "path": "tags.1", "expected": "b"}, fenced) == 1.0
    assert value({"name": "json_field", "path": "city"}, fenced, reference='"Paris"') == 1.0
    assert value({"name": "json_field", "path": "nope", "expected": 1}, fenced) == 0.0


def test_numeric_takes_the_first_number_within_a_tolerance() -> None:
    spec = {"name": "numeric", "tolerance": 0.5}
    assert value(spec, "It is about 1,234.4 km.", reference="1234") == 1.0
    assert value(spec, "It is 1236 km.", reference="1234") == 0.0
    assert value({**spec, "tolerance": 0.01, "relative": True}, "1240", reference="1234") == 1.0
    assert value(spec, "no idea", reference="1234") == 0.0


def test_budgets_on_size_cost_and_latency() -> None:
    assert value({"name": "length", "max_chars": 5}, "short") == 1.0
    assert value({"name": "length", "max_chars": 5}, "too long") == 0.0
    cheap = Answer("ok", cost_usd=0.001, latency_ms=900, completion_tokens=40)
    assert build_scorer({"name": "cost", "max_usd": 0.002}).score(Case(), cheap).value == 1.0
    assert build_scorer({"name": "latency", "max_ms": 500}).score(Case(), cheap).value == 0.0
    assert build_scorer({"name": "length", "max_tokens": 30}).score(Case(), cheap).value == 0.0


def test_citations_name_a_given_context_and_cover_sentences() -> None:
    contexts = ("Paris is the capital.", "The Seine runs through it.")
    answer = "Paris is the capital [1]. The Seine runs through it [2]. It is lovely."
    assert value({"name": "citation_format"}, answer, contexts=contexts) == 1.0
    assert value({"name": "citation_format"}, "See [3].", contexts=contexts) == 0.0
    assert value({"name": "citation_format"}, "No sources.", contexts=contexts) == 0.0
    assert value({"name": "citation_coverage"}, answer) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("spec", "case"),
    [
        ({"name": "exact"}, {}),  # no reference
        ({"name": "json_schema"}, {}),  # no schema anywhere
        ({"name": "numeric"}, {"reference": "many"}),  # a reference without a number
        ({"name": "cost", "max_usd": 1}, {"reference": "x"}),  # no cost recorded
    ],
)
def test_a_case_that_cannot_be_scored_raises_rather_than_scoring_zero(
    spec: dict[str, Any], case: dict[str, Any]
) -> None:
    with pytest.raises(ScoreError):
        build_scorer(spec).score(Case(id="c9", **case), Answer("42"))


def test_unknown_scorers_and_settings_are_refused_by_name() -> None:
    with pytest.raises(UnknownScorer, match="unknown scorer 'nope'"):
        build_scorer({"name": "nope"})
    with pytest.raises(ValueError, match="scorer 'regex'"):
        build_scorer({"name": "regex", "pattern": "a", "colour": "red"})
    assert {"exact", "json_schema", "similarity", "citation_coverage"} <= known_scorers()


@pytest.mark.skipif(minilm_files() is None, reason="needs the [local] extra (MiniLM)")
def test_similarity_ranks_a_paraphrase_above_an_unrelated_answer() -> None:
    spec = {"name": "similarity"}
    reference = "Refunds are paid back to the card within fourteen days."
    paraphrase = value(
        spec, "You get your money back on your card in two weeks.", reference=reference
    )
    unrelated = value(spec, "The museum opens at nine on Sundays.", reference=reference)
    assert 0 <= unrelated < paraphrase <= 1
    assert value(spec, reference, reference=reference) == pytest.approx(1.0, abs=1e-5)


def test_citations_by_id_name_contexts_that_carry_that_id() -> None:
    spec = {"name": "citation_format", "pattern": r"\[(kb-\d+)\]"}
    contexts = ("[kb-7] Refunds take 14 days.", "[kb-9] Sale items: exchange only.")
    assert value(spec, "14 days [kb-7], exchange only [kb-9].", contexts=contexts) == 1.0
    wrong = build_scorer(spec).score(Case(contexts=contexts), Answer("See [kb-8]."))
    assert wrong.value == 0.0 and "kb-8" in wrong.reason


def test_the_example_eval_sets_references_pass_its_own_scorers() -> None:
    from pathlib import Path

    from seamline.registry.loader import load_drafts

    examples = Path(__file__).resolve().parents[2] / "examples" / "evals"
    [draft] = load_drafts([examples])
    scorers = [
        build_scorer(spec)
        for spec in draft.content["scorers"]
        if spec["name"] != "similarity" or minilm_files() is not None
    ]
    for raw in draft.content["cases"]:
        case = Case(
            id=raw["id"],
            reference=raw["reference"],
            contexts=tuple(raw["contexts"]),
            criteria=raw.get("criteria", {}),
        )
        scores = {s.name: s.score(case, Answer(raw["reference"])).value for s in scorers}
        cites = 0.0 if "refusal" in raw.get("tags", []) else 1.0  # a refusal cites nothing
        assert scores.pop("citation_format") == cites, raw["id"]
        assert all(v == pytest.approx(1.0, abs=1e-5) for v in scores.values()), raw["id"]


def test_guard_detectors_score_answers_as_safe_or_not_with_what_they_found() -> None:
    leaky = Answer("Mail jane.doe@example.org, or use key AKIAIOSFODNN7EXAMPLE.")
    for name, label in (("pii", "email"), ("secrets", "aws_access_key")):
        scored = build_scorer({"name": "safety", "detector": name}).score(Case(), leaky)
        assert scored.value == 0.0 and label in scored.reason
    clean = build_scorer({"name": "safety", "detector": "pii"}).score(Case(), Answer("Paris."))
    assert clean == Score(1.0, "pii found nothing")
    with pytest.raises(ValueError, match="no detector 'schema'"):
        build_scorer({"name": "safety", "detector": "schema"})  # built per call, not here
