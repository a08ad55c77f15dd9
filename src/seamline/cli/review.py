"""``seamline review``: the weekly governance review of a project, as Markdown or HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seamline.cli.context import ProjectOption, actor, registry
from seamline.core.clock import utcnow
from seamline.monitoring.patterns import Embed
from seamline.monitoring.review import review
from seamline.providers.local_models import minilm_files
from seamline.telemetry.traces import duration


def review_command(
    since: Annotated[str, typer.Option("--since", help="the window, e.g. 7d")] = "7d",
    html: Annotated[Path | None, typer.Option("--html", help="write an HTML page here")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="write Markdown here")] = None,
    project: ProjectOption = None,
) -> None:
    """What changed, cost by key and route with anomalies, quality and drift per prompt
    version, failure patterns, guard activity, alerts and pending approvals, over a window.
    Prints Markdown unless --html or --markdown name files.

    Example: seamline review --since 7d --html review.html
    """
    who = actor(project)
    end = utcnow()
    embed: Embed | None = None
    if minilm_files() is not None:  # without it: no drift, failures grouped by kind only
        from seamline.providers import local_vectors

        embed = local_vectors.embed
    start = end - duration(since)
    found = review(registry().db, who.project.id, who.project.name, start, end, embed)
    if html is None and markdown is None:
        typer.echo(found.markdown(), nl=False)
        return
    for path, text in ((html, found.html), (markdown, found.markdown)):
        if path is not None:
            path.write_text(text())
            typer.echo(f"wrote {path}")
