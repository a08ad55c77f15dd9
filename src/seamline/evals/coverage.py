"""How much of production the eval sets test: per prompt and use case, the share of recent
calls whose input lies near at least one eval case, and the largest groups of calls that
no case is near, with examples, so a team knows which cases to add.

"Near" is the cosine of the embedded MiniLM vectors of the inputs (the prompt's variables
and the caller's own messages, as text) at or above a threshold calibrated on the shipped
paraphrase pairs (``calibration/paraphrases.jsonl``: 40 pairs that ask the same thing in
other words, 40 near misses that ask something else about the same subject): the threshold
that best separates the two (Youden's J), printed with its paraphrase recall and near-miss
rate, since a small embedding model separates them only partly and the share is as good as
that separation.

A call whose content was not logged (the project's policy) cannot be compared and is
counted apart. A prompt's calls are compared with the cases of the eval set it names; other
calls with every eval set of the project.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from seamline.evals.calls import EVAL_USE_CASES
from seamline.evals.stats import Interval, mean_interval
from seamline.store.schema import events

PARAPHRASES = Path(__file__).parent / "calibration" / "paraphrases.jsonl"
CALLS_PER_GROUP = 2000  # the most recent calls compared per prompt and use case
CLUSTERS_SHOWN = 5
EXAMPLES_SHOWN = 3

Embed = Callable[[list[str]], Any]  # texts -> unit vectors, a row each


@dataclass(frozen=True)
class Threshold:
    cosine: float
    paraphrase_recall: float  # paraphrase pairs at or above it
    near_miss_rate: float  # near-miss pairs at or above it
    pairs: int


def calibrated_threshold(embed: Embed, pairs: Path = PARAPHRASES) -> Threshold:
    rows = [json.loads(line) for line in pairs.read_text("utf-8").splitlines() if line]
    first, second = embed([r["a"] for r in rows]), embed([r["b"] for r in rows])
    similarity = (first * second).sum(axis=1)
    same = np.array([bool(r["same"]) for r in rows])
    best = max(
        (
            (float((similarity[same] >= t).mean() - (similarity[~same] >= t).mean()), float(t))
            for t in similarity
        ),
    )[1]
    return Threshold(
        best,
        float((similarity[same] >= best).mean()),
        float((similarity[~same] >= best).mean()),
        len(rows),
    )


def input_text(variables: Mapping[str, Any] | None, messages: Sequence[Any] | None) -> str:
    """What a call or a case asks, as one text: its variables' text values and its user
    messages' text."""
    parts = [str(v) for v in (variables or {}).values() if isinstance(v, str | int | float)]
    for message in messages or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "\n".join(p for p in parts if p.strip())


@dataclass(frozen=True)
class Cluster:
    size: int
    examples: list[str]


@dataclass
class GroupCoverage:
    prompt: str | None
    use_case: str | None
    calls: int = 0
    compared: int = 0  # calls whose content was logged
    covered: int = 0
    share: Interval | None = None
    uncovered: list[Cluster] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "use_case": self.use_case,
            "calls": self.calls,
            "compared": self.compared,
            "covered": self.covered,
            "share": self.share.as_record() if self.share else None,
            "uncovered": [{"size": c.size, "examples": c.examples} for c in self.uncovered],
        }


def production_inputs(
    conn: Connection,
    project_id: int,
    since: datetime,
    prompt: str | None,
    prompt_messages: Callable[[str, int], int],
    seed: int = 0,
) -> dict[tuple[str | None, str | None], list[str | None]]:
    """Recent calls' input texts (None where the content was not logged), by prompt and use
    case; side calls and eval runs' calls left out."""
    query = (
        select(
            events.c.prompt_name,
            events.c.prompt_version,
            events.c.use_case,
            events.c.request_content,
            events.c.prompt_variables,
        )
        .where(
            events.c.project_id == project_id,
            events.c.time >= since,
            events.c.parent_request_id.is_(None),
            events.c.use_case.is_(None) | events.c.use_case.notin_(EVAL_USE_CASES),
        )
        .order_by(events.c.id.desc())
    )
    if prompt is not None:
        query = query.where(events.c.prompt_name == prompt)
    groups: dict[tuple[str | None, str | None], list[str | None]] = {}
    for row in conn.execute(query):
        group = groups.setdefault((row.prompt_name, row.use_case), [])
        if len(group) >= CALLS_PER_GROUP:
            continue
        messages = row.request_content
        if not isinstance(messages, list):
            group.append(None)
            continue
        if row.prompt_name is not None:
            messages = messages[prompt_messages(row.prompt_name, row.prompt_version) :]
        group.append(input_text(row.prompt_variables, messages) or None)
    for texts in groups.values():
        random.Random(seed).shuffle(texts)
    return groups


def group_coverage(
    prompt: str | None,
    use_case: str | None,
    texts: list[str | None],
    case_vectors: Any,
    embed: Embed,
    threshold: float,
) -> GroupCoverage:
    found = GroupCoverage(prompt, use_case, calls=len(texts))
    known = [t for t in texts if t]
    found.compared = len(known)
    if not known:
        return found
    vectors = embed(known)
    if len(case_vectors):
        nearest = (vectors @ case_vectors.T).max(axis=1)
    else:
        nearest = np.full(len(known), -1.0)
    covered = nearest >= threshold
    found.covered = int(covered.sum())
    found.share = mean_interval([float(c) for c in covered])
    found.uncovered = _clusters(
        [t for t, c in zip(known, covered, strict=True) if not c], vectors[~covered], threshold
    )
    return found


def _clusters(texts: list[str], vectors: Any, threshold: float) -> list[Cluster]:
    """Leader clustering: each text joins the first group whose leader it is near, else
    leads a new one; the largest groups, with their first texts as examples."""
    leaders: list[int] = []
    members: list[list[int]] = []
    for i in range(len(texts)):
        if leaders:
            similarity = vectors[leaders] @ vectors[i]
            best = int(similarity.argmax())
            if similarity[best] >= threshold:
                members[best].append(i)
                continue
        leaders.append(i)
        members.append([i])
    ordered = sorted(members, key=len, reverse=True)[:CLUSTERS_SHOWN]
    return [
        Cluster(len(group), [texts[i][:120] for i in group[:EXAMPLES_SHOWN]]) for group in ordered
    ]
