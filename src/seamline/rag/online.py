"""Online RAG scoring: one live call's retrieval and answer, scored and, when something is
wrong, blamed on the stage that needs fixing.

Four scores, with the embedded MiniLM by default:

* **context relevance**: the cosine of the query and each retrieved chunk; the best of them
  says whether anything relevant was retrieved at all;
* **groundedness**: the share of the answer's statements supported by the chunks. A statement
  is supported when some chunk sentence (or a whole chunk) is near it in meaning *and* every
  number it states appears in the chunks: sentence embeddings cannot tell "25 days" from
  "40 days" (0.79 against 0.90 here), and a changed number is the commonest way an answer
  contradicts its context. With a judge model configured, the judge's per-statement verdicts
  (the eval harness's faithfulness) replace the embedding test;
* **answer relevance**: the cosine of the query and the answer (the eval harness's scorer);
* **citation coverage**: the share of the answer's sentences that cite a chunk, by its id or
  its 1-based rank (reported, never a failure on its own: not every prompt asks for them).

The attribution follows the order a team would debug in:

1. ``retrieval``: no chunk is relevant enough to the query. The retriever (or the corpus)
   must change; nothing downstream could have helped.
2. ``freshness``: the chunks the answer drew on come from a source that changed (or went
   away) after the index version was built, or is older than the route's freshness limit.
   The ingestion pipeline must run; the prompt is not at fault.
3. ``integration``: relevant, current context was there, and the answer is not grounded in
   it (or states numbers it does not hold). The prompt or the model must change.
4. ``unknown``: the answer does not address the query though none of the above holds.

A call with none of these is ``ok``. Every decision carries its evidence: the scores, the
thresholds, the chunk ids, the stale sources, and (where the project logs content) the
unsupported statements.

Thresholds were read off MiniLM cosines measured here on question-passage pairs written for
the purpose: relevant passages scored 0.61-0.82, passages on other subjects -0.02-0.29;
restatements of a passage's sentence 0.86-0.90, unrelated sentences 0.24-0.30.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from seamline.core.clock import as_utc
from seamline.evals.scorers.rag import statements, supported

RETRIEVAL, FRESHNESS, INTEGRATION, UNKNOWN, OK = (
    "retrieval",
    "freshness",
    "integration",
    "unknown",
    "ok",
)
log = logging.getLogger("seamline.rag")
RAG_JUDGE_USE_CASE = "rag.judge"  # the use case of the events of a judge's calls
ATTRIBUTIONS = (RETRIEVAL, FRESHNESS, INTEGRATION, UNKNOWN, OK)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CITED = re.compile(r"\[([^\[\]\s]{1,120})\]")


@dataclass(frozen=True)
class Thresholds:
    relevant: float = 0.40  # query-to-chunk cosine of a relevant chunk
    supported: float = 0.60  # statement-to-context cosine of a supported statement
    grounded: float = 0.75  # share of supported statements of a grounded answer
    answers: float = 0.35  # query-to-answer cosine of an answer that addresses the query


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: str
    text: str
    score: float | None = None
    source: str | None = None
    # When the source's text was last changed, as indexed (ISO 8601).
    source_modified: str | None = None
    # The source changed or went away after the index version was built.
    source_stale: bool = False


@dataclass(frozen=True)
class RagSample:
    """What one call retrieved and answered, captured on the request path (nothing here is
    read back from the logged event: the project's content policy may keep none of it)."""

    request_id: str
    project_id: int
    time: datetime
    route: str
    prompt: str | None  # NAME@VERSION
    index: str  # NAME@VERSION, or as an application reported it
    query: str
    answer: str
    chunks: tuple[RetrievedChunk, ...]
    freshness_limit: timedelta | None = None
    keep_text: bool = True  # the evidence may quote the answer
    judge: str | None = None  # a model that checks statements against the chunks
    external: bool = False  # reported by the application: its index name is the caller's


@dataclass
class Assessment:
    sample: RagSample
    attribution: str
    scores: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)


Embed = Callable[[list[str]], Any]  # texts -> an (n, d) array of unit vectors


def assess(sample: RagSample, embed: Embed, thresholds: Thresholds | None = None) -> Assessment:
    """Score ``sample`` and attribute it (see the module's docstring)."""
    limits = thresholds or Thresholds()
    chunks = [c for c in sample.chunks if c.text.strip()]
    claims = statements(_CITED.sub("", sample.answer))  # "[ch_3fa9]" states no number
    if not chunks:
        reason = "no retrieved chunk has text to score"
        return Assessment(sample, UNKNOWN, {}, {"reason": reason, "limits": limits.__dict__})
    sentences = [s for chunk in chunks for s in statements(chunk.text)]
    vectors = np.asarray(
        embed([sample.query, sample.answer, *[c.text for c in chunks], *sentences, *claims])
    )
    query, answer = vectors[0], vectors[1]
    chunk_vectors = vectors[2 : 2 + len(chunks)]
    sentence_vectors = vectors[2 + len(chunks) : 2 + len(chunks) + len(sentences)]
    claim_vectors = vectors[2 + len(chunks) + len(sentences) :]
    relevance = chunk_vectors @ query
    best = int(np.argmax(relevance))
    relevant = [c for c, r in zip(chunks, relevance, strict=True) if r >= limits.relevant]
    scores = {
        "context_relevance": round(float(relevance[best]), 4),
        "answer_relevance": round(float(answer @ query), 4),
    }
    evidence: dict[str, Any] = {
        "limits": limits.__dict__,
        "best_chunk": chunks[best].chunk_id,
        "relevant_chunks": [c.chunk_id for c in relevant],
    }
    coverage, cited = _citations(sample.answer, sample.chunks)
    if coverage is not None:
        scores["citation_coverage"] = round(coverage, 4)
    if claims:
        grounded, unsupported = _groundedness(
            sample,
            limits,
            claims,
            chunks,
            np.vstack([chunk_vectors, sentence_vectors]),
            claim_vectors,
        )
        scores["groundedness"] = round(grounded, 4)
        evidence["unsupported"] = len(unsupported)
        if sample.keep_text:
            evidence["unsupported_statements"] = unsupported[:5]
    if not relevant:
        evidence["reason"] = (
            f"no chunk reaches relevance {limits.relevant}: the best, "
            f"{chunks[best].chunk_id}, is at {scores['context_relevance']}"
        )
        return Assessment(sample, RETRIEVAL, scores, evidence)
    used = [c for c in chunks if c.chunk_id in cited] or relevant
    stale = _stale(used, sample)
    if stale:
        evidence["stale"] = stale
        evidence["reason"] = (
            f"{len(stale)} of the {len(used)} chunks the answer drew on come from sources "
            "that changed since the index was built or are older than the freshness limit"
        )
        return Assessment(sample, FRESHNESS, scores, evidence)
    if "groundedness" in scores and scores["groundedness"] < limits.grounded:
        evidence["reason"] = (
            f"relevant context was retrieved ({len(relevant)} chunks) but only "
            f"{scores['groundedness']:.0%} of the answer's statements are supported by it"
        )
        return Assessment(sample, INTEGRATION, scores, evidence)
    if scores["answer_relevance"] < limits.answers:
        evidence["reason"] = (
            f"the answer's relevance to the query is {scores['answer_relevance']}, under "
            f"{limits.answers}, with relevant, current context and a grounded answer"
        )
        return Assessment(sample, UNKNOWN, scores, evidence)
    return Assessment(sample, OK, scores, evidence)


def _groundedness(
    sample: RagSample,
    limits: Thresholds,
    claims: list[str],
    chunks: Sequence[RetrievedChunk],
    context_vectors: Any,
    claim_vectors: Any,
) -> tuple[float, list[str]]:
    """The share of supported statements, and the unsupported ones."""
    verdicts = _judged(sample, claims, chunks) if sample.judge is not None else None
    if verdicts is None:
        numbers = set(_NUMBER.findall(" ".join(c.text for c in chunks)))
        nearest = (claim_vectors @ context_vectors.T).max(axis=1)
        verdicts = [
            bool(near >= limits.supported) and set(_NUMBER.findall(claim)) <= numbers
            for claim, near in zip(claims, nearest, strict=True)
        ]
    unsupported = [claim for claim, ok in zip(claims, verdicts, strict=True) if not ok]
    return (len(claims) - len(unsupported)) / len(claims), unsupported


def _judged(
    sample: RagSample, claims: list[str], chunks: Sequence[RetrievedChunk]
) -> list[bool] | None:
    """The judge's verdict on each statement, or None when it gave none (no client, an
    error, an answer that is not verdicts): the embedded test stands in, rather than no
    score."""
    assert sample.judge is not None
    try:
        return supported(sample.judge, claims, [c.text for c in chunks])
    except Exception as exc:  # no verdicts (refused, unreachable, not JSON): fall back
        log.warning("judge %s gave no verdicts on %s: %s", sample.judge, sample.request_id, exc)
        return None


def _citations(answer: str, chunks: Sequence[RetrievedChunk]) -> tuple[float | None, set[str]]:
    """Citation coverage (None when the answer cites nothing) and the chunk ids it cites,
    by id or by 1-based rank."""
    by_key = {str(rank): c.chunk_id for rank, c in enumerate(chunks, 1)}
    by_key.update((c.chunk_id, c.chunk_id) for c in chunks)  # an id wins over a rank
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", answer) if any(ch.isalnum() for ch in s)]
    cited: set[str] = set()
    citing = 0
    for sentence in sentences:
        found = {by_key[key] for key in _CITED.findall(sentence) if key in by_key}
        citing += bool(found)
        cited |= found
    if not cited or not sentences:
        return None, cited
    return citing / len(sentences), cited


def _stale(used: Sequence[RetrievedChunk], sample: RagSample) -> list[dict[str, Any]]:
    """The used chunks whose source changed after the index was built, or whose text is
    older than the freshness limit at the time of the call."""
    found = []
    for chunk in used:
        if chunk.source_stale:
            found.append({"chunk": chunk.chunk_id, "source": chunk.source, "why": "changed"})
            continue
        if sample.freshness_limit is None or chunk.source_modified is None:
            continue
        age = as_utc(sample.time) - as_utc(datetime.fromisoformat(chunk.source_modified))
        if age > sample.freshness_limit:
            found.append(
                {
                    "chunk": chunk.chunk_id,
                    "source": chunk.source,
                    "why": f"{age.days} days old, over the limit of {sample.freshness_limit.days}",
                }
            )
    return found
