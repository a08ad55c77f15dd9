"""``seamline rag report``: the split of scored live calls by the stage blamed, per prompt
and index, as a table and as JSON; a filter narrows it; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

from seamline.core.clock import utcnow
from seamline.rag.assessments import Assessments
from seamline.rag.online import INTEGRATION, OK, RETRIEVAL, Assessment, RagSample
from seamline.store.database import Database
from tests.cli.test_cli import Run


def _assessed(db: Database, request_id: str, index: str, kind: str, reason: str) -> None:
    sample = RagSample(
        request_id, 1, utcnow(), "/v1/chat/completions", "hr-answer@3", index, "q", "a", ()
    )
    scores = {"context_relevance": 0.2 if kind == RETRIEVAL else 0.7, "groundedness": 0.5}
    Assessments(db).record(Assessment(sample, kind, scores, {"reason": reason}))


def test_the_report_splits_failures_per_prompt_and_index(seamline: Run, tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'home' / 'seamline.db'}")
    _assessed(db, "req_1", "handbook@2", OK, "")
    _assessed(db, "req_2", "handbook@2", RETRIEVAL, "no chunk reaches relevance 0.4")
    _assessed(db, "req_3", "handbook@2", INTEGRATION, "only 50% supported")
    _assessed(db, "req_4", "faq@1", OK, "")
    _assessed(db, "req_4", "faq@1", RETRIEVAL, "a second assessment of a call is ignored")

    found = json.loads(seamline("rag", "report", "--json").stdout)
    handbook, faq = found["groups"]  # the group with the most failures first
    assert (handbook["index"], handbook["scored"]) == ("handbook@2", 3)
    assert handbook["counts"] == {
        "retrieval": 1,
        "freshness": 0,
        "integration": 1,
        "unknown": 0,
        "ok": 1,
    }
    assert handbook["examples"]["retrieval"][0]["request_id"] == "req_2"
    assert handbook["mean_scores"]["context_relevance"] == 0.5333
    assert (faq["index"], faq["counts"]["ok"], faq["scored"]) == ("faq@1", 1, 1)

    shown = seamline("rag", "report", "--index", "handbook").stdout
    assert "handbook@2" in shown and "faq@1" not in shown
    assert "req_2  no chunk reaches relevance 0.4" in shown and "1 (33%)" in shown
    assert "no RAG call scored" in seamline("rag", "report", "--prompt", "other").stdout

    failed = seamline("rag", "report", "--since", "yesterday", ok=False)
    assert failed.returncode == 1 and failed.stderr.startswith("error: ")
    assert "Traceback" not in failed.stderr
