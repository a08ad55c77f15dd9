"""``seamline rag report``: live RAG calls scored off the request path, split by the stage
blamed (retrieval, freshness, integration, unknown) per prompt and index, with examples."""

from __future__ import annotations

from typing import Annotated

import typer

from seamline.cli.context import JsonOption, ProjectOption, actor, registry
from seamline.cli.output import print_json, print_table
from seamline.rag.assessments import Assessments
from seamline.rag.online import ATTRIBUTIONS, OK
from seamline.telemetry.traces import parse_since

rag_app = typer.Typer(no_args_is_help=True, help="RAG observability on live traffic.")


@rag_app.command()
def report(
    since: Annotated[str, typer.Option("--since", help="e.g. 30m, 24h, 7d")] = "24h",
    prompt: Annotated[str | None, typer.Option(help="NAME or NAME@VERSION")] = None,
    index: Annotated[str | None, typer.Option(help="NAME or NAME@VERSION")] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Why RAG answers went wrong: of the calls scored since ``--since``, how many each
    stage is blamed for, per prompt and index, the mean scores, and examples with evidence
    (``seamline traces show REQUEST_ID`` shows the call).

    Example: seamline rag report --since 7d --index handbook
    """
    who = actor(project)
    found = Assessments(registry().db).report(
        who.project.id, parse_since(since), prompt=prompt, index=index
    )
    if json_output:
        print_json(found.as_record())
        return
    if not found.groups:
        typer.echo(
            f"no RAG call scored since {found.since}: calls must retrieve (a prompt's "
            "retrieval, or seamline.retrieval) and fall in gateway.rag's sample_rate"
        )
        return
    rows = []
    for group in found.groups:
        row: dict[str, object] = {
            "prompt": group.prompt or "-",
            "index": group.index,
            "scored": group.scored,
        }
        row.update((kind, _share(group.counts[kind], group.scored)) for kind in ATTRIBUTIONS)
        row.update(group.mean_scores)
        rows.append(row)
    scores = sorted({name for group in found.groups for name in group.mean_scores})
    print_table(rows, ["prompt", "index", "scored", *ATTRIBUTIONS, *scores])
    for group in found.groups:
        for kind, examples in group.examples.items():
            if kind == OK:
                continue
            typer.echo(f"\n{kind} ({group.prompt or '-'} on {group.index}):")
            for example in examples:
                typer.echo(f"  {example['request_id']}  {example['reason']}")


def _share(count: int, total: int) -> str:
    return f"{count} ({count / total:.0%})" if count else "0"
