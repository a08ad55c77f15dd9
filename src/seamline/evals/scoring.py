"""What a scorer is given and returns, the one protocol every scorer implements, and how an
eval set's YAML names one.

A scorer reads one case (its inputs, reference answer, reference contexts, per-case
criteria) and the answer a model gave, and returns a :class:`Score` from 0 to 1, with a
reason. A case it cannot score (no reference for a reference-needing scorer, no schema to
check against, a judge that answered nonsense) raises :class:`ScoreError`: the runner
records the case as errored with that reason, counted apart, never as a silent 0, a NaN in
a mean or a pass. An answer that is wrong (not JSON, no number in it) scores 0.

Scorers are built from a mapping (``{"name": "contains", "value": "Paris"}``): the built-in
ones by name, others from the entry-point group ``seamline.scorers`` (a callable taking the
mapping's other keys). The same scorers score live traffic (online quality, RAG
observability): nothing here knows about runs.

```python
scorer = build_scorer({"name": "regex", "pattern": r"\\b\\d{4}\\b"})
scorer.score(Case(reference="1969"), Answer("It happened in 1969.")).value  # 1.0
```
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

ENTRY_POINT_GROUP = "seamline.scorers"
# Built in: module and factory, imported on first use (MiniLM only when a scorer embeds).
BUILT_IN: dict[str, tuple[str, str]] = {
    **{
        name: ("seamline.evals.scorers.deterministic", factory)
        for name, factory in (
            ("exact", "Exact"),
            ("contains", "Contains"),
            ("regex", "Regex"),
            ("json_valid", "JsonValid"),
            ("json_schema", "JsonSchema"),
            ("json_field", "JsonField"),
            ("numeric", "Numeric"),
            ("length", "Length"),
            ("cost", "CostBudget"),
            ("latency", "LatencyBudget"),
            ("citation_format", "CitationFormat"),
            ("citation_coverage", "CitationCoverage"),
        )
    },
    "similarity": ("seamline.evals.scorers.similarity", "Similarity"),
    "faithfulness": ("seamline.evals.scorers.rag", "Faithfulness"),
    "context_recall": ("seamline.evals.scorers.rag", "ContextRecall"),
    "context_precision": ("seamline.evals.scorers.rag", "ContextPrecision"),
    "answer_relevance": ("seamline.evals.scorers.rag", "AnswerRelevance"),
    "pairwise": ("seamline.evals.scorers.pairwise", "Pairwise"),
    "judge": ("seamline.evals.scorers.rubric", "Rubric"),
    "safety": ("seamline.evals.scorers.safety", "Safety"),
}


@dataclass(frozen=True)
class Case:
    """One eval case as scorers see it."""

    id: str = ""
    variables: Mapping[str, Any] = field(default_factory=dict)
    messages: tuple[Mapping[str, Any], ...] = ()
    reference: str | None = None  # the answer a good model would give
    contexts: tuple[str, ...] = ()  # the passages a good answer rests on (RAG)
    # Per-case settings for scorers, by scorer name: {"contains": {"value": "Paris"}}.
    criteria: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    # In a run against a baseline: the baseline version's answer to this case (pairwise).
    baseline_answer: str | None = None


@dataclass(frozen=True)
class Answer:
    """What the model gave for a case, with what it cost."""

    text: str
    cost_usd: float | None = None
    latency_ms: float | None = None
    completion_tokens: int | None = None
    contexts: tuple[str, ...] = ()  # what retrieval gave the model, when it did


@dataclass(frozen=True)
class Score:
    value: float  # 0-1, higher is better
    reason: str = ""


class ScoreError(Exception):
    """The case cannot be scored by this scorer; the message says why."""


class Scorer(Protocol):
    name: str

    def score(self, case: Case, answer: Answer) -> Score: ...


class UnknownScorer(ValueError):
    pass


@functools.cache
def _registered() -> dict[str, Callable[[], Any]]:
    return {ep.name: ep.load for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_scorers() -> frozenset[str]:
    return frozenset(BUILT_IN) | frozenset(_registered())


def build_scorer(spec: Mapping[str, Any]) -> Scorer:
    """The scorer ``spec`` names, configured with its other keys. :class:`UnknownScorer` for
    a name nothing provides; ValueError (with the scorer's name) for bad settings."""
    options = dict(spec)
    name = options.pop("name", None)
    if not isinstance(name, str) or name not in known_scorers():
        known = ", ".join(sorted(known_scorers()))
        raise UnknownScorer(f"unknown scorer {name!r} (known: {known})")
    if name in BUILT_IN:
        module, attribute = BUILT_IN[name]
        factory = getattr(importlib.import_module(module), attribute)
    else:
        factory = _registered()[name]()
    try:
        built: Scorer = factory(**options)
    except TypeError as error:  # an option it does not take, or one it needs
        raise ValueError(f"scorer {name!r}: {error}") from None
    return built


def setting(case: Case, scorer: str, key: str, default: Any) -> Any:
    """A scorer's setting for ``case``: the case's own criteria first, then ``default``."""
    return (case.criteria.get(scorer) or {}).get(key, default)


def question_of(case: Case, scorer: str) -> str:
    """What the case asks: its ``question`` variable, else its last user message."""
    question = case.variables.get("question") or next(
        (m.get("content") for m in reversed(case.messages) if m.get("role") == "user"), None
    )
    if not isinstance(question, str) or not question.strip():
        raise ScoreError(f"{scorer}: case {case.id!r} has no question")
    return question


def reference_of(case: Case, scorer: str) -> str:
    if case.reference is None:
        raise ScoreError(f"{scorer} needs a reference answer and case {case.id!r} has none")
    return case.reference
