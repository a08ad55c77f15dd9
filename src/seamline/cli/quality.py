"""``seamline quality report``: live calls' online scores per prompt version, and canary
against control."""

from __future__ import annotations

from typing import Annotated

import typer

from seamline.cli.context import JsonOption, ProjectOption, actor, registry
from seamline.cli.output import print_json, print_table
from seamline.monitoring.quality import CallScores
from seamline.telemetry.traces import parse_since

quality_app = typer.Typer(no_args_is_help=True, help="Online quality of live calls.")


@quality_app.command()
def report(
    since: Annotated[str, typer.Option("--since", help="calls since, e.g. 24h, 7d")] = "7d",
    prompt: Annotated[str | None, typer.Option(help="one prompt (by name)")] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Each metric's mean with its 95% interval per prompt version, and where a canary runs,
    canary minus control with its interval and the p-value that the canary is worse."""
    who = actor(project)
    found = CallScores(registry().db).report(who.project.id, parse_since(since), prompt)
    record = found.as_record()
    if json_output:
        print_json(record)
        return
    rows = [
        {
            "prompt": v["prompt"],
            "metric": v["metric"],
            "n": v["n"],
            "mean": f"{v['estimate']:.3f} [{v['low']:.3f}, {v['high']:.3f}]",
        }
        for v in record["versions"]
    ]
    print_table(rows, ["prompt", "metric", "n", "mean"])
    for c in record["canary_vs_control"]:
        d = c["difference"]
        typer.echo(
            f"canary vs control, {c['prompt']} {c['metric']}: {d['estimate']:+.3f} "
            f"[{d['low']:+.3f}, {d['high']:+.3f}] ({c['canary']} against {c['control']} "
            f"calls; p(canary worse) {c['p_worse']:.4f})"
        )
