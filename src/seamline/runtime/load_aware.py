"""Scoring replicas on their live load and on which of them holds a call's prompt prefix.

The scorers follow llm-d's scheduler (FACTS.md): each replica gets a weighted sum of a queue
score, a KV-cache score (1 - usage) and a prefix score (the share of the call's prompt prefix
last sent there), and the best sum wins. Three departures, each measured in
``bench/routing.py`` (without them load-aware routing lost to round-robin there):

- the queue counts requests running and waiting at the last scrape *plus* the calls this
  gateway started there since minus those that ended (a stream counts until it ends), so a
  burst inside one scrape interval spreads over the replicas instead of piling onto the one
  that looked idle a second ago;
- only replicas whose queue is within a slack of the shortest are scored (the balance check
  SGLang's router makes before routing on its cache tree): with llm-d's weights a prefix
  share outweighs any queue score, and the replica holding a popular system prompt took
  every call that used it;
- the queue score is the distance below the busiest scored replica, relative to it
  (``(max - q) / max``), not min-max scaled: 10 requests against 11 is not 1 against 0.

Prefix affinity is kept by the gateway, not read from the engines (no engine says which
prefixes it holds): the prompt is cut into fixed-size character chunks, each hashed with
the ones before it (as the vLLM production-stack router's trie over character chunks, but
512 characters rather than 128: a quarter of the hashing and bookkeeping per call, measured
in ``bench/routing.py``, for affinity at ~128-token steps), and each chunk hash remembers the
replica it was last sent to, in a bounded LRU.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from seamline.telemetry.tokens import message_text


@dataclass(frozen=True)
class LoadWeights:
    queue: float = 2.0
    kv_cache: float = 2.0
    prefix: float = 3.0
    slack: float = 2.0  # requests a replica's queue may exceed the shortest by, and be scored
    relative_slack: float = 0.25  # or this share of the shortest, when larger


class PrefixAffinity:
    def __init__(self, chunk_chars: int = 512, max_chunks: int = 16, capacity: int = 200_000):
        self.chunk_chars = chunk_chars
        self.max_chunks = max_chunks
        self.capacity = capacity
        self._owners: OrderedDict[int, str] = OrderedDict()

    def chain(self, messages: Iterable[Any], model: str = "") -> list[int]:
        """The chained hashes of the prompt's leading chunks (a partial last chunk is left
        out: engines cache whole blocks only), seeded with the model: one system prompt
        sent to two models is held by a replica of each."""
        text = _prompt_text(messages, self.chunk_chars * self.max_chunks)
        size = self.chunk_chars
        hashes: list[int] = []
        previous = hash(model)
        for start in range(0, len(text) - size + 1, size):
            previous = hash((previous, text[start : start + size]))
            hashes.append(previous)
        return hashes

    def matches(self, chain: Sequence[int]) -> dict[str, int]:
        """Per replica, how many of the chain's chunks were last sent there, counted up to
        the first chunk sent nowhere (a prefix cache holds only unbroken prefixes)."""
        found: dict[str, int] = {}
        owners = self._owners
        for key in chain:
            owner = owners.get(key)
            if owner is None:
                break
            found[owner] = found.get(owner, 0) + 1
        return found

    def sent(self, chain: Sequence[int], replica: str) -> None:
        owners = self._owners
        for key in chain:
            owners[key] = replica
            owners.move_to_end(key)
        while len(owners) > self.capacity:
            owners.popitem(last=False)


def best_replica(
    queues: Sequence[float],
    kv_usages: Sequence[float | None],
    prefix_shares: Sequence[float] | None,
    weights: LoadWeights,
) -> int:
    """The index of the replica to take the call (the first on ties).

    Only replicas whose queue is within ``weights.slack`` of the shortest are scored (the
    balance check SGLang's router makes before it routes on cache): a prefix hit saves one
    prompt's prefill, a longer queue delays the call by whole requests, so no prefix share
    may pull a burst onto one replica. Among those, the weighted sum of the queue score,
    the KV-cache score and the prefix score wins. ``prefix_shares`` None: no replica holds
    any of the prompt. A replica that states no KV usage scores as half full."""
    shortest = min(queues)
    limit = shortest + max(weights.slack, weights.relative_slack * shortest)
    eligible = [index for index, queue in enumerate(queues) if queue <= limit]
    busiest = max(queues[index] for index in eligible)
    queue_weight = weights.queue / busiest if busiest > 0 else 0.0
    best, best_score = eligible[0], float("-inf")
    for index in eligible:
        usage = kv_usages[index]
        score = queue_weight * (busiest - queues[index]) - weights.kv_cache * (
            0.5 if usage is None else usage
        )
        if prefix_shares is not None:
            score += weights.prefix * prefix_shares[index]
        if score > best_score:
            best, best_score = index, score
    return best


def _prompt_text(messages: Iterable[Any], limit: int) -> str:
    """The messages as one string, role marks included, up to ``limit`` characters: only
    the leading part can be a shared prefix worth routing on."""
    parts: list[str] = []
    size = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        piece = f"<{message.get('role')}>{message_text(message.get('content'))}\n"
        parts.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return "".join(parts)[:limit]
