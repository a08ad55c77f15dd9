"""Each call's input and answer as MiniLM vectors, computed once off the request path and
kept compactly: what semantic drift compares.

A call's input is what its caller asked (the prompt variables' text and the user messages,
as eval coverage reads it); when the guards already embedded that very text for the call,
their vector is taken, not computed again. Vectors are unit length and stored as int8
(``round(127 * x)``, 384 bytes for MiniLM against 1,536 as float32); the cosine between two
stored vectors stays within 0.01 of the float one, far below what drift tests resolve.
Calls of a project whose content logging is ``none`` are not embedded: an embedding is not
the text, but it is derived from it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from seamline.core.background import BackgroundQueue
from seamline.store.database import Database
from seamline.store.schema import call_embeddings

Embed = Callable[[list[str]], Any]  # texts -> an (n, d) array of unit vectors
SAMPLED_PER_GROUP = 1000  # vectors read per group and window (the test samples 500)
MAX_TEXT = 2000  # characters of an input or answer embedded (MiniLM reads 256 tokens)


@dataclass(frozen=True)
class CallInput:
    request_id: str
    project_id: int
    time: datetime
    prompt_name: str | None
    prompt_version: int | None
    use_case: str | None
    api_key_id: str | None
    text: str
    answer: str | None = None
    vector: Any = None  # the input's embedding, when the guards computed it already


def quantise(vector: Any) -> bytes:
    return (
        np.clip(np.rint(np.asarray(vector, np.float32) * 127), -127, 127).astype(np.int8).tobytes()
    )


def dequantise(blob: bytes) -> Any:
    vector = np.frombuffer(blob, dtype=np.int8).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


@dataclass
class Window:
    """The calls of one time window: how many there were, and the ids and input vectors
    (a row each) of those read (all of them, or a sample of a large window)."""

    request_ids: list[str]
    vectors: Any
    total: int = 0

    def __len__(self) -> int:
        return len(self.request_ids)


class CallEmbeddingStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, rows: Sequence[dict[str, Any]]) -> None:
        """Keep ``rows``; a call embedded already keeps its first row."""
        try:
            with self.db.write() as conn:
                conn.execute(insert(call_embeddings), list(rows))
        except IntegrityError:  # one of them was there: the rest one by one
            for row in rows:
                try:
                    with self.db.write() as conn:
                        conn.execute(insert(call_embeddings).values(**row))
                except IntegrityError:
                    continue

    def window(
        self,
        project_id: int,
        start: datetime,
        end: datetime,
        *,
        prompt: str | None = None,
        use_case: str | None = None,
        model: str | None = None,
        most: int = SAMPLED_PER_GROUP,
    ) -> dict[tuple[str | None, str | None], Window]:
        """The project's calls in ``[start, end)`` embedded by ``model``, by (prompt name,
        use case): every call counted, at most ``most`` of each group's vectors read (a
        seeded sample), so a window of a million calls reads a few thousand vectors."""
        query = select(
            call_embeddings.c.request_id, call_embeddings.c.prompt_name, call_embeddings.c.use_case
        ).where(
            call_embeddings.c.project_id == project_id,
            call_embeddings.c.time >= start,
            call_embeddings.c.time < end,
        )
        if prompt is not None:
            query = query.where(call_embeddings.c.prompt_name == prompt)
        if use_case is not None:
            query = query.where(call_embeddings.c.use_case == use_case)
        if model is not None:
            query = query.where(call_embeddings.c.model == model)
        groups: dict[tuple[str | None, str | None], list[str]] = {}
        with self.db.read() as conn:
            for request_id, prompt_name, case in conn.execute(query):
                groups.setdefault((prompt_name, case), []).append(request_id)
            found = {}
            for key, ids in groups.items():
                picked = sorted(random.Random(0).sample(ids, most)) if len(ids) > most else ids
                found[key] = Window(picked, self._vectors(conn, picked), total=len(ids))
        return found

    def _vectors(self, conn: Connection, request_ids: list[str]) -> Any:
        by_id: dict[str, Any] = {}
        for first in range(0, len(request_ids), 500):
            chunk = request_ids[first : first + 500]
            rows = conn.execute(
                select(call_embeddings.c.request_id, call_embeddings.c.input_vector).where(
                    call_embeddings.c.request_id.in_(chunk)
                )
            )
            by_id.update((request_id, dequantise(blob)) for request_id, blob in rows)
        return np.vstack([by_id[request_id] for request_id in request_ids])

    def latest_model(self, project_id: int) -> str | None:
        """The model that embedded the project's latest call: vectors of two models are
        never compared."""
        with self.db.read() as conn:
            return conn.execute(
                select(call_embeddings.c.model)
                .where(call_embeddings.c.project_id == project_id)
                .order_by(call_embeddings.c.time.desc())
                .limit(1)
            ).scalar()


class CallEmbedder:
    """Embeds queued calls in batches on a thread of its own and stores them."""

    def __init__(
        self,
        store: CallEmbeddingStore,
        embed: Embed,
        model: str,
        *,
        max_queue: int = 1000,
        per_second: float | None = None,
    ) -> None:
        self.store = store
        self.embed = embed
        self.model = model
        self.queue: BackgroundQueue[CallInput] = BackgroundQueue(
            self._embed_batch,
            name="seamline-call-embedder",
            max_queue=max_queue,
            max_batch=32,
            per_second=per_second,
        )

    def _embed_batch(self, calls: list[CallInput]) -> None:
        texts = [c.text[:MAX_TEXT] for c in calls if c.vector is None]
        texts += [c.answer[:MAX_TEXT] for c in calls if c.answer]
        vectors = iter(self.embed(texts)) if texts else iter(())
        inputs = [c.vector if c.vector is not None else next(vectors) for c in calls]
        rows = []
        for call, vector in zip(calls, inputs, strict=True):
            rows.append(
                {
                    "request_id": call.request_id,
                    "project_id": call.project_id,
                    "time": call.time,
                    "prompt_name": call.prompt_name,
                    "prompt_version": call.prompt_version,
                    "use_case": call.use_case,
                    "api_key_id": call.api_key_id,
                    "model": self.model[:100],
                    "input_vector": quantise(vector),
                    "output_vector": None,
                }
            )
        for row, call in zip(rows, calls, strict=True):
            if call.answer:
                row["output_vector"] = quantise(next(vectors))
        self.store.record(rows)
