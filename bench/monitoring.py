"""Does the drift test catch a real shift and stay quiet on noise? Power and false-alarm
rate of seamline's test (MMD with a permutation test, ``monitoring.drift``) against, in the
same run, the check drift views used to plot: the cosine distance between the two windows'
mean vectors, alarmed above a threshold set on A/A pairs (its 95th percentile there).

The calls are paraphrased support questions written for this benchmark: eleven intents
(refunds, delivery, passwords, invoices, ...), each asked many ways (templates crossed with
products and wordings), embedded once with the embedded MiniLM. Each trial draws two
windows of ``--window`` calls:

* A/A: both windows from the same mix of ten intents (any alarm is a false one);
* shift: the current window has ``--shift`` of its calls (10% by default) moved to an
  eleventh intent (subscription cancellations) the reference never saw.

It prints, over ``--trials`` trials per row (10% moved, and smaller shifts: 2% and 5%), the
share of shifts caught (power) and of A/A pairs alarmed, for both methods, and the time one
test takes. The issue's target: power at
least 90% with A/A alarms at most 5%, on 500-call windows and a 10% shift.

Run: ``.venv/bin/python -m bench.monitoring [--trials 100] [--window 500] [--shift 0.1]``.
"""

from __future__ import annotations

import argparse
import itertools
import random
import time

import numpy as np

from seamline.monitoring.drift import ALPHA, mmd_test
from seamline.providers.local_vectors import embed

PRODUCTS = ["laptop", "phone", "headphones", "monitor", "keyboard", "tablet", "camera"]
OPENERS = ["", "Hi, ", "Hello, ", "Quick question: ", "Sorry to bother you, "]
INTENTS: dict[str, list[str]] = {
    "refund": [
        "how do I get a refund for my {p}?",
        "I want my money back for the {p} I bought",
        "can I return the {p} and be refunded?",
        "what is the refund policy for a {p}?",
    ],
    "delivery": [
        "where is my {p}? it has not arrived",
        "when will my {p} be delivered?",
        "my {p} order is late, can you check the shipping?",
        "how long does delivery of a {p} take?",
    ],
    "password": [
        "I forgot my password, how do I reset it?",
        "I can't log in to my account",
        "how do I change the password of my account?",
        "my login is not working after the update",
    ],
    "invoice": [
        "can you send me the invoice for my {p}?",
        "where do I download the receipt for the {p}?",
        "I need a VAT invoice for my {p} purchase",
        "the invoice for my {p} has the wrong address",
    ],
    "warranty": [
        "is my {p} still under warranty?",
        "how long is the warranty on a {p}?",
        "my {p} broke after six months, is that covered?",
        "does the warranty cover a cracked {p} screen?",
    ],
    "discount": [
        "do you have a discount code for a {p}?",
        "is there a student discount on the {p}?",
        "will the {p} go on sale soon?",
        "can I get a price match on the {p}?",
    ],
    "address": [
        "how do I change the delivery address of my {p} order?",
        "I moved, can you update my shipping address?",
        "can the {p} be sent to my office instead?",
        "I typed the wrong address for my {p}",
    ],
    "stock": [
        "when will the {p} be back in stock?",
        "is the {p} available in black?",
        "do you have the {p} in your store?",
        "the {p} says out of stock, can I preorder?",
    ],
    "repair": [
        "my {p} does not turn on, can you repair it?",
        "where can I get my {p} fixed?",
        "how much does a {p} repair cost?",
        "the battery of my {p} drains too fast",
    ],
    "payment": [
        "my card was declined when buying the {p}",
        "can I pay for the {p} in instalments?",
        "do you accept PayPal for the {p}?",
        "I was charged twice for my {p}",
    ],
    "cancel": [
        "how do I cancel my subscription?",
        "I want to stop my monthly plan",
        "please end my membership and stop charging me",
        "how can I unsubscribe from the premium service?",
    ],
}
NEW_TOPIC = "cancel"


def questions() -> dict[str, list[str]]:
    """Every intent's paraphrases: templates x products x openers."""
    return {
        intent: sorted(
            {
                opener + template.format(p=product)
                for template, product, opener in itertools.product(templates, PRODUCTS, OPENERS)
            }
        )
        for intent, templates in INTENTS.items()
    }


def draw(
    pool: dict[str, np.ndarray], intents: list[str], size: int, rng: random.Random
) -> np.ndarray:
    rows = [pool[intents[rng.randrange(len(intents))]] for _ in range(size)]
    return np.vstack([row[rng.randrange(len(row))] for row in rows])


def mean_distance(reference: np.ndarray, current: np.ndarray) -> float:
    a, b = reference.mean(axis=0), current.mean(axis=0)
    return 1.0 - float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--shift", type=float, default=0.1, help="the target's shift")
    parser.add_argument(
        "--shifts", type=float, nargs="*", default=[0.02, 0.05], help="more rows, smaller shifts"
    )
    args = parser.parse_args()
    texts = questions()
    started = time.perf_counter()
    pool = {intent: embed(found) for intent, found in texts.items()}
    print(
        f"{sum(len(t) for t in texts.values())} paraphrased questions in {len(texts)} intents, "
        f"embedded in {time.perf_counter() - started:.1f} s"
    )
    rng = random.Random(20261129)
    usual = [intent for intent in INTENTS if intent != NEW_TOPIC]
    print(
        f"\n{args.trials} trials per row, windows of {args.window} calls; alpha {ALPHA}; the "
        "baseline's threshold is the 95th percentile of its A/A distances"
    )
    print(
        f"{'moved':>6} | {'seamline power':>14} {'A/A alarms':>10} | {'baseline power':>14} "
        f"{'A/A alarms':>10} | power ratio"
    )
    seconds: list[float] = []
    for shift in sorted({*args.shifts, args.shift}):
        row = trials(pool, usual, args.window, shift, args.trials, rng, seconds)
        print(
            f"{shift:>6.0%} | {row['power']:>14.1%} {row['aa']:>10.1%} | "
            f"{row['baseline_power']:>14.1%} {row['baseline_aa']:>10.1%} | "
            f"{row['power'] / max(row['baseline_power'], 1e-9):.2f}x"
        )
    print(f"one test of two {args.window}-call windows: {np.median(seconds) * 1000:.0f} ms median")


def trials(
    pool: dict[str, np.ndarray],
    usual: list[str],
    window: int,
    shift: float,
    count: int,
    rng: random.Random,
    seconds: list[float],
) -> dict[str, float]:
    moved = round(window * shift)
    ours = {"aa": 0, "shift": 0}
    baseline_aa, baseline_shift = [], []
    for trial in range(count):
        reference = draw(pool, usual, window, rng)
        same = draw(pool, usual, window, rng)
        shifted = np.vstack(
            [draw(pool, usual, window - moved, rng), draw(pool, [NEW_TOPIC], moved, rng)]
        )
        for name, current in (("aa", same), ("shift", shifted)):
            began = time.perf_counter()
            ours[name] += mmd_test(reference, current, seed=trial).p_value < ALPHA
            seconds.append(time.perf_counter() - began)
        baseline_aa.append(mean_distance(reference, same))
        baseline_shift.append(mean_distance(reference, shifted))
    threshold = float(np.quantile(baseline_aa, 1 - ALPHA))
    return {
        "power": ours["shift"] / count,
        "aa": ours["aa"] / count,
        "baseline_power": float(np.mean(np.array(baseline_shift) > threshold)),
        "baseline_aa": float(np.mean(np.array(baseline_aa) > threshold)),
    }


if __name__ == "__main__":
    main()
