"""PII and secret detection cost per message, against a floor measured in the same run.

Messages of 2,000 characters: prose with the look-alikes detectors must reject (prices, dates,
times, version numbers, order ids, UUIDs, git SHAs), and the same with PII and secrets mixed in
(emails, phones, cards, IBANs, national ids, IP addresses, an AWS key id, a JWT). Each detector
scans every message; the floor is ``str.lower`` over the same texts (one C-level pass, the
least any scan of the text costs). Prints p50 and p99 per message in microseconds and the
ratio of each p50 to the floor's.

Run: ``.venv/bin/python -m bench.guard_pii [--messages 2000]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from seamline.guards.pii import PiiDetector
from seamline.guards.secrets import SecretDetector

LENGTH = 2000
WORDS = (
    "the", "order", "was", "shipped", "on", "and", "will", "arrive", "before", "noon", "please",
    "check", "invoice", "total", "for", "customer", "account", "support", "team", "release",
    "notes", "build", "deployed", "version", "server", "latency", "request", "response",
    "model", "prompt", "answer", "question", "thanks", "regards", "meeting", "tomorrow",
)  # fmt: skip
LOOK_ALIKES = (
    "$1,234.56",
    "EUR 99.90",
    "2024-03-15",
    "15/03/2024",
    "10:30",
    "v2.3.1",
    "version 10.0.19041.1",
    "order #48213907",
    "ticket 123456789012",
    "123e4567-e89b-12d3-a456-426614174000",
    "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "ISBN 978-3-16-148410-0",
    "+5% growth",
)
# Synthetic values only: documentation examples and test numbers.
PII = (
    "jane.doe@example.com",
    "+44 20 7946 0958",
    "(555) 234-5678",
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "AB 12 34 56 C",
    "12345678Z",
    "203.0.113.7",
    "2001:db8::8a2e:370:7334",
    "AKIA" + "IOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLWJ5dGVz",
)


def message(rng: random.Random, extras: tuple[str, ...]) -> str:
    """2,000 characters of words; 6% of tokens look-alikes, 4% drawn from ``extras``."""
    parts: list[str] = []
    size = 0
    while size < LENGTH:
        roll = rng.random()
        pool = extras if roll < 0.04 else LOOK_ALIKES if roll < 0.1 else WORDS
        token = rng.choice(pool)
        parts.append(token)
        size += len(token) + 1
    return " ".join(parts)[:LENGTH]


def time_each(call: Callable[[str], object], texts: list[str]) -> list[float]:
    samples = []
    for text in texts:
        started = time.perf_counter()
        call(text)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(13)
    corpora = {
        "without PII": [message(rng, LOOK_ALIKES) for _ in range(args.messages)],
        "with PII": [message(rng, PII) for _ in range(args.messages)],
    }
    pii, secrets = PiiDetector(), SecretDetector()
    calls: dict[str, Callable[[str], object]] = {
        "str.lower (floor)": str.lower,
        "pii": pii.scan,
        "secrets": secrets.scan,
        "pii + secrets": lambda text: (pii.scan(text), secrets.scan(text)),
    }
    print(f"{args.messages} messages of {LENGTH} characters each; microseconds per message")
    print(f"{'corpus':<12} {'call':<18} {'p50':>9} {'p99':>9} {'p50 / floor':>12}")
    for corpus, texts in corpora.items():
        for call in calls.values():  # warm-up: compiled patterns, caches
            for text in texts[:50]:
                call(text)
        floor = percentiles(time_each(str.lower, texts))[0]
        for name, call in calls.items():
            p50, p99 = percentiles(time_each(call, texts))
            print(f"{corpus:<12} {name:<18} {p50:>9.1f} {p99:>9.1f} {p50 / floor:>11.0f}x")
        found = sum(len(pii.scan(text)) + len(secrets.scan(text)) for text in texts)
        print(f"{corpus:<12} findings: {found / len(texts):.2f} per message")


if __name__ == "__main__":
    main()
