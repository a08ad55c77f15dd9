"""One answer, token by token: sampling, penalties, grammar, text, stop strings, limits.

What a chat API promises about the text is kept here, so that it holds streamed or not:

* the text is decoded incrementally: a UTF-8 character split over tokens comes out whole,
  once its last byte is generated;
* text that may be the start of a stop string is held back until it is not; a stop string
  ends the answer (finish ``stop``) and is not part of it;
* the stop flag is checked before every token, so a caller that went away frees the model
  within one token's time (12-20 ms);
* the answer ends with finish ``stop`` at an end-of-turn token, a stop string or the end of
  its grammar, and ``length`` at ``max_tokens``; every sampled token but an end-of-turn one
  is counted in :attr:`Generation.tokens` (OpenAI's ``completion_tokens``).
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from seamline.providers.smollm.call import Sampling, Stopped
from seamline.providers.smollm.decoder import Decoder
from seamline.providers.smollm.grammar import Constraint
from seamline.providers.smollm.tokenizer import GGUFTokenizer

F32 = npt.NDArray[np.float32]
# top_p looks for its nucleus among this many most likely tokens first: an argpartition and
# a sort of 64 take ~0.2 ms, against ~2 ms to sort the 49152 logits; the full sort runs
# only when these 64 hold less than top_p of the probability.
NUCLEUS_FIRST = 64


@dataclass(frozen=True)
class Logprob:
    """A generated token's log probability under the model, and the ``top`` most likely
    tokens at its place. Taken from the model's own distribution, before penalties,
    temperature, top_p and grammar (vLLM's default, ``raw_logprobs``): what the model thinks
    of the token, whatever the sampler made of it."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Piece:
    """Text to add to the answer, with the log probabilities of the tokens generated since
    the last piece (when asked for); ``finish`` is set on the last piece only."""

    text: str
    logprobs: tuple[Logprob, ...] = ()
    finish: str | None = None


class Generation:
    """Iterate to generate one answer after a prompt whose logits are ``logits`` (the
    decoder holds the prompt). ``answer`` numbers the answers of one request: each gets its
    own random stream from one seed, so that ``n`` answers differ yet are reproducible."""

    def __init__(
        self,
        decoder: Decoder,
        tokenizer: GGUFTokenizer,
        logits: F32,
        sampling: Sampling,
        *,
        max_tokens: int,
        stop: list[str],
        constraint: Constraint | None,
        top_logprobs: int | None,
        stopped: threading.Event,
        answer: int,
    ) -> None:
        self._decoder = decoder
        self._tokenizer = tokenizer
        self._logits = logits
        self._sampling = sampling
        self._max_tokens = max_tokens
        self._stop = [s for s in stop if s]
        self._constraint = constraint
        self._top_logprobs = top_logprobs
        self._stopped = stopped
        seed = sampling.seed
        self._random = np.random.default_rng(None if seed is None else [seed % 2**64, answer])
        self.tokens = 0  # tokens generated so far

    def __iter__(self) -> Iterator[Piece]:
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        counts: dict[int, int] = {}
        held = ""  # decoded text not yet given out: it may begin a stop string
        logprobs: list[Logprob] = []
        logits, token = self._logits, -1
        for _ in range(self._max_tokens):
            if self._stopped.is_set():
                raise Stopped
            if token >= 0:
                logits = self._decoder.forward([token])
            token = self._next(logits, counts)
            if token in self._tokenizer.end_of_turn:
                yield Piece(held + utf8.decode(b"", final=True), tuple(logprobs), "stop")
                return
            if self._constraint is not None:
                self._constraint.accept(token)
            self.tokens += 1
            counts[token] = counts.get(token, 0) + 1
            if self._top_logprobs is not None:
                logprobs.append(_logprob(logits, token, self._top_logprobs))
            if token not in self._tokenizer.control:  # llama.cpp prints them as nothing too
                held += utf8.decode(self._tokenizer.token_bytes(token))
            ends = [i for i in (held.find(s) for s in self._stop) if i >= 0]
            if ends:
                yield Piece(held[: min(ends)], tuple(logprobs), "stop")
                return
            if self._constraint is not None and self._constraint.complete:
                yield Piece(held + utf8.decode(b"", final=True), tuple(logprobs), "stop")
                return
            keep = _stop_prefix(held, self._stop)
            if len(held) > keep:
                yield Piece(held[: len(held) - keep], tuple(logprobs))
                held, logprobs = held[len(held) - keep :], []
        yield Piece(held + utf8.decode(b"", final=True), tuple(logprobs), "length")

    def _next(self, logits: F32, counts: dict[int, int]) -> int:
        """The next token: penalties, then the grammar, then temperature and top_p."""
        scores = logits.copy()
        s = self._sampling
        if counts and (s.presence_penalty or s.frequency_penalty):
            ids = np.fromiter(counts, dtype=np.int64, count=len(counts))
            times = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            scores[ids] -= s.presence_penalty + s.frequency_penalty * times
        if self._constraint is not None:
            self._constraint.restrict(scores)
        return _sample(scores, s.temperature, s.top_p, self._random)


def _sample(scores: F32, temperature: float, top_p: float, random: np.random.Generator) -> int:
    """Argmax at temperature 0; else a draw from softmax(scores / temperature) cut to the
    smallest set of most likely tokens that holds ``top_p`` of the probability."""
    if temperature <= 0:
        return int(np.argmax(scores))
    z = scores.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p >= 1.0:
        return _draw(p, random)
    order = np.argpartition(-p, NUCLEUS_FIRST)[:NUCLEUS_FIRST]
    order = order[np.argsort(-p[order])]
    if p[order].sum() < top_p:
        order = np.argsort(-p)
    cut = min(int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1, len(order))
    return int(order[_draw(p[order[:cut]], random)])


def _draw(p: npt.NDArray[np.float64], random: np.random.Generator) -> int:
    """An index drawn with probabilities proportional to ``p`` (zeros never drawn)."""
    cumulative = np.cumsum(p)
    drawn = int(np.searchsorted(cumulative, random.random() * cumulative[-1], side="right"))
    return min(drawn, len(p) - 1)


def _logprob(logits: F32, token: int, top: int) -> Logprob:
    """``token``'s log-softmax under ``logits``, and the ``top`` best."""
    z = logits.astype(np.float64)
    normalised = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    best: list[tuple[int, float]] = []
    if top:
        ids = np.argpartition(-normalised, top)[:top]
        best = [(int(i), float(normalised[i])) for i in ids[np.argsort(-normalised[ids])]]
    return Logprob(token, float(normalised[token]), tuple(best))


def _stop_prefix(text: str, stops: list[str]) -> int:
    """The length of the longest end of ``text`` that begins a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
