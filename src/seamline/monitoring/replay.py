"""Conversation replay: a recorded session's calls, turn by turn, asked again of another
prompt version or model, each answer set beside the one users got, with the scorers'
verdicts on both.

Each turn is replayed with the inputs its call really had (its prompt variables and the
caller's own messages, as ``evals add-from-traces`` reads them), so the history a turn
carries is the one recorded, with the answers users saw: a replay compares answers to the
same conversation, it does not let the other version steer it elsewhere. A session logged
without content (``none``) cannot be replayed, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from seamline.core.errors import InvalidInput, NotFound
from seamline.evals.calls import EVAL_USE_CASES, ModelCall
from seamline.evals.runner import request_for
from seamline.evals.scorers.similarity import cosine
from seamline.evals.scoring import Answer, Case, ScoreError, build_scorer, question_of
from seamline.evals.traces import case_of_call
from seamline.registry.eval_set import EvalCaseSpec
from seamline.registry.prompt import Prompt
from seamline.store.schema import events

REPLAY_USE_CASE = "replay"


@dataclass
class Turn:
    request_id: str
    question: str
    original: str
    replayed: str | None = None
    error: str | None = None
    similarity: float | None = None  # of the two answers
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # scorer: both answers

    def as_record(self) -> dict[str, Any]:
        return dict(self.__dict__)


def session_calls(conn: Connection, project_id: int, session_id: str) -> list[RowMapping]:
    """The session's own calls, oldest first (not the gateway's side calls, nor evals')."""
    rows = list(
        conn.execute(
            select(events)
            .where(
                events.c.project_id == project_id,
                events.c.session_id == session_id,
                events.c.parent_request_id.is_(None),
                events.c.use_case.is_(None) | events.c.use_case.notin_(EVAL_USE_CASES),
            )
            .order_by(events.c.time)
        ).mappings()
    )
    if not rows:
        raise NotFound(f"no session {session_id!r} in this project", code="session_not_found")
    if all(row["request_content"] is None for row in rows):
        raise InvalidInput(
            f"the calls of session {session_id!r} were logged without content (the project's "
            "content logging is none): there is nothing to replay",
            code="content_not_logged",
        )
    return rows


async def replay(
    rows: Sequence[RowMapping],
    ask: ModelCall,
    *,
    prompt_of: Callable[[str, int], Prompt],
    target: Prompt | None = None,
    model: str | None = None,
    scorers: Sequence[Mapping[str, Any]] = (),
) -> list[Turn]:
    """Each call of ``rows`` asked again: of ``target`` (a prompt version) and/or ``model``;
    its answer compared with the recorded one."""
    if target is None and model is None:
        raise InvalidInput("replay against a prompt version or a model (or both)")
    turns = []
    for row in rows:
        found = case_of_call(
            row, lambda name, number: len(prompt_of(name, number).spec.messages), True
        )
        if isinstance(found, str):
            continue  # this call kept no content: nothing to replay for it
        case = EvalCaseSpec.model_validate({k: v for k, v in found.items() if k != "id"})
        turn = Turn(row["request_id"], _question(case), case.reference or "")
        prompt = target or (
            prompt_of(row["prompt_name"], row["prompt_version"]) if row["prompt_name"] else None
        )
        try:
            if prompt is not None:
                chosen, body = request_for(prompt, case, model)
            else:
                chosen, body = model or str(row["model_used"]), {"messages": case.messages}
            turn.replayed = (await ask(chosen, body, use_case=REPLAY_USE_CASE)).text
        except Exception as exc:  # one turn's failure (a variable the version lacks) is shown
            turn.error = str(exc)[:300]
            turns.append(turn)
            continue
        _score(turn, case, scorers)
        turns.append(turn)
    return turns


def _question(case: EvalCaseSpec) -> str:
    try:
        return question_of(_scoring_case(case), "replay")
    except ScoreError:
        return ""


def _scoring_case(case: EvalCaseSpec) -> Case:
    return Case(variables=case.variables, messages=tuple(case.messages or ()))


def _score(turn: Turn, case: EvalCaseSpec, scorers: Sequence[Mapping[str, Any]]) -> None:
    assert turn.replayed is not None
    if turn.original and turn.replayed:
        try:
            turn.similarity = round(cosine(turn.original, turn.replayed), 4)
        except ScoreError:
            turn.similarity = None
    for spec in scorers:
        scorer = build_scorer(spec)
        both = {}
        for which, text in (("original", turn.original), ("replayed", turn.replayed)):
            try:
                both[which] = round(scorer.score(_scoring_case(case), Answer(text)).value, 4)
            except ScoreError:
                continue
        turn.scores[scorer.name] = both
