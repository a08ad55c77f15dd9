"""``seamline drift report``: whether calls now ask about other things than they did, per
prompt and use case, with a p-value and the topics that grew or shrank."""

from __future__ import annotations

from typing import Annotated

import typer

from seamline.cli.context import JsonOption, ProjectOption, actor, registry
from seamline.cli.output import print_json
from seamline.core.clock import utcnow
from seamline.monitoring.drift_report import drift_report
from seamline.telemetry.traces import parse_since

drift_app = typer.Typer(no_args_is_help=True, help="Semantic drift of live traffic.")


@drift_app.command()
def report(
    prompt: Annotated[str | None, typer.Option(help="one prompt (by name)")] = None,
    use_case: Annotated[str | None, typer.Option(help="one use case")] = None,
    since: Annotated[str, typer.Option("--since", help="the current window, e.g. 7d")] = "7d",
    reference: Annotated[
        str | None,
        typer.Option(
            help="the reference window's length, ending where the current begins "
            "(default: as long as the current)"
        ),
    ] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Test this window's calls against the reference window's (MMD, permutation p-value,
    Holm-adjusted over the groups) and show the topics that grew or shrank.

    Example: seamline drift report --prompt support-answer --since 7d --reference 28d
    """
    who = actor(project)
    now = utcnow()
    start = parse_since(since)
    length = (now - parse_since(reference)) if reference else now - start
    found = drift_report(
        registry().db,
        who.project.id,
        (start - length, start),
        (start, now),
        prompt=prompt,
        use_case=use_case,
    )
    if json_output:
        print_json(found.as_record())
        return
    typer.echo(
        f"current {found.current[0]} .. {found.current[1]} against "
        f"reference {found.reference[0]} .. {found.reference[1]}"
    )
    if not found.groups:
        typer.echo("no embedded calls in either window (gateway.drift.sample_rate)")
    for group in found.groups:
        record = group.as_record()
        where = f"{group.prompt or '-'} / {group.use_case or '-'}"
        calls = f"{group.reference_calls} -> {group.current_calls} calls"
        if group.test is None:
            typer.echo(f"\n{where}: {calls}; {record['note']}")
            continue
        verdict = "DRIFT" if group.drifted else "no drift"
        typer.echo(
            f"\n{where}: {verdict} (p {record['adjusted_p']:.4f} adjusted, MMD² "
            f"{record['mmd2']:.5f}); {calls}; {record['topic_shift']:.0%} of calls moved "
            "between topics"
        )
        for topic in record["topics"][:5]:
            name = ", ".join(topic["terms"]) or "(content not logged)"
            typer.echo(
                f"  {topic['change']:+.0%}  {name}: {topic['reference_share']:.0%} -> "
                f"{topic['current_share']:.0%}"
            )
            for example in topic["examples"][:2]:
                typer.echo(f"        e.g. {example}")
