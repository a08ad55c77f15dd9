"""``seamline evals``: eval sets, pushed and listed like prompts (runs and the release gate
build on them)."""

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
from seamline.core.errors import InvalidInput
from seamline.registry.loader import load_drafts

evals_app = typer.Typer(no_args_is_help=True, help="Eval sets: push and list them.")

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
