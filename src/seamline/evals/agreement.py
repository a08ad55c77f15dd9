"""How far a judge can be trusted: its agreement with human labels, with intervals.

* Cohen's kappa for labels (pass/fail, 1-5 as categories): agreement beyond what two raters
  with the same label frequencies would reach by chance; 1 is perfect, 0 is chance.
* Spearman's rank correlation for scores: do judge and humans order the items alike.

Both with a percentile-bootstrap interval over items (seeded, as every interval in
:mod:`seamline.evals.stats`): 60 labelled items give a kappa of 0.7 an interval about 0.3
wide, which is what a gate asking for "kappa >= 0.6" needs to know.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np

from seamline.evals.stats import CONFIDENCE, RESAMPLES, SEED, Interval


def cohen_kappa(judge: Sequence[Hashable], human: Sequence[Hashable]) -> float:
    """Kappa of two raters over the same items. 1.0 when both give every item one label
    they share (no disagreement to measure)."""
    _same_items(judge, human)
    labels = sorted(set(judge) | set(human), key=repr)
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for a, b in zip(judge, human, strict=True):
        table[index[a], index[b]] += 1
    n = table.sum()
    observed = np.trace(table) / n
    expected = float((table.sum(axis=0) * table.sum(axis=1)).sum() / n**2)
    if expected >= 1.0:
        return 1.0
    return float((observed - expected) / (1 - expected))


def spearman(judge: Sequence[float], human: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the ranks (ties share their mean rank);
    0.0 when either side gives every item the same score."""
    _same_items(judge, human)
    a, b = _ranks(np.asarray(judge, float)), _ranks(np.asarray(human, float))
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def with_interval(
    statistic: Callable[[Sequence[object], Sequence[object]], float],
    judge: Sequence[object],
    human: Sequence[object],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES // 5,
    seed: int = SEED,
) -> Interval:
    """``statistic`` over the items, with a bootstrap interval (items resampled together)."""
    _same_items(judge, human)
    rng = np.random.default_rng(seed)
    n = len(judge)
    values = []
    for _ in range(resamples):
        picks = rng.integers(0, n, n)
        values.append(statistic([judge[i] for i in picks], [human[i] for i in picks]))
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return Interval(statistic(judge, human), float(low), float(high), n, confidence)


def _same_items(judge: Sequence[object], human: Sequence[object]) -> None:
    if len(judge) != len(human) or not judge:
        raise ValueError(
            f"agreement needs the same items rated twice: {len(judge)} and {len(human)}"
        )


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # ties: their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks
