"""Online RAG scoring on constructed calls: each kind of failure is produced on purpose and
blamed on the right stage, with its evidence; a good call is ok."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seamline.evals.judging import judge_client
from seamline.providers.local_models import minilm_files
from seamline.providers.local_vectors import embed
from seamline.rag.online import (
    FRESHNESS,
    INTEGRATION,
    OK,
    RETRIEVAL,
    UNKNOWN,
    RagSample,
    RetrievedChunk,
    assess,
)

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
PTO = RetrievedChunk(
    "ch_3fa91b",  # digits in an id a citation repeats are no number the answer states
    "Employees receive 25 days of paid time off per year, accrued monthly. "
    "Up to five unused days carry over into the next year.",
    0.8,
    "file:///kb/leave.md",
    "2026-11-01T00:00:00.000000Z",
)
KITCHEN = RetrievedChunk(
    "ch_kitchen",
    "The office kitchen is cleaned every Friday afternoon by the facilities team.",
    0.2,
    "file:///kb/office.md",
    "2026-11-01T00:00:00.000000Z",
)
QUESTION = "How many days of paid time off do employees get?"


def _sample(answer: str, *chunks: RetrievedChunk, **changes: object) -> RagSample:
    fields: dict[str, object] = {
        "request_id": "req_1",
        "project_id": 1,
        "time": NOW,
        "route": "/v1/chat/completions",
        "prompt": "hr-answer@3",
        "index": "handbook@2",
        "query": QUESTION,
        "answer": answer,
        "chunks": chunks,
    }
    return RagSample(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_grounded_relevant_answer_from_current_context_is_ok() -> None:
    answer = "Employees get 25 days of paid time off per year [ch_3fa91b]."
    result = assess(_sample(answer, PTO, KITCHEN), embed)
    assert result.attribution == OK
    assert result.scores["context_relevance"] > 0.6 and result.scores["groundedness"] == 1.0
    assert result.scores["citation_coverage"] == 1.0


def test_nothing_relevant_retrieved_is_a_retrieval_failure() -> None:
    result = assess(_sample("The kitchen is cleaned on Fridays.", KITCHEN), embed)
    assert result.attribution == RETRIEVAL
    assert result.evidence["best_chunk"] == "ch_kitchen"
    assert result.evidence["relevant_chunks"] == []
    assert "no chunk reaches relevance" in result.evidence["reason"]


def test_an_answer_that_contradicts_relevant_context_is_an_integration_failure() -> None:
    answer = "Employees get 40 days of paid time off. They can also bring dogs on Tuesdays."
    result = assess(_sample(answer, PTO, KITCHEN), embed)
    assert result.attribution == INTEGRATION
    assert result.evidence["relevant_chunks"] == ["ch_3fa91b"]
    assert result.scores["groundedness"] == 0.0
    assert result.evidence["unsupported_statements"] == [
        "Employees get 40 days of paid time off.",
        "They can also bring dogs on Tuesdays.",
    ]


def test_the_evidence_quotes_nothing_when_the_content_policy_keeps_none() -> None:
    answer = "Employees get 40 days of paid time off."
    result = assess(_sample(answer, PTO, keep_text=False), embed)
    assert result.attribution == INTEGRATION
    assert result.evidence["unsupported"] == 1 and "unsupported_statements" not in result.evidence


def test_a_chunk_from_a_source_changed_since_the_index_was_built_is_a_freshness_failure() -> None:
    stale = RetrievedChunk(**{**PTO.__dict__, "source_stale": True})
    answer = "Employees get 25 days of paid time off per year."
    result = assess(_sample(answer, stale, KITCHEN), embed)
    assert result.attribution == FRESHNESS
    assert result.evidence["stale"] == [
        {"chunk": "ch_3fa91b", "source": "file:///kb/leave.md", "why": "changed"}
    ]


def test_a_document_older_than_the_routes_freshness_limit_is_stale() -> None:
    answer = "Employees get 25 days of paid time off per year."
    old = _sample(answer, PTO, freshness_limit=timedelta(days=14))
    assert assess(old, embed).attribution == FRESHNESS
    recent = _sample(answer, PTO, freshness_limit=timedelta(days=60))
    assert assess(recent, embed).attribution == OK


def test_a_grounded_answer_beside_the_question_is_unknown() -> None:
    handbook = RetrievedChunk(
        "ch_pto2",
        PTO.text + " This handbook was last revised by the legal department in March.",
    )
    answer = "This handbook was last revised by the legal department in March."
    result = assess(_sample(answer, handbook), embed)
    assert result.attribution == UNKNOWN
    assert result.scores["groundedness"] == 1.0 and result.scores["answer_relevance"] < 0.35
    assert "relevance to the query" in result.evidence["reason"]


def test_a_judge_decides_groundedness_when_configured() -> None:
    asked: list[str] = []

    def judge(model: str, body: dict[str, object]) -> str:
        asked.append(model)
        return '{"verdicts": [false]}'

    token = judge_client.set(judge)
    try:
        answer = "Employees get 25 days of paid time off per year."
        result = assess(_sample(answer, PTO, judge="gpt-4o-mini"), embed)
    finally:
        judge_client.reset(token)
    assert asked == ["gpt-4o-mini"]
    assert result.attribution == INTEGRATION and result.scores["groundedness"] == 0.0


def test_chunks_without_text_cannot_be_scored_and_say_so() -> None:
    result = assess(_sample("Twenty-five days.", RetrievedChunk("doc-7#2", "")), embed)
    assert result.attribution == UNKNOWN and result.scores == {}
    assert "no retrieved chunk has text" in result.evidence["reason"]
