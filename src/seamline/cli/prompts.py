"""``seamline prompts``: push prompt files, inspect versions, release by moving aliases."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from seamline.cli.context import (
    AsUser,
    DryRunOption,
    JsonOption,
    MessageOption,
    OverrideOption,
    ProjectOption,
    ReasonOption,
    actor,
    registry,
)
from seamline.cli.output import print_json, print_table
from seamline.core.clock import isoformat
from seamline.core.errors import InvalidInput
from seamline.registry.loader import Draft, load_drafts
from seamline.registry.records import AliasRecord
from seamline.registry.specs import REFERENCE, content_as_yaml

app = typer.Typer(
    no_args_is_help=True, help="Versioned prompts: push, inspect, release, roll back."
)

PROMPT = "prompt"


def split_ref(value: str) -> tuple[str, str | None]:
    """``NAME``, ``NAME@ALIAS`` or ``NAME@VERSION`` into the name and the reference."""
    match = REFERENCE.fullmatch(value)
    if match is None:
        raise InvalidInput(f"invalid reference {value!r}: use NAME, NAME@ALIAS or NAME@N")
    return match.group("name"), match.group("ref")


@app.command()
def push(
    paths: Annotated[
        list[Path], typer.Argument(help="YAML files or folders (searched recursively)")
    ],
    message: MessageOption = "",
    dry_run: DryRunOption = False,
    as_user: AsUser = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Push prompt (and other artefact) files; unchanged content creates no version.

    Example: seamline prompts push examples/prompts -m "tighter grounding rule"
    """
    push_drafts(load_drafts(paths), message, dry_run, as_user, project, json_output)


def push_drafts(
    drafts: list[Draft],
    message: str,
    dry_run: bool,
    as_user: str | None,
    project: str | None,
    json_output: bool,
) -> None:
    """Push validated drafts and say, per artefact, what became of it."""
    pushed = registry().push(actor(project, as_user), drafts, message=message, dry_run=dry_run)
    if json_output:
        print_json({"dry_run": dry_run, "data": [p.to_dict() for p in pushed]})
        return
    for item in pushed:
        if item.status == "unchanged":
            typer.echo(f"  unchanged  {item.kind} {item.name} v{item.version}")
        else:
            was = f" (was v{item.previous})" if item.previous else " (new)"
            verb = "would create" if dry_run else "created"
            typer.echo(f"  {verb}  {item.kind} {item.name} v{item.version}{was}")
    created = sum(item.status == "created" for item in pushed)
    note = " (dry run: nothing written)" if dry_run else ""
    typer.echo(
        f"{created} version(s) {'to create' if dry_run else 'created'}, "
        f"{len(pushed) - created} unchanged{note}"
    )


@app.command("list")
def list_prompts(project: ProjectOption = None, json_output: JsonOption = False) -> None:
    """List prompts with their latest version and aliases."""
    items = registry().list_artefacts(actor(project), PROMPT)
    rows = [item.to_dict() for item in items]
    if json_output:
        print_json({"data": rows})
    else:
        print_table(rows, ["name", "latest_version", "aliases", "updated_at", "description"])


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME@VERSION")],
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one version: metadata, lineage and content (default: the latest)."""
    name, version_ref = split_ref(ref)
    record = registry().get_version(actor(project), PROMPT, name, version_ref)
    if json_output:
        print_json(record.to_dict())
        return
    typer.echo(f"{record.name} v{record.number}  sha256:{record.content_hash[:16]}")
    typer.echo(f"author: {record.author}   created: {isoformat(record.created_at)}")
    typer.echo(
        f"aliases: {', '.join(record.aliases) or '-'}   parent: "
        f"{'v' + str(record.parent) if record.parent else '-'}"
    )
    if record.message:
        typer.echo(f"message: {record.message}")
    for link in record.lineage:
        at = f"v{link.version}" if link.version else "(not in registry)"
        typer.echo(f"lineage: {link.relation} -> {link.kind} {link.name} {at}")
    typer.echo("---")
    typer.echo(content_as_yaml(record.content).rstrip())


@app.command()
def versions(name: str, project: ProjectOption = None, json_output: JsonOption = False) -> None:
    """List the versions of a prompt, newest first."""
    records = registry().versions(actor(project), PROMPT, name)
    rows = [{**r.to_dict(), "hash": r.content_hash[:12]} for r in records]
    if json_output:
        print_json({"data": [r.to_dict() for r in records]})
    else:
        print_table(rows, ["version", "hash", "author", "created_at", "aliases", "message"])


@app.command()
def diff(
    name: str,
    a: Annotated[str, typer.Argument(help="version number or alias")],
    b: Annotated[str, typer.Argument(help="version number or alias")],
    project: ProjectOption = None,
) -> None:
    """Unified diff between two versions. Example: seamline prompts diff support-answer 1 2"""
    text = registry().diff(actor(project), PROMPT, name, a, b)
    typer.echo(text.rstrip() if text else f"{name}: {a} and {b} have the same content")


@app.command()
def promote(
    name: str,
    version: Annotated[str, typer.Argument(help="version number (or an alias to copy)")],
    to: Annotated[str, typer.Option("--to", help="alias to move, e.g. staging, production")],
    weight: Annotated[int | None, typer.Option("--weight", help="traffic %% (canary)")] = None,
    override: OverrideOption = False,
    reason: ReasonOption = None,
    expect: Annotated[
        int | None,
        typer.Option("--expect", help="fail unless the alias points at this version (0: unset)"),
    ] = None,
    as_user: AsUser = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move an alias to a version: a release, audited.

    Example: seamline prompts promote support-answer 3 --to production
    """
    record = registry().move_alias(
        actor(project, as_user),
        PROMPT,
        name,
        to,
        version,
        weight=weight,
        expected_version=expect,
        override=override,
        reason=reason,
    )
    print_alias(record, name, to, json_output)


def print_alias(
    record: AliasRecord, name: str, alias: str, json_output: bool, *, rolled_back: bool = False
) -> None:
    """An alias after a move or a rollback."""
    if json_output:
        print_json(record.to_dict())
    elif rolled_back:
        typer.echo(f"{name}@{alias} rolled back to v{record.version} (revision {record.revision})")
    else:
        share = f" ({record.weight}% of traffic)" if record.weight is not None else ""
        typer.echo(f"{name}@{alias} -> v{record.version}{share} (revision {record.revision})")


@app.command()
def approve(
    name: str,
    version: str,
    for_alias: Annotated[
        str, typer.Option("--for", help="alias the approval is for")
    ] = "production",
    comment: Annotated[str | None, typer.Option("--comment", "-c")] = None,
    as_user: AsUser = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Approve a version for an alias (production by default). Example:
    seamline prompts approve support-answer 3 --as reviewer"""
    result = registry().approve(
        actor(project, as_user), PROMPT, name, version, alias=for_alias, comment=comment
    )
    if json_output:
        print_json(result)
    else:
        typer.echo(
            f"{result['approver']} approved {name} v{result['version']} for "
            f"{result['alias']} ({result['approvals']}/{result['required']} approvals)"
        )


@app.command()
def rollback(
    name: str,
    alias: Annotated[str, typer.Option("--alias", help="alias to move back")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_user: AsUser = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move an alias back to its previous target. Example:
    seamline prompts rollback support-answer --alias production"""
    record = registry().rollback(actor(project, as_user), PROMPT, name, alias, reason=reason)
    print_alias(record, name, alias, json_output, rolled_back=True)


@app.command()
def history(
    name: str,
    alias: Annotated[str, typer.Option("--alias", help="alias whose moves to list")],
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Every move of an alias, oldest first."""
    changes = registry().alias_history(actor(project), PROMPT, name, alias)
    rows = [c.to_dict() for c in changes]
    if json_output:
        print_json({"data": rows})
    else:
        print_table(
            rows,
            [
                "revision",
                "action",
                "from_version",
                "to_version",
                "weight",
                "actor",
                "override",
                "at",
                "reason",
            ],
        )


@app.command()
def render(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME@VERSION")],
    var: Annotated[
        list[str] | None,
        typer.Option("--var", "-v", help="NAME=VALUE; VALUE is parsed as JSON when it can be"),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Render a version with variables and print the messages and parameters as JSON.

    Example: seamline prompts render support-answer@production -v question="Where is it?"
    """
    name, version_ref = split_ref(ref)
    record = registry().get_version(actor(project), PROMPT, name, version_ref)
    prompt = record.as_prompt(
        alias=version_ref if version_ref and not version_ref.isdigit() else None
    )
    types = {variable.name: variable.type for variable in prompt.spec.variables}
    rendered = prompt.render(**_parse_vars(var or [], types))
    print_json(
        {
            "prompt": name,
            "version": record.number,
            "model": rendered.model,
            "messages": rendered.messages,
            "parameters": rendered.parameters,
            "tools": rendered.tools,
        }
    )


def _parse_vars(pairs: list[str], types: Mapping[str, str]) -> dict[str, Any]:
    """Strings stay as typed; values of other declared types are read as JSON."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--var {pair!r}: use NAME=VALUE")
        if types.get(key, "string") == "string":
            values[key] = raw
            continue
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values
