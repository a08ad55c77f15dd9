"""``seamline guard``: try a guard policy on a text, as the gateway would run it."""

from __future__ import annotations

from typing import Annotated

import typer

from seamline.cli.context import JsonOption, ProjectOption, actor, registry
from seamline.cli.output import print_json, print_table
from seamline.cli.prompts import split_ref
from seamline.guards.engine import GuardEngine, Verdict
from seamline.guards.normalise import views
from seamline.guards.policy import GuardPolicySpec
from seamline.registry.guard_policies import policy_for

guard_app = typer.Typer(no_args_is_help=True, help="Guard policies: try them on text.")

PolicyOption = Annotated[
    str | None,
    typer.Option(
        "--policy",
        help="NAME or NAME@REF (default: the project's 'default' policy, else the shipped one)",
    ),
]


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
