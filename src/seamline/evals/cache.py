"""Eval runs' model and judge answers, kept by the content of the request that produced
them: a re-run reads them back instead of calling, so it costs nothing and scores exactly
the answers it scored before (the same numbers, to the last digit, since the statistics are
seeded too).

The key is the sha256 of the canonical JSON of the model name and the whole request body
(messages, parameters, response format): change any of it, a word of the prompt, the
temperature, the judge's instructions, and it is a new request. Answers are kept per
project, in the ``eval_outputs`` table of the project's database: they hold what a
project's cases asked.

A run that wants fresh answers (a model whose provider changed its weights under the same
name) asks for them (``refresh``), and the fresh ones replace the kept ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, insert, select

from seamline.core.canonical import content_hash
from seamline.core.clock import utcnow
from seamline.evals.calls import CallBound, Completion, ModelCall
from seamline.store.database import Database
from seamline.store.schema import eval_outputs


def request_hash(model: str, body: Mapping[str, Any]) -> str:
    return content_hash({"model": model, "body": dict(body)})


class OutputCache:
    """One project's kept answers."""

    def __init__(self, db: Database, project_id: int) -> None:
        self.db = db
        self.project_id = project_id
        self.hits = 0
        self.misses = 0

    def get(self, model: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        query = select(eval_outputs.c.answer).where(
            eval_outputs.c.project_id == self.project_id,
            eval_outputs.c.request_hash == request_hash(model, body),
        )
        with self.db.read() as conn:
            answer = conn.execute(query).scalar_one_or_none()
        if answer is None:
            self.misses += 1
            return None
        self.hits += 1
        found: dict[str, Any] = answer
        return found

    def holds(self, model: str, body: Mapping[str, Any]) -> bool:
        """Whether an answer is kept for this request (without counting a hit)."""
        query = select(eval_outputs.c.request_hash).where(
            eval_outputs.c.project_id == self.project_id,
            eval_outputs.c.request_hash == request_hash(model, body),
        )
        with self.db.read() as conn:
            return conn.execute(query).first() is not None

    def put(self, model: str, body: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        """Keep ``answer`` (replacing one kept for the same request)."""
        key = request_hash(model, body)
        where = (eval_outputs.c.project_id == self.project_id) & (
            eval_outputs.c.request_hash == key
        )
        row = {
            "project_id": self.project_id,
            "request_hash": key,
            "model": model[:200],
            "answer": dict(answer),
            "created_at": utcnow(),
        }
        with self.db.write() as conn:
            conn.execute(delete(eval_outputs).where(where))
            conn.execute(insert(eval_outputs).values(**row))


class KeptAnswers:
    """A :class:`~seamline.evals.calls.ModelCall` that answers from ``cache`` when it can
    and keeps what it had to ask; it counts what the fresh calls cost."""

    def __init__(self, call: ModelCall, cache: OutputCache, *, refresh: bool = False) -> None:
        self.call = call
        self.cache = cache
        self.refresh = refresh
        self.spent_usd = 0.0

    async def __call__(self, model: str, body: dict[str, Any], *, use_case: str) -> Completion:
        if not self.refresh:
            kept = await asyncio.to_thread(self.cache.get, model, body)
            if kept is not None:
                return replace(Completion.from_record(kept), kept=True)
        answer = await self.call(model, body, use_case=use_case)
        self.spent_usd += answer.cost_usd
        await asyncio.to_thread(self.cache.put, model, body, answer.as_record())
        return answer

    async def is_kept(self, model: str, body: dict[str, Any]) -> bool:
        if self.refresh:
            return False
        return await asyncio.to_thread(self.cache.holds, model, body)

    async def bound(self, model: str, body: dict[str, Any]) -> CallBound:
        return await self.call.bound(model, body)
