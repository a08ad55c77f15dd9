"""How scorers that need a model (judges, RAG verifiers) ask one, without knowing how calls
are made.

A run (or the gateway's online scorer, or a test) sets :data:`judge_client` to a
:class:`JudgeClient`: a function taking a model name and a chat body and returning the
answer's text, made through the same providers the gateway uses. Scorers read it when they
score, so one scorer definition works in a CLI run, on live traffic and in a test with a
scripted judge. Outside any of these there is no client, and a judge scorer raises
:class:`~seamline.evals.scoring.ScoreError` (the case is errored, not scored 0).

Verdicts are JSON objects held to a schema; an answer that is not one is a
:class:`ScoreError` too, with what was wrong.
"""

from __future__ import annotations

import contextvars
from typing import Any, Protocol

from seamline.core.json_answer import json_object_in
from seamline.evals.scoring import ScoreError


class JudgeClient(Protocol):
    def __call__(self, model: str, body: dict[str, Any]) -> str: ...  # pragma: no cover


judge_client: contextvars.ContextVar[JudgeClient | None] = contextvars.ContextVar(
    "evals_judge_client", default=None
)


def ask_json(model: str, system: str, user: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Ask ``model`` for a JSON object matching ``schema`` (temperature 0); its answer parsed.
    ScoreError when there is no client or the answer is not a JSON object."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return ask_json_messages(model, messages, schema)


def ask_json_messages(
    model: str, messages: list[dict[str, Any]], schema: dict[str, Any], **parameters: Any
) -> dict[str, Any]:
    """:func:`ask_json` with the whole conversation given (a judge prompt from the
    registry), and sampling ``parameters`` (temperature 0 unless they say otherwise)."""
    client = judge_client.get()
    if client is None:
        raise ScoreError(f"no model client to ask {model} (judges run inside an eval run)")
    body = {
        "messages": messages,
        "temperature": 0,
        **parameters,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": schema, "strict": True},
        },
    }
    answer = client(model, body)
    parsed = json_object_in(answer)
    if parsed is None:
        raise ScoreError(f"{model}'s answer is not a JSON object: {answer[:80]!r}")
    return parsed
