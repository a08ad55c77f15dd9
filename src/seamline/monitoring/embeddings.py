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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from seamline.core.background import BackgroundQueue
from seamline.monitoring.drift import MAX_PER_WINDOW
from seamline.store.database import Database
from seamline.store.schema import call_embeddings
from seamline.telemetry.traces import sums_by

Embed = Callable[[list[str]], Any]  # texts -> an (n, d) array of unit vectors
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
    return dequantise_all([blob])[0]


def dequantise_all(blobs: Sequence[bytes]) -> Any:
    """Stored vectors (of one model, so of one width) as the rows of a unit-length matrix."""
    matrix = np.frombuffer(b"".join(blobs), dtype=np.int8).astype(np.float32)
    matrix = matrix.reshape(len(blobs), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


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
        """Keep ``rows``; a call embedded already keeps its first row. No prompt or use case
        is kept as ``""``, not NULL: an equality, which the sample index serves in order on
        PostgreSQL too (``IS NULL`` made it walk the table by request id: 100 ms a group)."""
        rows = [
            {
                **row,
                "prompt_name": row.get("prompt_name") or "",
                "use_case": row.get("use_case") or "",
            }
            for row in rows
        ]
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
        most: int = MAX_PER_WINDOW,
    ) -> dict[tuple[str | None, str | None], Window]:
        """The project's calls in ``[start, end)`` by (prompt name, use case), for the
        groups with calls embedded by ``model``: every call counted (from the hourly
        rollups), at most ``most`` of the embedded ones read.

        The calls read are a group's first by request id. Request ids are drawn at random
        (``new_request_id``), so that is a uniform sample, the same on every run, and the
        index on (project, model, prompt, use case, request id, time) hands it over
        without visiting the rest of the window: a window of a million calls reads a few
        thousand index entries and rows, not a million."""
        found = {}
        with self.db.read() as conn:
            counts = sums_by(conn, ("prompt", "use_case"), start, end, project_id)
            for (prompt_name, case), sums in counts.items():
                if (prompt is not None and prompt_name != prompt) or (
                    use_case is not None and case != use_case
                ):
                    continue
                rows = conn.execute(
                    self._sample(
                        project_id,
                        start,
                        end,
                        prompt_name,
                        case,
                        model,
                        most,
                    )
                ).all()
                if rows:
                    ids = [request_id for request_id, _ in rows]
                    vectors = dequantise_all([blob for _, blob in rows])
                    found[(prompt_name, case)] = Window(ids, vectors, total=int(sums[0]))
        return found

    def _sample(
        self,
        project_id: int,
        start: datetime,
        end: datetime,
        prompt: str | None,
        use_case: str | None,
        model: str | None,
        most: int,
    ) -> Any:
        table = call_embeddings.c
        time = self.db.filter_only(table.time)  # the sample index, not the time range
        query = (
            select(table.request_id, table.input_vector)
            .where(
                table.project_id == project_id,
                table.prompt_name == (prompt or ""),
                table.use_case == (use_case or ""),
                time >= start,
                time < end,
            )
            .order_by(table.request_id)
            .limit(most)
        )
        return query if model is None else query.where(table.model == model)

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
