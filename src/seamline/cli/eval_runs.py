"""``seamline evals run``, ``runs`` and ``calibrate``: what calls models, through an
in-process gateway (the same router, budgets, prices and events as ``seamline serve``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from seamline.cli.context import AsUser, JsonOption, ProjectOption, actor, registry, settings
from seamline.cli.evals import (
    MaxErrorsOption,
    ToleranceOption,
    print_report,
    usage_error,
)
from seamline.cli.output import print_json, print_table
from seamline.core.errors import SeamlineError
from seamline.evals import summary
from seamline.evals.calibration import SHIPPED_LABELS
from seamline.evals.conditions import MAX_ERROR_SHARE
from seamline.evals.evaluation import Evaluation, Outcome, RunRequest
from seamline.evals.mlflow_export import EXPERIMENT, log_run
from seamline.evals.runs import CaseResult, RunStore
from seamline.evals.watch import Verdict, Watcher
from seamline.gateway.chat import EvalModelCall
from seamline.gateway.core import Gateway
from seamline.registry import Actor

T = TypeVar("T")


def register(app: typer.Typer) -> None:
    """Add ``run``, ``runs`` and ``calibrate`` to ``seamline evals``."""
    app.command("run")(run_command)
    app.command("runs")(list_runs)
    app.command("calibrate")(calibrate_command)
    app.command("watch")(watch_command)


def run_command(
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="NAME@VERSION (or NAME@ALIAS) to evaluate")
    ] = None,
    eval_set: Annotated[
        str | None,
        typer.Option("--set", help="NAME[@VERSION] (default: the eval_set the prompt names)"),
    ] = None,
    against: Annotated[
        str, typer.Option("--against", help="the baseline: the version behind this alias")
    ] = "production",
    no_baseline: Annotated[
        bool, typer.Option("--no-baseline", help="thresholds and errored cases only")
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", help="ask this model instead of the prompt's")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="cases at once")] = 8,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", min=0, help="USD: a call that could pass it is not made"),
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="ask again instead of reading kept answers")
    ] = False,
    tolerance: ToleranceOption = 0.0,
    max_errors: MaxErrorsOption = MAX_ERROR_SHARE,
    resume: Annotated[
        str | None, typer.Option("--resume", help="RUN: finish an interrupted run")
    ] = None,
    mlflow: Annotated[
        str | None,
        typer.Option("--mlflow", help="log the run to this MLflow tracking URI too"),
    ] = None,
    mlflow_experiment: Annotated[
        str, typer.Option("--mlflow-experiment", help="the MLflow experiment")
    ] = EXPERIMENT,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML here")] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="write a pull-request summary here")
    ] = None,
    project: ProjectOption = None,
    as_user: AsUser = None,
    json_output: JsonOption = False,
) -> None:
    """Run an eval set against a prompt version and its baseline (the version behind
    --against, default production), gate it and store the run; the production gate reads it.
    Exit 0 when the gate passes, 1 when it fails, 2 on a usage error.

    Example: seamline evals run --prompt support-answer@3 --junit gate.xml --markdown pr.md
    """
    if (prompt is None) == (resume is None):
        usage_error("give --prompt NAME@VERSION, or --resume RUN")
    request = RunRequest(
        prompt=prompt or "",
        eval_set=eval_set,
        against=None if no_baseline else against,
        model=model,
        concurrency=concurrency,
        max_cost=max_cost,
        refresh=refresh,
        tolerance=tolerance,
        max_errors=max_errors,
    )
    try:
        who = actor(project, as_user)
        outcome = asyncio.run(_in_gateway(who, lambda e: _run(e, request, resume)))
    except SeamlineError as exc:
        usage_error(exc.message)
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: what finished is kept; seamline evals runs shows the run", err=True
        )
        raise typer.Exit(130) from None
    if mlflow is not None:
        try:
            logged = log_run(outcome, mlflow, mlflow_experiment)
        except SeamlineError as exc:
            usage_error(exc.message)
        typer.echo(f"logged to MLflow: experiment {mlflow_experiment}, run {logged}", err=True)
    if junit is not None:
        junit.write_bytes(summary.junit(outcome))
    if markdown is not None:
        markdown.write_text(summary.markdown(outcome), encoding="utf-8")
    if json_output:
        print_json(summary.record(outcome))
    else:
        typer.echo(
            f"run {outcome.run.id}: {outcome.run.subject.prompt_ref} on "
            f"{outcome.run.subject.eval_set_ref}, ${outcome.run.cost_usd:.4f}"
        )
        for note in outcome.notes:
            typer.echo(f"  note: {note}")
        print_report(outcome.report)
    raise typer.Exit(0 if outcome.report.passed else 1)


async def _in_gateway(who: Actor, work: Callable[[Evaluation], Awaitable[T]]) -> T:
    """``work``, its models called through an in-process gateway (the same router, budgets,
    prices and events as ``seamline serve``)."""
    gateway = Gateway(settings(), registry())
    await gateway.start()
    try:
        return await work(Evaluation(registry(), who, EvalModelCall(gateway, who)))
    finally:
        await gateway.stop()


async def _run(evaluation: Evaluation, request: RunRequest, resume: str | None) -> Outcome:
    console = Console(stderr=True)
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    tasks: dict[str, TaskID] = {}

    def advance(which: str, _: CaseResult) -> None:
        if which not in tasks:
            tasks[which] = bars.add_task(which, total=None)
        bars.advance(tasks[which])

    if resume is not None:
        with bars:
            return await evaluation.resume(resume, advance)
    estimate = await evaluation.estimate(request)
    typer.echo(
        f"{estimate.cases} cases, {estimate.to_ask} to ask "
        f"({estimate.cases - estimate.to_ask} kept or errored), "
        f"{estimate.prompt_tokens} prompt tokens, at most ${estimate.most_usd:.4f} "
        "before judges",
        err=True,
    )
    with bars:
        return await evaluation.run(request, advance)


def list_runs(
    prompt: Annotated[str | None, typer.Option("--prompt", help="only this prompt's runs")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """List eval runs, newest first: what ran, how it ended, what it cost."""
    store = RunStore(registry().db, actor(project).project.id)
    runs = [run.as_record() for run in store.latest(prompt_name=prompt, limit=limit)]
    if json_output:
        print_json({"data": runs})
    else:
        print_table(
            runs,
            [
                "id",
                "prompt",
                "model",
                "eval_set",
                "status",
                "passed",
                "cases_errored",
                "cost_usd",
                "created_at",
            ],
        )


def calibrate_command(
    judge: Annotated[
        str, typer.Option("--judge", help="the judge prompt, NAME@VERSION (or NAME@ALIAS)")
    ],
    labels: Annotated[
        Path, typer.Option("--labels", help="JSON Lines of labelled answers (default: shipped)")
    ] = SHIPPED_LABELS,
    model: Annotated[
        str | None, typer.Option("--model", help="judge with this model, not the prompt's")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="items at once")] = 8,
    verbosity: Annotated[
        bool,
        typer.Option("--verbosity", help="also grade each answer padded: the length bias"),
    ] = False,
    min_kappa: Annotated[
        float | None, typer.Option("--min-kappa", help="exit 1 when kappa is below it")
    ] = None,
    project: ProjectOption = None,
    as_user: AsUser = None,
    json_output: JsonOption = False,
) -> None:
    """Measure a judge's agreement with human labels (Cohen's kappa on pass/fail, Spearman on
    1-5 scores, with 95% intervals) and store it with the judge's version: a judge scorer
    with min_agreement gates only when its judge was measured and agrees.

    Example: seamline evals calibrate --judge answer-judge@1 --model gpt-4o-mini
    """
    try:
        who = actor(project, as_user)
        measured = asyncio.run(
            _in_gateway(
                who,
                lambda e: e.calibrate(
                    judge, labels, model=model, concurrency=concurrency, verbosity=verbosity
                ),
            )
        )
    except SeamlineError as exc:
        usage_error(exc.message)
    if json_output:
        print_json(measured.as_record())
    else:
        k = measured.kappa
        typer.echo(
            f"{measured.judge_prompt} on {measured.model}: {measured.items} items "
            f"({measured.errored} not graded) from {measured.labels}"
        )
        typer.echo(f"  kappa (pass/fail): {k.estimate:.3f} [{k.low:.3f}, {k.high:.3f}]")
        if measured.spearman is not None:
            r = measured.spearman
            typer.echo(f"  spearman (1-5):    {r.estimate:.3f} [{r.low:.3f}, {r.high:.3f}]")
        if measured.verbosity is not None:
            v = measured.verbosity
            typer.echo(
                f"  grade change when padded: {v.estimate:+.2f} [{v.low:+.2f}, {v.high:+.2f}]"
            )
        typer.echo(f"  stored as {measured.id}")
    raise typer.Exit(1 if min_kappa is not None and measured.kappa.estimate < min_kappa else 0)


def watch_command(
    interval: Annotated[int, typer.Option(min=1, help="seconds between checks")] = 60,
    once: Annotated[bool, typer.Option("--once", help="check once, then exit")] = False,
    prompt: Annotated[
        list[str] | None, typer.Option("--prompt", help="only these prompts (repeatable)")
    ] = None,
    no_probe: Annotated[
        bool, typer.Option("--no-probe", help="do not ask upstreams whether they changed")
    ] = False,
    project: ProjectOption = None,
    as_user: AsUser = None,
    json_output: Annotated[bool, typer.Option("--json", help="a JSON line per verdict")] = False,
) -> None:
    """Run the gate's suite whenever a prompt version is pushed or the upstream behind a
    production version answers as another model or build, and record how long the verdict
    took after the change. With --once, exit 1 when a gate failed.

    Example: seamline evals watch --interval 300
    """
    who = actor(project, as_user)

    async def watch(evaluation: Evaluation) -> bool:
        watcher = Watcher(evaluation, prompt, probe=not no_probe)
        failed = False
        while True:
            for verdict in await watcher.check():
                failed |= not verdict.outcome.report.passed
                _print_verdict(verdict, json_output)
            if once:
                return failed
            await asyncio.sleep(interval)

    try:
        failed = asyncio.run(_in_gateway(who, watch))
    except SeamlineError as exc:
        usage_error(exc.message)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    raise typer.Exit(1 if failed else 0)


def _print_verdict(verdict: Verdict, json_output: bool) -> None:
    run, change = verdict.outcome.run, verdict.change
    if json_output:  # one line per verdict, for a log
        record = {"change": change.as_trigger(), **summary.record(verdict.outcome)}
        typer.echo(json.dumps(record, default=str))
        return
    state = "passed" if verdict.outcome.report.passed else "FAILED"
    typer.echo(
        f"{change.prompt}: {change.kind} ({change.detail}): gate {state} "
        f"{run.verdict_after_s:.1f} s after the change (run {run.id})"
    )
