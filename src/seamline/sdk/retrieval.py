"""Reporting retrieval an application did itself (Qdrant, Pinecone, pgvector, its own code),
so the gateway records and scores it like its own::

    from seamline.sdk import RetrievalReport, RetrievedPassage

    report = RetrievalReport(
        index="qdrant:help-centre@2026-11-28",
        query=question,
        passages=[RetrievedPassage(id=p.id, score=p.score, text=p.payload["text"],
                                   source=p.payload["url"], updated_at=p.payload["updated"])
                  for p in points],
        built_at=collection_built_at,
        retrieval_ms=took_ms,
    )
    openai_client.chat.completions.create(..., extra_body=report.extra_body())

The text of each passage lets online scoring judge relevance and groundedness (a seamline
index's chunk ids need none: the gateway reads them from its store); ``updated_at`` after
``built_at`` marks a passage whose document changed since the index was built. The gateway
checks every field and answers a malformed report with a 400 that names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from seamline.core.clock import isoformat


@dataclass(frozen=True)
class RetrievedPassage:
    id: str
    score: float | None = None
    text: str | None = None
    source: str | None = None  # where the passage's document lives (a URL, a path)
    updated_at: datetime | None = None  # when that document last changed

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"id": self.id}
        for name in ("score", "text", "source"):
            if getattr(self, name) is not None:
                record[name] = getattr(self, name)
        if self.updated_at is not None:
            record["updated_at"] = isoformat(self.updated_at)
        return record


@dataclass(frozen=True)
class RetrievalReport:
    index: str  # NAME@VERSION in whatever store it lives
    passages: list[RetrievedPassage] = field(default_factory=list)
    query: str | None = None  # default: the call's last user message
    built_at: datetime | None = None  # when this index version was built
    retrieval_ms: float | None = None

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "index": self.index,
            "chunks": [passage.as_record() for passage in self.passages],
        }
        if self.query is not None:
            record["query"] = self.query
        if self.built_at is not None:
            record["built_at"] = isoformat(self.built_at)
        if self.retrieval_ms is not None:
            record["retrieval_ms"] = self.retrieval_ms
        return record

    def extra_body(self, **seamline: Any) -> dict[str, Any]:
        """The OpenAI client's ``extra_body`` carrying this report (and any other
        ``seamline`` fields given, such as ``variables``)."""
        return {"seamline": {**seamline, "retrieval": self.as_record()}}
