"""``seamline feedback``: score a call by hand (an engineer's review), and read what users
said, per prompt version."""

from __future__ import annotations

from typing import Annotated

import typer

from seamline.cli.context import JsonOption, ProjectOption, actor, registry
from seamline.cli.output import print_json, print_table
from seamline.monitoring.feedback import FeedbackStore, parse_feedback
from seamline.telemetry.traces import parse_since

feedback_app = typer.Typer(no_args_is_help=True, help="What users said of calls.")


@feedback_app.command()
def add(
    request_id: Annotated[str | None, typer.Argument(help="the call (its x-request-id)")] = None,
    session: Annotated[str | None, typer.Option(help="a session, instead of a call")] = None,
    score: Annotated[str | None, typer.Option(help="up, down, or a rating 1-5")] = None,
    metric: Annotated[str | None, typer.Option(help="a named metric (with --value)")] = None,
    value: Annotated[float | None, typer.Option(help="the named metric's value")] = None,
    comment: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[list[str] | None, typer.Option(help="repeatable")] = None,
    user: Annotated[str | None, typer.Option(help="who says so (default: you)")] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Attach a score to a call or a session; the same user scoring the same metric again
    replaces it.

    Example: seamline feedback add req_1a2b... --score down --comment "wrong refund window"
    """
    who = actor(project)
    body: dict[str, object] = {
        "request_id": request_id,
        "session_id": session,
        "score": int(score) if score is not None and score.isdigit() else score,
        "metric": metric,
        "value": value,
        "comment": comment,
        "tags": tag,
        "user": user or who.user,
    }
    given = parse_feedback({k: v for k, v in body.items() if v is not None})
    stored, created = FeedbackStore(registry().db).record(who.project.id, given, source="cli")
    if json_output:
        print_json(stored)
        return
    target = f"call {request_id}" if request_id else f"session {session}"
    verb = "recorded" if created else "replaced"
    typer.echo(f"{verb} {stored['metric']} = {stored['value']:g} on {target}")


@feedback_app.command()
def report(
    since: Annotated[str, typer.Option("--since", help="calls since, e.g. 24h, 7d")] = "7d",
    prompt: Annotated[str | None, typer.Option(help="NAME or NAME@VERSION")] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Feedback per prompt version: each metric's mean with its 95% interval (thumbs: the
    share of thumbs up), how many calls were scored, and recent comments."""
    who = actor(project)
    groups = FeedbackStore(registry().db).summary(who.project.id, parse_since(since), prompt)
    records = [group.as_record() for group in groups]
    if json_output:
        print_json({"since": since, "prompts": records})
        return
    rows = [
        {
            "prompt": record["prompt"],
            "calls": record["calls"],
            "metric": metric,
            "n": figures["n"],
            "mean": f"{figures['estimate']:.3f} [{figures['low']:.3f}, {figures['high']:.3f}]",
        }
        for record in records
        for metric, figures in record["metrics"].items()
    ]
    print_table(rows, ["prompt", "calls", "metric", "n", "mean"])
    for record in records:
        for said in record["comments"]:
            typer.echo(f"  {record['prompt']}  {said['request_id']}: {said['comment']}")
