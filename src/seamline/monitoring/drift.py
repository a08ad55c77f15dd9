"""Semantic drift: do this window's calls ask about other things than the reference
window's, per prompt and use case; how sure is that; and which topics grew or shrank.

**The test.** A kernel two-sample test on the calls' MiniLM vectors: the unbiased squared
maximum mean discrepancy (MMD², Gretton et al. 2012) with a Gaussian kernel whose width is
the median distance between the pooled vectors, and its p-value from a permutation test
(the windows' labels shuffled up to ``permutations`` times, a batch at a time as one matrix
product, stopping early once the p-value is clearly large).
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
PERMUTATIONS = 500  # at most; see mmd_test
PERMUTATION_BATCH = 100
STOP_AFTER = 10  # permutations at or above the observed MMD² that settle the p-value
WIDTH_PAIRS = 20_000
ALPHA = 0.05
EXAMPLES = 3
RESTARTS = 1  # k-means seedings per report group (greedy seeding is steady enough)
MAX_TOPICS = 12
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
    """The MMD² of two samples of unit vectors and its permutation p-value.

    The permutations run in batches and stop once ``STOP_AFTER`` of them have reached the
    observed MMD² (Besag and Clifford's sequential p-value, 1991: still a valid p-value):
    a window like its reference, the usual case, is settled after a hundred or so, and
    only a shift that may be real pays for all of them."""
    rng = np.random.default_rng(seed)
    x = _sample(np.asarray(reference, np.float32), rng)
    y = _sample(np.asarray(current, np.float32), rng)
    pooled = np.vstack([x, y])
    total = len(pooled)
    kernel = pooled @ pooled.T  # cosines; squared distances are 2 - 2 cos (unit vectors)
    # The kernel's width: the median squared distance over a sample of the pairs (a
    # heuristic that needs no more; it depends on the pooled calls only, so the test stays
    # exact).
    pairs = rng.integers(0, total, (2, WIDTH_PAIRS))
    pairs = pairs[:, pairs[0] != pairs[1]]
    width = float(np.median(2.0 - 2.0 * kernel[pairs[0], pairs[1]])) or 1.0
    # exp(-(2 - 2 cos) / width), in place: a million-entry matrix is not copied three times.
    kernel *= np.float32(2.0 / width)
    kernel -= np.float32(2.0 / width)
    np.minimum(kernel, 0.0, out=kernel)
    np.exp(kernel, out=kernel)
    np.fill_diagonal(kernel, 0.0)
    m, n = len(x), len(y)
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    everything = float(row_sums.sum())

    def statistics(labels: Any) -> Any:
        """MMD² for each row of ``labels`` (1 for the calls taken as the reference)."""
        inside = labels @ kernel  # float32: the products are of at most 1,000 terms
        same_x = np.einsum("ij,ij->i", inside, labels, dtype=np.float64)
        across = labels.astype(np.float64) @ row_sums - same_x
        same_y = everything - same_x - 2.0 * across  # all pairs = xx + yy + 2 xy
        return same_x / (m * (m - 1)) + same_y / (n * (n - 1)) - 2.0 * across / (m * n)

    observed_split = np.zeros((1, total), np.float32)
    observed_split[0, :m] = 1.0
    observed = float(statistics(observed_split)[0])
    exceed = done = 0
    while done < permutations and exceed < STOP_AFTER:
        batch = min(PERMUTATION_BATCH, permutations - done)
        labels = rng.permuted(np.repeat(observed_split, batch, axis=0), axis=1)
        exceed += int((statistics(labels) >= observed).sum())
        done += batch
    p_value = exceed / done if exceed >= STOP_AFTER else (1 + exceed) / (1 + done)
    return TwoSampleTest(observed, p_value, m, n, done)


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
    # Fine enough that a new topic gets clusters of its own (with fewer, k-means as often
    # merges it into a neighbour as not); topics of one theme read alike in the report.
    k = int(min(MAX_TOPICS, max(2, round(math.sqrt(len(pooled) / 4)))))
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


def kmeans(
    vectors: Any, k: int, seed: int = 0, rounds: int = 25, restarts: int = RESTARTS
) -> tuple[Any, Any]:
    """Spherical k-means with k-means++ seeding: assignments and unit centres. The best of
    ``restarts`` seedings (the tightest clusters): one seeding alone now and then splits a
    topic in two and merges two others, and which one it does hangs on the rows' order."""
    rng = np.random.default_rng(seed)
    best: tuple[float, Any, Any] | None = None
    for _ in range(restarts):
        assignment, centres = _kmeans_once(vectors, k, rng, rounds)
        cohesion = float(np.einsum("ij,ij->", vectors, centres[assignment]))
        if best is None or cohesion > best[0]:
            best = (cohesion, assignment, centres)
    assert best is not None
    return best[1], best[2]


def _kmeans_once(vectors: Any, k: int, rng: np.random.Generator, rounds: int) -> tuple[Any, Any]:
    # Greedy k-means++ (as scikit-learn seeds): of a few candidates drawn by distance, the
    # one that leaves the points closest to a centre.
    trials = 2 + int(math.log(k))
    centres = [vectors[rng.integers(len(vectors))]]
    distance = np.maximum(1.0 - vectors @ centres[0], 0.0).astype(np.float64)
    for _ in range(1, k):
        total = float(distance.sum())
        if not total:
            centres.append(vectors[rng.integers(len(vectors))])
            continue
        candidates = rng.choice(len(vectors), trials, p=distance / total)
        after = np.minimum(distance, np.maximum(1.0 - vectors @ vectors[candidates].T, 0.0).T)
        best = int(after.sum(axis=1).argmin())
        centres.append(vectors[candidates[best]])
        distance = after[best]
    matrix = np.array(centres)
    assignment = np.full(len(vectors), -1)
    for _ in range(rounds):
        moved = (vectors @ matrix.T).argmax(axis=1)
        if np.array_equal(moved, assignment):
            break
        assignment = moved
        members = np.zeros((k, len(vectors)), dtype=vectors.dtype)
        members[assignment, np.arange(len(vectors))] = 1.0
        sums = members @ vectors  # every cluster's sum in one product
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        filled = norms[:, 0] > 0  # an emptied cluster keeps its centre
        matrix[filled] = sums[filled] / norms[filled]
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
