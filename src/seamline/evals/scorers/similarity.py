"""Similarity of the answer to the reference: the cosine of their embedded MiniLM vectors
(``local-minilm``'s), from 0 (unrelated, or opposed) to 1.

Paraphrases score high where ``exact`` and ``contains`` see nothing in common; a score is a
similarity, not a verdict: a gate sets the ``min`` it wants.
"""

from __future__ import annotations

from seamline.evals.scoring import Answer, Case, Score, ScoreError, reference_of
from seamline.providers.local_vectors import LocalModelMissing, embed


def cosine(first: str, second: str) -> float:
    """The cosine of two texts' MiniLM embeddings (``local-minilm``'s vectors)."""
    try:
        vectors = embed([first, second])
    except LocalModelMissing as exc:
        raise ScoreError(str(exc)) from None
    return float(vectors[0] @ vectors[1])


class Similarity:
    name = "similarity"

    def score(self, case: Case, answer: Answer) -> Score:
        value = cosine(answer.text, reference_of(case, self.name))
        return Score(max(0.0, min(1.0, value)), f"cosine {value:.3f} to the reference")
