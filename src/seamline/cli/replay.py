"""``seamline replay``: a recorded session asked again of another prompt version or model,
answer beside answer, with the scorers' verdicts on both."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from sqlalchemy import RowMapping

from seamline.cli.context import JsonOption, ProjectOption, actor, registry, settings
from seamline.cli.output import print_json
from seamline.gateway.chat import EvalModelCall
from seamline.gateway.core import Gateway
from seamline.monitoring.replay import Turn, replay, session_calls
from seamline.registry import Actor
from seamline.registry.prompt import Prompt

PROMPT = "prompt"


def replay_command(
    session_id: Annotated[str, typer.Argument(help="the session (metadata.session_id)")],
    prompt: Annotated[
        str | None, typer.Option(help="the prompt version to replay against: NAME@VERSION")
    ] = None,
    model: Annotated[str | None, typer.Option(help="the model to replay against")] = None,
    scorer: Annotated[
        list[str] | None, typer.Option(help="a scorer for both answers (repeatable)")
    ] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Re-run a recorded conversation turn by turn against another prompt version or model
    (through this machine's gateway, its calls recorded under the use case ``replay``) and
    show both answers with their similarity and the scorers' verdicts.

    Example: seamline replay sess-42 --prompt support-answer@7 --scorer answer_relevance
    """
    who = actor(project)
    with registry().db.read() as conn:
        rows = session_calls(conn, who.project.id, session_id)
    target = None
    if prompt is not None:
        name, _, ref = prompt.partition("@")
        target = _prompt(who, name, ref or None)
    turns = asyncio.run(_replay(who, rows, target, model, [{"name": s} for s in scorer or []]))
    if json_output:
        print_json({"session": session_id, "turns": [t.as_record() for t in turns]})
        return
    for number, turn in enumerate(turns, 1):
        typer.echo(f"turn {number} ({turn.request_id}): {turn.question[:200]}")
        typer.echo(f"  recorded: {turn.original[:400]}")
        typer.echo(f"  replayed: {turn.replayed[:400] if turn.replayed else '-'}")
        if turn.error:
            typer.echo(f"  error: {turn.error}")
        figures = [f"similarity {turn.similarity:.3f}"] if turn.similarity is not None else []
        figures += [
            f"{name} {both.get('original', float('nan')):.3f} -> "
            f"{both.get('replayed', float('nan')):.3f}"
            for name, both in turn.scores.items()
        ]
        if figures:
            typer.echo("  " + "; ".join(figures))


def _prompt(who: Actor, name: str, ref: str | int | None) -> Prompt:
    return Prompt.from_record(registry().get_version(who, PROMPT, name, ref))


async def _replay(
    who: Actor,
    rows: list[RowMapping],
    target: Prompt | None,
    model: str | None,
    scorers: list[dict[str, Any]],
) -> list[Turn]:
    gateway = Gateway(settings(), registry())
    await gateway.start()
    try:
        return await replay(
            rows,
            EvalModelCall(gateway, who),
            prompt_of=lambda name, number: _prompt(who, name, number),
            target=target,
            model=model,
            scorers=scorers,
        )
    finally:
        await gateway.stop()
