"""A scripted judge standing in for a judge model: scorers ask it through the same
``judge_client`` a run sets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from seamline.evals.judging import judge_client


class ScriptedJudge:
    """Answers each call with the next scripted answer (a string as it is, a list as a
    ``verdicts`` list, an object as JSON), and keeps what it was asked."""

    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, model: str, body: dict[str, Any]) -> str:
        self.asked.append((model, body))
        answer = self.answers.pop(0)
        if isinstance(answer, str):
            return answer
        return json.dumps({"verdicts": answer} if isinstance(answer, list) else answer)


@pytest.fixture
def judge() -> Iterator[ScriptedJudge]:
    scripted = ScriptedJudge()
    token = judge_client.set(scripted)
    yield scripted
    judge_client.reset(token)
