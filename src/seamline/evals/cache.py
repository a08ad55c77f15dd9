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

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select

from seamline.core.canonical import content_hash
from seamline.core.clock import utcnow
from seamline.evals.judging import JudgeClient
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


def cached(client: JudgeClient, cache: OutputCache, *, refresh: bool = False) -> JudgeClient:
    """``client`` answering from ``cache`` when it can, keeping what it had to ask."""

    def ask(model: str, body: dict[str, Any]) -> str:
        if not refresh:
            kept = cache.get(model, body)
            if kept is not None:
                return str(kept["text"])
        text = client(model, body)
        cache.put(model, body, {"text": text})
        return text

    return ask
