"""Online RAG scoring of live calls: sampled calls are scored off the request path, each
constructed failure is blamed on its stage (retrieval, integration, freshness), and an
application's reported retrieval is scored like the gateway's own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from seamline.core.clock import utcnow
from seamline.providers.local_models import minilm_files
from seamline.rag.assessments import Assessments
from seamline.rag.chunking import ChunkerConfig
from seamline.rag.indexes import Indexes, local_embedder
from seamline.rag.store import STORE_FILE
from seamline.rag.store_sqlite import SqliteChunkStore
from seamline.registry import Actor, Registry
from seamline.sdk import RetrievalReport, RetrievedPassage
from tests.factories import prompt_draft
from tests.gateway.conftest import RunningGateway

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")

LEAVE = (
    "Employees receive 25 days of paid time off per year, accrued monthly. "
    "Up to five unused days carry over into the next year."
)
OFFICE = "The office kitchen is cleaned every Friday afternoon by the facilities team."
PTO = "How many days of paid time off do employees get?"
RETRIEVING = {
    "model": "gpt-4o-mini",
    "variables": [
        {"name": "question", "type": "string"},
        {"name": "context", "type": "string", "required": False},
    ],
    "retrieval": {"index": "handbook@live", "k": 2, "query": "{{ question }}"},
}


@pytest.fixture
def scoring(
    start_gateway: Any, registry: Registry, alice: Actor, tmp_path: Path
) -> tuple[RunningGateway, Path]:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "leave.md").write_text(LEAVE)
    (folder / "office.md").write_text(OFFICE)
    store = SqliteChunkStore(tmp_path / STORE_FILE)
    Indexes(registry, alice, store, local_embedder()).ingest([folder], "handbook", ChunkerConfig())
    store.close()
    registry.move_alias(alice, "index", "handbook", "live", 1)
    text = "Passages:\n{{ context }}\nQ: {{ question }}"
    registry.push(alice, [prompt_draft(name="hr-answer", text=text, **RETRIEVING)])
    return start_gateway(rag={"sample_rate": 1.0}), folder


def _answer_with(gateway: RunningGateway, answer: str) -> None:
    gateway.upstreams["primary"].reply_text = lambda body: answer  # type: ignore[method-assign]


def _ask(gateway: RunningGateway, question: str) -> str:
    reply = gateway.client().chat.completions.create(
        model="prompt:hr-answer@1",
        messages=[],
        extra_body={"seamline": {"variables": {"question": question}}},
    )
    return reply._request_id or ""


def _report(gateway: RunningGateway, alice: Actor, calls: int) -> dict[str, Any]:
    """The RAG report once ``calls`` calls are in (a call is queued for scoring just before
    its event is written) and scored."""
    gateway.events(expected=calls)
    gateway.app.gateway.rag_scorer.wait()
    since = utcnow() - timedelta(hours=1)
    report = Assessments(gateway.registry.db).report(alice.project.id, since)
    return report.as_record()


def test_each_failure_kind_on_live_traffic_is_blamed_on_its_stage(
    scoring: tuple[RunningGateway, Path], alice: Actor
) -> None:
    gateway, folder = scoring
    _answer_with(gateway, "Employees get 25 days of paid time off per year.")
    _ask(gateway, PTO)
    _answer_with(gateway, "The capital of France is Paris.")
    _ask(gateway, "What is the capital of France?")
    _answer_with(gateway, "Employees get 40 days of paid time off per year.")
    contradicted = _ask(gateway, PTO)
    _report(gateway, alice, 3)  # staleness is judged when a call is scored
    (folder / "leave.md").write_text(LEAVE.replace("25 days", "30 days"))  # HR changed it
    _answer_with(gateway, "Employees get 25 days of paid time off per year.")
    _ask(gateway, PTO)

    [group] = _report(gateway, alice, 4)["groups"]
    assert (group["prompt"], group["index"]) == ("hr-answer@1", "handbook@1")
    assert group["counts"] == {
        "retrieval": 1,
        "freshness": 1,
        "integration": 1,
        "unknown": 0,
        "ok": 1,
    }
    [integration] = group["examples"]["integration"]
    assert integration["request_id"] == contradicted
    assert integration["evidence"]["unsupported_statements"] == [
        "Employees get 40 days of paid time off per year."
    ]
    [freshness] = group["examples"]["freshness"]
    assert freshness["evidence"]["stale"][0]["source"].endswith("/kb/leave.md")
    assert 0 < group["mean_scores"]["context_relevance"] <= 1
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'seamline_rag_assessments_total{attribution="freshness",index="handbook"} 1.0' in metrics
    assert 'seamline_background_items_total{outcome="dropped",queue="rag-scorer"} 0.0' in metrics
    # freshness on /metrics: one of the live version's two sources changed since it was built
    assert 'seamline_index_sources{index="handbook@1",project=""} 2.0' in metrics
    assert 'seamline_index_stale_sources{index="handbook@1",project=""} 1.0' in metrics
    # the four calls read two chunks each, written minutes ago at most
    assert (
        'seamline_retrieved_document_age_seconds_bucket{index="handbook",le="3600.0"} 8.0'
        in metrics
    )


def test_reported_retrieval_from_the_sdk_is_scored_like_the_gateways(
    scoring: tuple[RunningGateway, Path], alice: Actor
) -> None:
    gateway, _ = scoring
    _answer_with(gateway, "Employees get 40 days of paid time off per year.")
    built = utcnow() - timedelta(days=2)
    report = RetrievalReport(
        index="qdrant:policies@7",
        query=PTO,
        passages=[
            RetrievedPassage(id="pol-3#0", score=0.82, text=LEAVE, updated_at=built),
            RetrievedPassage(id="pol-9#1", score=0.31, text=OFFICE),
        ],
        built_at=built,
    )
    gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "how much PTO do I get"}],
        extra_body=report.extra_body(),
    )
    updated = RetrievalReport(
        index="qdrant:policies@7",
        passages=[RetrievedPassage(id="pol-3#0", text=LEAVE, updated_at=utcnow())],
        built_at=built,
    )
    _answer_with(gateway, "Employees get 25 days of paid time off per year.")
    gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": PTO}],  # the query: the last user message
        extra_body=updated.extra_body(),
    )
    [group] = _report(gateway, alice, 2)["groups"]
    assert (group["prompt"], group["index"]) == (None, "qdrant:policies@7")
    assert group["counts"]["integration"] == 1 and group["counts"]["freshness"] == 1


def test_reported_ids_of_a_seamline_index_are_scored_from_its_store(
    scoring: tuple[RunningGateway, Path], alice: Actor, registry: Registry
) -> None:
    gateway, _ = scoring
    store = SqliteChunkStore(gateway.app.gateway.settings.home / STORE_FILE)
    found = Indexes(registry, alice, store, local_embedder()).query("handbook@1", PTO, k=1)
    store.close()
    _answer_with(gateway, "Employees get 25 days of paid time off per year.")
    report = RetrievalReport(
        index="handbook@1", passages=[RetrievedPassage(id=h.chunk.chunk_id) for h in found.hits]
    )
    gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": PTO}],
        extra_body=report.extra_body(),
    )
    [group] = _report(gateway, alice, 1)["groups"]
    assert group["counts"]["ok"] == 1 and group["mean_scores"]["groundedness"] == 1.0


def test_calls_outside_the_sample_are_not_scored(start_gateway: Any, alice: Actor) -> None:
    gateway = start_gateway(
        rag={"sample_rate": 0.0, "routes": {"/v1/messages": {"sample_rate": 1}}}
    )
    report = RetrievalReport(index="kb@1", passages=[RetrievedPassage(id="a", text=LEAVE)])
    gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": PTO}],
        extra_body=report.extra_body(),
    )
    assert _report(gateway, alice, 1)["groups"] == []


def test_a_configured_judge_checks_statements_through_the_gateway(
    scoring: tuple[RunningGateway, Path], alice: Actor, start_gateway: Any
) -> None:
    gateway = start_gateway(rag={"sample_rate": 1.0, "judge": "backup-model"})

    def answer(body: dict[str, Any]) -> str:
        if body.get("response_format"):
            return '{"verdicts": [false]}'
        return "Employees get 25 days of paid time off per year."

    gateway.upstreams["primary"].reply_text = answer  # type: ignore[method-assign]
    gateway.upstreams["backup"].reply_text = answer  # type: ignore[method-assign]
    live = _ask(gateway, PTO)
    [group] = _report(gateway, alice, 1)["groups"]
    assert group["counts"]["integration"] == 1  # the judge found the statement unsupported
    judged = [e for e in gateway.events(expected=2) if e["use_case"] == "rag.judge"]
    assert [e["parent_request_id"] for e in judged] == [live]
