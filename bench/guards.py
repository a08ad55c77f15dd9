"""Injection detection on the held-out split: the rules (the baseline), the learned detector,
and both together, in one run.

Reads ``research/guard-model/heldout.jsonl``, which ``research/guard-model/train.py`` wrote
once and never trained or calibrated on: direct rows (the S-Labs and neuralchemy test splits,
15% of the other sources) and indirect documents (held-out attacks, or benign texts, inserted
into carriers built from held-out templates and word lists). Each text is scanned as the
policy would scan it: user content for ``direct``, untrusted for ``indirect.*``.

For each detector, per kind (direct, indirect, overall): ROC AUC, recall at 1% and 2%
false positives, and precision, recall, F1 and the false-positive rate at its shipped
threshold (the rules: the default policy's blocking 0.9; the learned detector: the 2%-FPR
threshold of its calibration for that content; combined: either one). The combined score is
the maximum of the two scores. Then the ratio of recall at 2% FPR against the rules, the
issue's targets, and the latency per message (p50/p99) of each detector, with the learned
detector on one thread of one core for a message of 256 tokens.

First, on the gateway path (:mod:`bench.guard_path`): a call under the shipped policy
against the same call under a policy with no rules, latency and CPU per call, and the time to
first content of a streamed answer, in the same run.

Run: ``.venv/bin/python -m bench.guards [--limit N] [--no-gateway]`` (needs the ``[local]``
extra).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import guard_path
from seamline.guards.embeddings import shared_encoder
from seamline.guards.evaluate import percentile, recall_at_fpr, roc_auc
from seamline.guards.injection_model import Head, InjectionModel
from seamline.guards.injection_rules import InjectionRules
from seamline.providers.local_models import minilm_files

HELDOUT = Path(__file__).parents[1] / "research" / "guard-model" / "heldout.jsonl"
RULES_THRESHOLD = 0.9  # default_policy.yaml: injection.rules blocks at 0.9
_FILLER = (
    "the team shipped the quarterly report to our customer in Lisbon after the review of "
    "invoices orders and budgets which took longer than planned because of the holidays"
)
TARGETS = {"direct": 0.90, "indirect": 0.80}  # issue 13: recall at <= 2% FPR


@dataclass
class Scored:
    kind: str
    label: int
    scores: dict[str, float]
    flags: dict[str, bool]
    ms: dict[str, float]


def _timed(scan: Callable[[str], float], text: str) -> tuple[float, float]:
    started = time.perf_counter()
    value = scan(text)
    return value, (time.perf_counter() - started) * 1000


def _top(detector: InjectionRules | InjectionModel, untrusted: bool) -> Callable[[str], float]:
    def scan(text: str) -> float:
        return max((f.score for f in detector.scan(text, untrusted=untrusted)), default=0.0)

    return scan


def score_all(rows: list[dict[str, object]]) -> list[Scored]:
    rules, model, head = InjectionRules(), InjectionModel(), Head.load()
    model.scan("Warm-up text, not part of the data set.")
    out = []
    for row in rows:
        text, kind = str(row["text"]), str(row["kind"])
        untrusted = kind.startswith("indirect")
        r, r_ms = _timed(_top(rules, untrusted), text)
        m, m_ms = _timed(_top(model, untrusted), text)
        threshold = (head.untrusted if untrusted else head.user).threshold_fpr_2
        flags = {"rules": r >= RULES_THRESHOLD, "minilm": m >= threshold}
        flags["combined"] = flags["rules"] or flags["minilm"]
        out.append(
            Scored(
                "direct" if kind == "direct" else "indirect",
                int(str(row["label"])),
                {"rules": r, "minilm": m, "combined": max(r, m)},
                flags,
                {"rules": r_ms, "minilm": m_ms, "combined": r_ms + m_ms},
            )
        )
    return out


def figures(group: list[Scored], name: str) -> dict[str, float | None]:
    labels = [s.label for s in group]
    scores = [s.scores[name] for s in group]
    tp = sum(1 for s in group if s.flags[name] and s.label == 1)
    fp = sum(1 for s in group if s.flags[name] and s.label == 0)
    pos = sum(labels)
    neg = len(labels) - pos
    return {
        "auc": roc_auc(labels, scores),
        "r@1%": recall_at_fpr(labels, scores, 0.01),
        "r@2%": recall_at_fpr(labels, scores, 0.02),
        "prec": tp / (tp + fp) if tp + fp else None,
        "recall": tp / pos if pos else None,
        "f1": 2 * tp / (2 * tp + fp + pos - tp) if pos + fp else None,
        "fpr": fp / neg if neg else None,
        "p50 ms": percentile([s.ms[name] for s in group], 50),
        "p99 ms": percentile([s.ms[name] for s in group], 99),
    }


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def one_core_latency(rounds: int) -> tuple[float, float, int]:
    """p50/p99 ms of the learned detector on messages of 256 tokens, pinned to one core:
    a different message each time (it keeps the scores of texts it read lately)."""
    encoder = shared_encoder()
    rng = random.Random(7)
    words = _FILLER.split()

    def message() -> str:
        text = ""
        while len(encoder.windows(text + " x")[0]) < 256:
            text += " " + rng.choice(words)
        return text

    model = InjectionModel()
    model.scan(message())
    texts = [message() for _ in range(rounds)]
    times = [_timed(_top(model, False), text)[1] for text in texts]
    return percentile(times, 50), percentile(times, 99), len(encoder.windows(texts[0])[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="score only the first N rows")
    parser.add_argument("--rounds", type=int, default=200, help="for the 256-token latency")
    parser.add_argument("--seconds", type=float, default=5.0, help="per gateway measurement")
    parser.add_argument("--streams", type=int, default=6, help="streamed calls per policy")
    parser.add_argument("--no-gateway", action="store_true", help="detection figures only")
    args = parser.parse_args()
    if minilm_files() is None:
        print("skipped: needs the [local] extra (onnxruntime, tokenizers, the MiniLM packages)")
        return
    if not HELDOUT.exists():
        print(f"skipped: {HELDOUT} is missing; run research/guard-model/train.py")
        return
    if not args.no_gateway:  # before pinning: the gateway's processes inherit the affinity
        with guard_path.running_gateway() as gateway:
            guard_path.report_calls(gateway, args.seconds, rounds=4)
            guard_path.report_first_token(gateway, args.streams)
        print()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as budgeted
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    if args.limit:
        random.Random(1).shuffle(rows)
        rows = rows[: args.limit]
    scored = score_all(rows)
    groups = {
        "direct": [s for s in scored if s.kind == "direct"],
        "indirect": [s for s in scored if s.kind == "indirect"],
        "overall": scored,
    }
    columns = ["auc", "r@1%", "r@2%", "prec", "recall", "f1", "fpr", "p50 ms", "p99 ms"]
    print(f"held-out split: {HELDOUT.name}, {len(scored)} texts (one core)")
    print(
        f"{'kind':<9} {'detector':<9} {'n':>5} {'pos':>5} " + " ".join(f"{c:>7}" for c in columns)
    )
    table: dict[tuple[str, str], dict[str, float | None]] = {}
    for kind, group in groups.items():
        for name in ("rules", "minilm", "combined"):
            row = table[(kind, name)] = figures(group, name)
            positives = sum(s.label for s in group)
            print(
                f"{kind:<9} {name:<9} {len(group):>5} {positives:>5} "
                + " ".join(f"{_cell(row[c]):>7}" for c in columns)
            )
    print("\nrecall at 2% FPR against the rules (baseline) and the issue's targets:")
    for kind in ("direct", "indirect"):
        base = table[(kind, "rules")]["r@2%"] or 0.0
        parts = []
        for name in ("minilm", "combined"):
            value = table[(kind, name)]["r@2%"] or 0.0
            ratio = f"{value / base:.1f}x" if base else "inf"
            parts.append(f"{name} {value:.3f} ({ratio} rules' {base:.3f})")
        print(f"  {kind:<9} " + "; ".join(parts) + f"; target >= {TARGETS[kind]:.2f}")
    p50, p99, tokens = one_core_latency(args.rounds)
    print(
        f"\ninjection.minilm on one core, a {tokens}-token message: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms (budget 15 ms at p50)"
    )


if __name__ == "__main__":
    main()
