"""Semantic drift: do this window's calls ask about other things than the reference
window's, per prompt and use case; how sure is that; and which topics grew or shrank.

**The test.** A kernel two-sample test on the calls' MiniLM vectors: the unbiased squared
maximum mean discrepancy (MMD², Gretton et al. 2012) with a Gaussian kernel whose width is
the median distance between the pooled vectors, and its p-value from a permutation test
(the windows' labels shuffled ``permutations`` times, all at once as one matrix product).
MMD sees any difference between the two distributions, not only a moved mean (the
distance between window means that drift views used to plot, with no test behind it).
Windows are sampled down to ``MAX_PER_WINDOW`` calls; a window under ``MIN_PER_WINDOW``
is reported as too small to test, with no p-value. Across the groups of one report the
p-values are Holm-adjusted, so a report over many prompts does not cry wolf.

**The topics.** The two windows' calls pooled and clustered (spherical k-means); for each
topic, its share of each window, so the report says what grew and what shrank (the
total-variation distance between the two topic mixes is the report's effect size: the
share of calls that moved between topics). A topic is named by its most distinctive words
(log-odds against all calls) and shown with example inputs, where the project logs content.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_PER_WINDOW = 30
MAX_PER_WINDOW = 500
PERMUTATIONS = 500
ALPHA = 0.05
EXAMPLES = 3
_WORD = re.compile(r"[a-z][a-z0-9']{2,}")
_STOPWORDS = frozenset(  # words that name no topic (only what _WORD can find is listed)
    _WORD.findall(
        """the and for are but not you your with this that have from what when where which
        who how can could would should will was were has had does did our their there here
        they them into about than then also just any all some more most very too its it's
        i'm please thanks thank hello"""
    )
)


@dataclass(frozen=True)
class TwoSampleTest:
    mmd2: float
    p_value: float
    reference: int  # calls tested from each window
    current: int
    permutations: int


def mmd_test(
    reference: Any,
    current: Any,
    *,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> TwoSampleTest:
    """The MMD² of two samples of unit vectors and its permutation p-value."""
    rng = np.random.default_rng(seed)
    x = _sample(np.asarray(reference, np.float32), rng)
    y = _sample(np.asarray(current, np.float32), rng)
    pooled = np.vstack([x, y])
    squared = np.maximum(2.0 - 2.0 * (pooled @ pooled.T), 0.0)
    off_diagonal = squared[~np.eye(len(pooled), dtype=bool)]
    width = float(np.median(off_diagonal)) or 1.0
    kernel = np.exp(-squared / width)  # float64: the sums are of 250,000 terms
    np.fill_diagonal(kernel, 0.0)
    m, n = len(x), len(y)
    labels = np.zeros((permutations + 1, m + n))
    labels[0, :m] = 1.0  # the observed split first
    for row in labels[1:]:
        row[rng.permutation(m + n)[:m]] = 1.0
    inside = labels @ kernel
    same_x = (inside * labels).sum(axis=1)
    across = (inside * (1.0 - labels)).sum(axis=1)
    same_y = float(kernel.sum()) - same_x - 2.0 * across  # all pairs = xx + yy + 2 xy
    mmd2 = same_x / (m * (m - 1)) + same_y / (n * (n - 1)) - 2.0 * across / (m * n)
    observed = float(mmd2[0])
    exceed = int((mmd2[1:] >= observed).sum())
    return TwoSampleTest(observed, (1 + exceed) / (1 + permutations), m, n, permutations)


def _sample(vectors: Any, rng: np.random.Generator) -> Any:
    if len(vectors) <= MAX_PER_WINDOW:
        return vectors
    return vectors[rng.choice(len(vectors), MAX_PER_WINDOW, replace=False)]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: each p-value's family-wise counterpart."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Topic:
    reference: int
    current: int
    terms: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def shares(self, totals: tuple[int, int]) -> tuple[float, float]:
        return self.reference / max(totals[0], 1), self.current / max(totals[1], 1)

    def as_record(self, totals: tuple[int, int]) -> dict[str, Any]:
        before, now = self.shares(totals)
        return {
            "terms": self.terms,
            "reference_share": round(before, 4),
            "current_share": round(now, 4),
            "change": round(now - before, 4),
            "examples": self.examples,
        }


def topics(
    reference: Any,
    current: Any,
    texts: Mapping[int, str],
    *,
    seed: int = 0,
) -> list[Topic]:
    """The pooled calls' topics (spherical k-means), each with its count in each window,
    its distinctive words and examples from the current window. ``texts``: what is logged
    of the pooled calls, by row (reference rows first)."""
    pooled = np.vstack([reference, current]).astype(np.float32)
    k = int(min(10, max(2, round(math.sqrt(len(pooled) / 10)))))
    assignment, centres = kmeans(pooled, k, seed)
    words = {row: words_of(text) for row, text in texts.items()}
    everywhere: Counter[str] = Counter(w for found in words.values() for w in found)
    found = []
    for cluster in range(k):
        rows = np.flatnonzero(assignment == cluster)
        if not len(rows):
            continue
        topic = Topic(int((rows < len(reference)).sum()), int((rows >= len(reference)).sum()))
        here: Counter[str] = Counter(w for r in rows for w in words.get(int(r), ()))
        topic.terms = distinctive(here, everywhere)
        nearest = rows[np.argsort(-(pooled[rows] @ centres[cluster]))]
        topic.examples = [
            texts[int(r)][:160] for r in nearest if r >= len(reference) and int(r) in texts
        ][:EXAMPLES]
        found.append(topic)
    return found


def topic_shift(found: Sequence[Topic]) -> float:
    """The total-variation distance between the windows' topic mixes (0: the same mix)."""
    totals = (sum(t.reference for t in found), sum(t.current for t in found))
    return 0.5 * sum(abs(now - before) for before, now in (t.shares(totals) for t in found))


def kmeans(vectors: Any, k: int, seed: int = 0, rounds: int = 25) -> tuple[Any, Any]:
    """Spherical k-means with k-means++ seeding: assignments and unit centres."""
    rng = np.random.default_rng(seed)
    centres = [vectors[rng.integers(len(vectors))]]
    for _ in range(1, k):
        distance = np.maximum(1.0 - (vectors @ np.array(centres).T).max(axis=1), 0.0)
        total = float(distance.sum())
        pick = rng.choice(len(vectors), p=distance / total) if total else rng.integers(len(vectors))
        centres.append(vectors[pick])
    matrix = np.array(centres)
    assignment = np.zeros(len(vectors), dtype=int)
    for _ in range(rounds):
        assignment = (vectors @ matrix.T).argmax(axis=1)
        for cluster in range(k):
            members = vectors[assignment == cluster]
            if len(members):
                centre = members.sum(axis=0)
                matrix[cluster] = centre / (np.linalg.norm(centre) or 1.0)
    return assignment, matrix


def words_of(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def distinctive(here: Counter[str], everywhere: Counter[str], top: int = 3) -> list[str]:
    """The words most over-represented in a topic (smoothed log-odds against all calls)."""
    if not here:
        return []
    size_here, size_all = sum(here.values()), sum(everywhere.values())
    vocabulary = len(everywhere)

    def score(word: str) -> float:
        inside = (here[word] + 0.5) / (size_here + vocabulary)
        overall = (everywhere[word] + 0.5) / (size_all + vocabulary)
        return math.log(inside / overall) * math.sqrt(here[word])

    return sorted(here, key=lambda w: (-score(w), w))[:top]
