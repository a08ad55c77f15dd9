"""``seamline evals``: eval sets, pushed and listed like prompts, and the gate's statistics
over scored cases (``compare``: exit 0 when the gate passes, 1 when it fails, 2 on a usage
error)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seamline.cli.context import (
    AsUser,
    DryRunOption,
    JsonOption,
    MessageOption,
    ProjectOption,
    actor,
    registry,
)
from seamline.cli.output import print_json, print_table
from seamline.cli.prompts import push_drafts
from seamline.core.errors import InvalidInput, SeamlineError
from seamline.evals.report import GateReport, gate_report, read_scores
from seamline.registry.loader import load_drafts

evals_app = typer.Typer(
    no_args_is_help=True, help="Eval sets: push and list them; compare scored runs."
)

EVAL_SET = "eval_set"


@evals_app.command()
def push(
    paths: Annotated[
        list[Path], typer.Argument(help="eval set YAML files or folders (searched recursively)")
    ],
    message: MessageOption = "",
    dry_run: DryRunOption = False,
    as_user: AsUser = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Push eval sets (cases inline, or one per line in a JSON Lines ``cases_file``);
    unchanged content creates no version.

    Example: seamline evals push evals/support-qa.yaml -m "ten refund cases from traces"
    """
    drafts = load_drafts(paths)
    other = next((d for d in drafts if d.kind != EVAL_SET), None)
    if other is not None:
        raise InvalidInput(
            f"{other.source}: a {other.kind}, not an eval set (push it with seamline prompts push)"
        )
    push_drafts(drafts, message, dry_run, as_user, project, json_output)


@evals_app.command("list")
def list_sets(project: ProjectOption = None, json_output: JsonOption = False) -> None:
    """List eval sets with their latest version, aliases and number of cases."""
    who = actor(project)
    rows = []
    for item in registry().list_artefacts(who, EVAL_SET):
        latest = registry().get_version(who, EVAL_SET, item.name, None)
        rows.append({**item.to_dict(), "cases": len(latest.content.get("cases") or [])})
    if json_output:
        print_json({"data": rows})
    else:
        print_table(rows, ["name", "latest_version", "cases", "aliases", "updated_at"])


@evals_app.command()
def compare(
    candidate: Annotated[Path, typer.Argument(help="scored cases of the candidate (JSON Lines)")],
    baseline: Annotated[
        Path | None, typer.Argument(help="scored cases of the baseline, paired by case id")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="metrics to gate on (default: all)")
    ] = None,
    minimum: Annotated[
        list[str] | None, typer.Option("--min", help="METRIC=VALUE: the mean must reach it")
    ] = None,
    maximum: Annotated[
        list[str] | None, typer.Option("--max", help="METRIC=VALUE: the mean must not pass it")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="a drop smaller than this is not a regression")
    ] = 0.0,
    max_errors: Annotated[
        float, typer.Option(help="the share of errored cases that fails the gate")
    ] = 0.05,
    json_output: JsonOption = False,
) -> None:
    """Gate a candidate's scored cases: thresholds, no significant regression against the
    baseline (paired, case by case), errored cases under a cap; every mean with its 95%
    interval. Rows: {"id": CASE, "scores": {METRIC: value}, "error": REASON?}.

    Example: seamline evals compare new.jsonl prod.jsonl --metric accuracy --min accuracy=0.8
    """
    try:
        ours = read_scores(candidate)
        theirs = read_scores(baseline) if baseline is not None else None
        names = metric or sorted({m for row in ours.values() for m in row.get("scores") or {}})
        report = gate_report(
            ours,
            theirs,
            names,
            baseline_name=baseline.name if baseline is not None else "baseline",
            minimums=_bounds(minimum),
            maximums=_bounds(maximum),
            tolerance=tolerance,
            max_error_share=max_errors,
        )
    except SeamlineError as exc:  # a usage error: exit 2, as CI tools expect
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if json_output:
        print_json(report.as_record())
    else:
        _print(report)
    raise typer.Exit(0 if report.passed else 1)


def _bounds(items: list[str] | None) -> dict[str, float]:
    bounds = {}
    for item in items or []:
        name, _, value = item.partition("=")
        try:
            bounds[name] = float(value)
        except ValueError:
            raise InvalidInput(f"{item!r}: use METRIC=NUMBER") from None
    return bounds


def _print(report: GateReport) -> None:
    for item in report.metrics:
        c = item.candidate
        line = f"{item.metric}: {c.estimate:.3f} [{c.low:.3f}, {c.high:.3f}] (n={c.n})"
        if item.baseline is not None and item.comparison is not None:
            d = item.comparison.difference
            line += (
                f"  baseline {item.baseline.estimate:.3f}  difference {d.estimate:+.3f} "
                f"[{d.low:+.3f}, {d.high:+.3f}]  p(worse) {item.comparison.p_worse:.4f}"
            )
        typer.echo(line)
    for condition in report.conditions:
        mark = "pass" if condition.passed else "FAIL"
        typer.echo(f"  {mark}  {condition.condition}: {condition.detail}")
    typer.echo("gate: passed" if report.passed else "gate: failed")
