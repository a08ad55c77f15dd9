"""``seamline traces``, ``seamline cost`` and ``seamline models``: what the gateway did."""

from __future__ import annotations

from typing import Annotated

import typer

from seamline.cli.context import JsonOption, ProjectOption, actor, registry, settings
from seamline.cli.output import print_json, print_table
from seamline.gateway.catalog import ModelCatalog
from seamline.monitoring.feedback import FeedbackStore
from seamline.monitoring.quality import CallScores
from seamline.providers.local import LocalProvider
from seamline.telemetry import traces

traces_app = typer.Typer(no_args_is_help=True, help="Calls the gateway served, one event each.")
models_app = typer.Typer(no_args_is_help=True, help="Models the gateway serves.")


@traces_app.command("list")
def traces_list(
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="how many calls")] = 20,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """The latest calls, newest first. Example: seamline traces list --last 50"""
    who = actor(project)
    with registry().db.read() as conn:
        rows = traces.recent(conn, who.project.id, last)
    if json_output:
        print_json({"data": rows})
        return
    for row in rows:
        row["prompt"] = (
            f"{row['prompt_name']}@{row['prompt_version']}" if row["prompt_name"] else None
        )
        row["tokens"] = f"{row['prompt_tokens']}/{row['completion_tokens']}"
        row["latency_ms"] = round(row["latency_ms"], 1)
    print_table(
        rows,
        [
            "time",
            "request_id",
            "status",
            "http_status",
            "model_used",
            "prompt",
            "arm",
            "tokens",
            "cost_usd",
            "latency_ms",
        ],
    )


@traces_app.command("show")
def traces_show(request_id: str, project: ProjectOption = None) -> None:
    """Everything recorded about one call, what users said of it and its online scores,
    as JSON."""
    who = actor(project)
    db = registry().db
    with db.read() as conn:
        call = traces.one(conn, who.project.id, request_id)
        said = FeedbackStore(db).of_call(conn, who.project.id, request_id, call["session_id"])
    scores = CallScores(db).of_call(who.project.id, request_id)
    print_json({**call, "feedback": said, "scores": scores})


def cost(
    by: Annotated[str, typer.Option("--by", help="project, key, model, prompt, use_case or route")],
    since: Annotated[str, typer.Option("--since", help="e.g. 30m, 24h, 7d")] = "24h",
    trajectory: Annotated[
        bool, typer.Option("--trajectory", help="cost per call, day by day, per group")
    ] = False,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Spend and volume grouped by one dimension. Example: seamline cost --by model --since 7d

    Grouped by project it spans every project; otherwise it covers one (--project)."""
    start = traces.parse_since(since)
    project_id = None if by == "project" else actor(project).project.id
    if trajectory:
        with registry().db.read() as conn:
            days = traces.cost_trajectory(conn, by, start, project_id)
        if json_output:
            print_json({"by": by, "since": since, "data": days})
        else:
            print_table(days, ["group", "day", "requests", "cost_per_call_usd"])
        return
    with registry().db.read() as conn:
        rows = traces.cost_by(conn, by, start, project_id)
    if json_output:
        print_json({"by": by, "since": since, "data": rows})
    else:
        print_table(
            rows,
            [
                "group",
                "requests",
                "errors",
                "prompt_tokens",
                "completion_tokens",
                "cost_usd",
                "avg_latency_ms",
            ],
        )


@models_app.command("list")
def models_list(json_output: JsonOption = False) -> None:
    """Model names clients can call, with their deployments (from seamline.toml)."""
    config = settings()
    embedded = LocalProvider.available() if config.gateway.embedded_models else {}
    catalog = ModelCatalog(config.models, embedded)
    rows = [
        {
            "name": name,
            "kind": entry.kind,
            "deployments": [d.id for d in entry.deployments],
            "fallbacks": entry.fallbacks,
            "context_window": entry.context_window,
        }
        for name, entry in sorted(catalog.entries.items())
    ]
    if json_output:
        print_json({"data": rows})
    else:
        print_table(rows, ["name", "kind", "deployments", "fallbacks", "context_window"])
