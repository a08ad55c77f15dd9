"""``seamline guard``: try a guard policy on a text, as the gateway would run it, or measure
it on a labelled data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seamline.cli.context import JsonOption, ProjectOption, actor, registry
from seamline.cli.output import print_json, print_table
from seamline.cli.prompts import split_ref
from seamline.guards.engine import GuardEngine, Verdict
from seamline.guards.evaluate import Metrics, evaluate, read_dataset
from seamline.guards.normalise import views
from seamline.guards.policy import GuardPolicySpec
from seamline.registry.guard_policies import policy_for

guard_app = typer.Typer(
    no_args_is_help=True, help="Guard policies: try them on text, measure them on data."
)

PolicyOption = Annotated[
    str | None,
    typer.Option(
        "--policy",
        help="NAME or NAME@REF (default: the project's 'default' policy, else the shipped one)",
    ),
]

# Table columns and the ``Metrics`` field each shows.
EVAL_COLUMNS = {
    "n": "n",
    "positives": "positives",
    "precision": "precision",
    "recall": "recall",
    "f1": "f1",
    "fpr": "fpr",
    "auc": "auc",
    "recall@1%fpr": "recall_at_1_fpr",
    "recall@2%fpr": "recall_at_2_fpr",
    "p50_ms": "latency_ms_p50",
    "p99_ms": "latency_ms_p99",
}


@guard_app.command("test")
def guard_test(
    text: str,
    untrusted: Annotated[
        bool, typer.Option("--untrusted", help="as retrieved or tool text, not a user's")
    ] = False,
    output: Annotated[bool, typer.Option("--output", help="as a model's answer")] = False,
    policy: PolicyOption = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """What each rule of the policy found in TEXT, and what the gateway would do with it.

    Example: seamline guard test "Ignore all previous instructions" --untrusted
    """
    engine = _engine(project, policy)
    verdict: Verdict
    if output:
        checked = engine.check_output(text)
        verdict, after = checked, checked.text
    elif untrusted:
        checked_input = engine.check_input([], {"text": text})
        verdict, after = checked_input, text
    else:
        checked_input = engine.check_input([{"role": "user", "content": text}])
        verdict = checked_input
        after = str(checked_input.messages[0]["content"])
    outcome = "blocked" if verdict.blocked else ("changed" if after != text else "passed")
    if not engine.enforcing:
        outcome += " (shadow mode: nothing enforced)"
    seen = [{"view": view.kind, "text": _short(view.text)} for view in views(text)]
    actions = [action.as_record() for action in verdict.actions]
    if json_output:
        print_json(
            {
                "policy": engine.ref,
                "outcome": outcome,
                "actions": actions,
                "text": after,
                "views": seen,
                "guard_ms": round(verdict.elapsed_ms, 3),
            }
        )
        return
    typer.echo(f"policy: {engine.ref}   outcome: {outcome}   {verdict.elapsed_ms:.2f} ms")
    typer.echo("\nwhat the detectors saw:")
    print_table(seen, ["view", "text"])
    typer.echo("\nfindings:")
    if actions:
        print_table(actions, ["detector", "label", "score", "action", "where", "enforced"])
    else:
        typer.echo("(none)")
    if after != text:
        typer.echo(f"\ntext after the policy:\n{after}")


@guard_app.command("eval")
def guard_eval(
    dataset: Annotated[
        Path, typer.Argument(help='JSON lines: {"text", "label": 1 (injection) or 0, "kind"?}')
    ],
    policy: PolicyOption = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """How well the policy catches prompt injection in DATASET, overall and per kind.

    Kinds starting with "indirect" are checked as untrusted text, others as user messages.

    Example: seamline guard eval held-out.jsonl --policy strict@2 --json
    """
    examples = read_dataset(dataset)
    report = evaluate(_engine(project, policy), examples)
    if json_output:
        print_json(report.as_record())
        return
    typer.echo(f"policy: {report.policy}   {len(examples)} texts")
    groups = [("overall", report.overall), *report.kinds.items()]
    print_table([_eval_row(name, metrics) for name, metrics in groups], ["group", *EVAL_COLUMNS])
    typer.echo(
        "\nprecision, recall, f1, fpr: at the policy's decision (block); auc, recall@fpr: of"
        " the highest injection score; latency: ms per text"
    )


def _eval_row(group: str, metrics: Metrics) -> dict[str, str | int | None]:
    """A table row: fractions to 3 places, so columns line up; undefined ones print as "-"."""
    record = metrics.as_record()
    row: dict[str, str | int | None] = {"group": group}
    for column, key in EVAL_COLUMNS.items():
        value = record[key]
        row[column] = f"{value:.3f}" if isinstance(value, float) else value
    return row


def _engine(project: str | None, policy: str | None) -> GuardEngine:
    who = actor(project)
    if policy is None:
        spec, version = policy_for(registry(), who)
        return GuardEngine(spec, version)
    name, ref = split_ref(policy)
    record = registry().get_version(who, "guard_policy", name, ref)
    return GuardEngine(GuardPolicySpec.model_validate(record.content), record.number)


def _short(text: str, width: int = 100) -> str:
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= width else flat[: width - 1] + "…"
