"""``seamline evals``: eval sets (pushed and listed like prompts, grown from production
calls, and measured against them: ``add-from-traces``, ``coverage``) and the gate's
statistics over scored cases (``compare``: exit 0 when the gate passes, 1 when it fails, 2
on a usage error). Runs are in ``cli.eval_runs``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

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
from seamline.core.errors import InvalidInput, NotFound, SeamlineError
from seamline.evals.conditions import MAX_ERROR_SHARE
from seamline.evals.coverage import (
    calibrated_threshold,
    group_coverage,
    input_text,
    production_inputs,
)
from seamline.evals.report import GateReport, gate_report, read_scores
from seamline.evals.traces import TraceFilter, sample_cases
from seamline.providers.local_vectors import embed
from seamline.registry import Actor
from seamline.registry.loader import draft_from_mapping, load_drafts
from seamline.telemetry.traces import parse_since

evals_app = typer.Typer(
    no_args_is_help=True, help="Eval sets: push and list them; compare scored runs."
)

EVAL_SET, PROMPT = "eval_set", "prompt"
ToleranceOption = Annotated[
    float, typer.Option(help="a drop smaller than this is not a regression")
]
MaxErrorsOption = Annotated[
    float, typer.Option(help="the share of errored cases that fails the gate")
]


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
    tolerance: ToleranceOption = 0.0,
    max_errors: MaxErrorsOption = MAX_ERROR_SHARE,
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
        usage_error(exc.message)
    if json_output:
        print_json(report.as_record())
    else:
        print_report(report)
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


def print_report(report: GateReport) -> None:
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


def usage_error(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@evals_app.command("add-from-traces")
def add_from_traces(
    prompt: Annotated[str | None, typer.Option("--prompt", help="calls of this prompt")] = None,
    version: Annotated[int | None, typer.Option("--version", help="of this version")] = None,
    use_case: Annotated[str | None, typer.Option("--use-case", help="of this use case")] = None,
    status: Annotated[str | None, typer.Option("--status", help="ok, error or blocked")] = None,
    model: Annotated[str | None, typer.Option("--model", help="asking this model")] = None,
    since: Annotated[str, typer.Option("--since", help="e.g. 24h, 7d")] = "7d",
    limit: Annotated[int, typer.Option(min=1, max=5000, help="the most cases to add")] = 50,
    seed: Annotated[int, typer.Option(help="the sample's seed")] = 0,
    eval_set: Annotated[
        str | None,
        typer.Option("--set", help="the eval set to extend (default: the prompt's)"),
    ] = None,
    answers_as_reference: Annotated[
        bool,
        typer.Option(
            "--answers-as-reference", help="keep production's answer as the case's reference"
        ),
    ] = False,
    message: MessageOption = "",
    dry_run: DryRunOption = False,
    as_user: AsUser = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Sample production calls into a new version of an eval set: each case has the call's
    prompt variables and its caller's own messages, as the content-logging policy kept them.

    Example: seamline evals add-from-traces --prompt support-answer --status ok --limit 30
    """
    who = actor(project, as_user)
    target = eval_set or _prompt_eval_set(who, prompt)
    try:
        current = registry().get_version(who, EVAL_SET, target, None).content
    except NotFound:
        current = {
            "kind": EVAL_SET,
            "name": target,
            "description": "Cases sampled from production calls",
            "scorers": [{"name": "judge"}],
            "cases": [],
        }
    where = TraceFilter(prompt, version, use_case, status, model, parse_since(since))
    with registry().db.read() as conn:
        sampled = sample_cases(
            conn,
            who.project.id,
            where,
            limit=limit,
            seed=seed,
            prompt_messages=lambda name, number: len(
                registry().get_version(who, PROMPT, name, number).content["messages"]
            ),
            known=current["cases"],
            answers_as_reference=answers_as_reference,
        )
    if not sampled.cases:
        skipped = "; ".join(f"{n} {why}" for why, n in sampled.skipped.items()) or "none"
        raise InvalidInput(f"no case to add: {sampled.matched} calls matched (skipped: {skipped})")
    document = {**current, "cases": [*current["cases"], *sampled.cases]}
    note = message or f"{len(sampled.cases)} cases from production calls ({since})"
    push_drafts(
        [draft_from_mapping(document, source="traces")],
        note,
        dry_run,
        as_user,
        project,
        json_output,
    )
    for why, count in sampled.skipped.items():
        typer.echo(f"skipped {count}: {why}", err=True)


def _prompt_eval_set(who: Actor, prompt: str | None) -> str:
    """The eval set a prompt names (its latest version), else ``PROMPT-traces``."""
    if prompt is None:
        raise InvalidInput("give --set NAME, or --prompt NAME to extend its eval set")
    named = registry().get_version(who, PROMPT, prompt, None).content.get("eval_set")
    return str(named).partition("@")[0] if named else f"{prompt}-traces"


@evals_app.command("coverage")
def coverage_command(
    days: Annotated[int, typer.Option(min=1, max=365, help="calls of the last N days")] = 7,
    prompt: Annotated[str | None, typer.Option("--prompt", help="only this prompt")] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """The share of recent production calls whose input is near an eval case (MiniLM cosine
    at a threshold calibrated on paraphrase pairs), per prompt and use case, and the largest
    uncovered groups of calls with examples: the cases to add next.

    Example: seamline evals coverage --days 30 --prompt support-answer
    """
    who = actor(project)
    threshold = calibrated_threshold(embed)
    sets = {item.name: _cases(who, item.name) for item in registry().list_artefacts(who, EVAL_SET)}
    everything = [case for cases in sets.values() for case in cases]

    def prompt_messages(name: str, number: int) -> int:
        return len(registry().get_version(who, PROMPT, name, number).content["messages"])

    with registry().db.read() as conn:
        groups = production_inputs(
            conn, who.project.id, parse_since(f"{days}d"), prompt, prompt_messages
        )
    results = []
    for (name, use_case), texts in sorted(groups.items(), key=lambda g: -len(g[1])):
        named = _prompt_eval_set(who, name) if name else None
        cases = sets.get(named, everything) if named else everything
        vectors = embed([input_text(c.get("variables"), c.get("messages")) for c in cases])
        results.append(group_coverage(name, use_case, texts, vectors, embed, threshold.cosine))
    if json_output:
        print_json(
            {
                "threshold": {
                    "cosine": threshold.cosine,
                    "paraphrase_recall": threshold.paraphrase_recall,
                    "near_miss_rate": threshold.near_miss_rate,
                },
                "days": days,
                "data": [r.as_record() for r in results],
            }
        )
        return
    typer.echo(
        f"near: cosine >= {threshold.cosine:.3f} (paraphrases {threshold.paraphrase_recall:.0%}"
        f" at or above, near misses {threshold.near_miss_rate:.0%}; {threshold.pairs} pairs)"
    )
    for r in results:
        share = (
            f"{r.share.estimate:.0%} [{r.share.low:.0%}, {r.share.high:.0%}]" if r.share else "-"
        )
        typer.echo(
            f"{r.prompt or '-'} / {r.use_case or '-'}: {r.covered} of {r.compared} calls covered "
            f"({share}); {r.calls - r.compared} without logged content"
        )
        for cluster in r.uncovered:
            typer.echo(f"  uncovered x{cluster.size}: " + " | ".join(cluster.examples))


def _cases(who: Actor, name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = registry().get_version(who, EVAL_SET, name, None).content["cases"]
    return cases
