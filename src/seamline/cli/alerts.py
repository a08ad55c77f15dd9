"""``seamline alerts``: check the ``[[alerts]]`` rules now (what a cron job or CI step can
run beside the gateway's own checks), and list what fired."""

from __future__ import annotations

from typing import Annotated

import typer

from seamline.cli.context import JsonOption, ProjectOption, actor, registry, settings
from seamline.cli.output import print_json, print_table
from seamline.core.clock import utcnow
from seamline.monitoring.alerts import AlertStore
from seamline.monitoring.delivery import run_alerts
from seamline.telemetry.traces import parse_since

alerts_app = typer.Typer(no_args_is_help=True, help="Alerts on live traffic.")


@alerts_app.command()
def check(json_output: JsonOption = False) -> None:
    """Check every rule of seamline.toml's [[alerts]] now; post and record what fires.
    Exit 1 when something fired (a CI step or cron job can act on it)."""
    config = settings()
    if not config.alerts:
        typer.echo("no [[alerts]] rules in seamline.toml")
        return
    fired = run_alerts(registry().db, config.alerts, config.alert_webhook, utcnow())
    if json_output:
        print_json({"fired": [f.as_record() for f in fired]})
    else:
        for firing in fired:
            typer.echo(f"{firing.rule} ({firing.kind}): {firing.message}")
        if not fired:
            typer.echo(f"{len(config.alerts)} rules checked: nothing fired")
    raise typer.Exit(1 if fired else 0)


@alerts_app.command("list")
def list_alerts(
    since: Annotated[str, typer.Option("--since", help="e.g. 24h, 7d")] = "7d",
    kind: Annotated[
        str | None, typer.Option(help="error_rate, latency, cost_anomaly, model_change, ...")
    ] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """The project's alerts, newest first, with their evidence and sample calls."""
    who = actor(project)
    found = AlertStore(registry().db).recent(who.project.id, parse_since(since), kind)
    if json_output:
        print_json({"since": since, "alerts": found})
        return
    rows = [
        {
            "fired_at": alert["fired_at"],
            "rule": alert["rule"],
            "kind": alert["kind"],
            "message": alert["message"],
            "delivered": alert["delivery"].get("delivered"),
        }
        for alert in found
    ]
    print_table(rows, ["fired_at", "rule", "kind", "message", "delivered"])
