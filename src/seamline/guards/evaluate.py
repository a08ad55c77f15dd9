"""How well a guard policy catches prompt injection on a labelled set: ``seamline guard eval``.

Each text is run through the policy as the gateway would run it (a user message, or untrusted
content for a kind starting with ``indirect``) and yields two things: the policy's own
decision (would it block?) and a score (the highest injection finding, 0 when none). The
decision gives precision, recall, F1 and the false-positive rate *as deployed*; the score
gives what a threshold could reach: ROC AUC and the best recall at 1% and 2% false
positives, the operating points the guardrail targets are stated at (issue 13).

The metrics are a few lines of plain Python each (no numpy: it is not a core dependency), and
undefined values are ``None`` (``null`` in JSON, ``-`` in tables) rather than a 0 that would
read as a measurement: precision with nothing flagged, recall with no injections, the
false-positive rate with no benign texts, AUC and recall-at-FPR without both classes.

```python
examples = read_dataset(Path("held-out.jsonl"))
report = evaluate(GuardEngine(default_policy()), examples)
report.overall.recall_at_2_fpr, report.kinds["indirect.email"].auc
```
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seamline.core.errors import InvalidInput
from seamline.core.jsonl import json_objects
from seamline.guards.engine import GuardEngine, Verdict

# Detectors whose findings make the injection score (``injection.rules`` and any plugin
# named ``injection.*``, such as a learned classifier).
INJECTION_PREFIX = "injection"
# A kind starting with this is text from outside the conversation (a retrieved page, an
# email, a tool result): scored as the ``untrusted`` content kind.
INDIRECT_PREFIX = "indirect"
# What the false-positive-rate operating points are, as fractions of the benign texts.
FPR_TARGETS = (0.01, 0.02)
# A fixed text checked once before timing starts, so that one-off costs of a first call
# (lazy imports and caches) do not land in the first text's latency.
WARM_UP = "Warm-up text, not part of the data set."


@dataclass(frozen=True)
class Example:
    """One labelled line of a data set."""

    text: str
    label: int  # 1: an injection, 0: benign
    kind: str | None = None  # e.g. "direct", "indirect.email"; None: only counted overall

    @property
    def untrusted(self) -> bool:
        return self.kind is not None and self.kind.startswith(INDIRECT_PREFIX)


@dataclass(frozen=True)
class Scored:
    """What the policy made of one example."""

    label: int
    score: float  # the highest injection finding's score, 0.0 when none
    blocks: bool  # any finding whose action is block, enforced or not (shadow policies too)
    latency_ms: float


@dataclass(frozen=True)
class Metrics:
    """One group's figures; ``None`` where a figure is undefined for the group."""

    n: int
    positives: int
    precision: float | None
    recall: float | None
    fpr: float | None
    f1: float | None
    auc: float | None
    recall_at_1_fpr: float | None
    recall_at_2_fpr: float | None
    latency_ms_p50: float
    latency_ms_p99: float

    def as_record(self) -> dict[str, Any]:
        """The figures rounded for reading (4 places; latencies 3, in ms)."""
        return {
            key: value if value is None or isinstance(value, int) else round(value, _places(key))
            for key, value in asdict(self).items()
        }


@dataclass(frozen=True)
class Report:
    """A policy's figures on one data set, as ``guard eval`` prints them."""

    policy: str  # name@version, as events record it
    overall: Metrics
    kinds: dict[str, Metrics]  # by kind, sorted; examples without a kind only count overall

    def as_record(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "overall": self.overall.as_record(),
            "kinds": {kind: metrics.as_record() for kind, metrics in self.kinds.items()},
        }


def read_dataset(path: Path) -> list[Example]:
    """The examples of a JSON-lines file of ``{"text", "label": 0 or 1, "kind"?}`` objects.

    Blank lines are skipped and other keys ignored. Raises :class:`NotFound` for a missing
    file and :class:`InvalidInput` naming the first bad line (not JSON, no text, a label
    other than 0 or 1, a kind that is not a string) or an empty file: a data set that is
    partly read would give figures for a different set than the one named.
    """
    examples = [_example(where, row) for where, row in json_objects(path)]
    if not examples:
        raise InvalidInput(f"{path}: no examples (an empty file)")
    return examples


def _example(where: str, row: dict[str, Any]) -> Example:
    text, label, kind = row.get("text"), row.get("label"), row.get("kind")
    if not isinstance(text, str):
        raise InvalidInput(f"{where}: missing text (a string)")
    # bool is an int in Python: true/false are refused as labels so that a typo is not read
    # as a class.
    if isinstance(label, bool) or label not in (0, 1):
        raise InvalidInput(f"{where}: label must be 1 (injection) or 0, got {label!r}")
    if kind is not None and not isinstance(kind, str):
        raise InvalidInput(f"{where}: kind must be a string, got {kind!r}")
    return Example(text, int(label), kind)


def score(engine: GuardEngine, example: Example) -> Scored:
    """Run the policy's input check on one example, timed with ``perf_counter``."""
    started = time.perf_counter()
    verdict: Verdict = (
        engine.check_input([], {"doc": example.text})
        if example.untrusted
        else engine.check_input([{"role": "user", "content": example.text}])
    )
    latency_ms = (time.perf_counter() - started) * 1000
    # every injection finding, over a rule's threshold or not: what a threshold could reach
    injection = [s for name, s in verdict.scores.items() if name.startswith(INJECTION_PREFIX)]
    return Scored(
        label=example.label,
        score=max(injection, default=0.0),
        blocks=any(a.action == "block" for a in verdict.actions),
        latency_ms=latency_ms,
    )


def evaluate(engine: GuardEngine, examples: Sequence[Example]) -> Report:
    """The policy's figures on ``examples``, overall and per kind."""
    engine.check_input([{"role": "user", "content": WARM_UP}])
    scored = [(example.kind, score(engine, example)) for example in examples]
    kinds = sorted({kind for kind, _ in scored if kind is not None})
    return Report(
        policy=engine.ref,
        overall=metrics([s for _, s in scored]),
        kinds={kind: metrics([s for k, s in scored if k == kind]) for kind in kinds},
    )


def metrics(scored: Sequence[Scored]) -> Metrics:
    """A group's figures: decision metrics, score metrics and latency percentiles."""
    labels = [s.label for s in scored]
    scores = [s.score for s in scored]
    tp = sum(1 for s in scored if s.blocks and s.label == 1)
    fp = sum(1 for s in scored if s.blocks and s.label == 0)
    positives = sum(labels)
    negatives = len(labels) - positives
    latencies = [s.latency_ms for s in scored]
    at_1, at_2 = (recall_at_fpr(labels, scores, target) for target in FPR_TARGETS)
    return Metrics(
        n=len(scored),
        positives=positives,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, positives),
        fpr=_ratio(fp, negatives),
        # 2TP / (2TP + FP + FN): the harmonic mean of precision and recall where both exist,
        # and 0 where nothing was flagged but there were injections to catch.
        f1=_ratio(2 * tp, 2 * tp + fp + (positives - tp)),
        auc=roc_auc(labels, scores),
        recall_at_1_fpr=at_1,
        recall_at_2_fpr=at_2,
        latency_ms_p50=percentile(latencies, 50),
        latency_ms_p99=percentile(latencies, 99),
    )


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """ROC AUC as the Mann-Whitney U statistic over ``n_pos * n_neg``, tied scores given the
    average of their ranks (so a tie between a positive and a negative counts one half).
    ``None`` without both classes."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        average = (start + end) / 2 + 1  # ranks are 1-based
        for i in order[start : end + 1]:
            ranks[i] = average
        start = end + 1
    rank_sum = sum(rank for rank, label in zip(ranks, labels, strict=True) if label == 1)
    u = rank_sum - positives * (positives + 1) / 2
    return u / (positives * negatives)


def recall_at_fpr(labels: Sequence[int], scores: Sequence[float], max_fpr: float) -> float | None:
    """The best recall of a threshold ``t`` (flagging every score ``>= t``) whose false-positive
    rate is at most ``max_fpr``. Tied scores are flagged together, so a negative tied with a
    positive cannot be left out; flagging nothing (recall 0) is always allowed. ``None``
    without both classes."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    pairs = sorted(zip(scores, labels, strict=True), reverse=True)
    best = tp = fp = 0
    for i, (value, label) in enumerate(pairs):
        tp += label
        fp += 1 - label
        if i + 1 < len(pairs) and pairs[i + 1][0] == value:
            continue  # the threshold ``value`` also flags the rest of this tie
        # Compared as a quotient: an FPR of exactly the target (3 of 300) rounds to the same
        # float as the target's literal (0.01), so it is allowed.
        if fp / negatives > max_fpr:
            break  # lower thresholds only add false positives
        best = tp
    return best / positives


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, interpolated linearly between the closest ranks (numpy's
    default method, so figures match a notebook's)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _places(key: str) -> int:
    return 3 if key.startswith("latency") else 4
