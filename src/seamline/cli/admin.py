"""``seamline audit``, ``keys``, ``projects``, ``policies`` and ``db``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from seamline.cli.context import AsUser, JsonOption, ProjectOption, actor, registry, settings
from seamline.cli.output import print_json, print_table
from seamline.core.clock import isoformat, utcnow
from seamline.core.errors import InvalidInput
from seamline.registry import anchors
from seamline.registry.identity import ensure_project, parse_scopes
from seamline.registry.policy import AliasPolicy
from seamline.registry.workspace import open_database
from seamline.store.migrate import upgrade
from seamline.telemetry.retention import prune_content
from seamline.telemetry.traces import duration

audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (shown once, stored hashed).")
projects_app = typer.Typer(no_args_is_help=True, help="Projects: the tenants of seamline.")
policies_app = typer.Typer(no_args_is_help=True, help="Who may move which alias, and when.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")


AnchorDestinations = Annotated[
    list[str] | None,
    typer.Option(
        "--to",
        help="file:PATH, a path, or an http(s) URL to POST to; repeatable "
        "(default: $SEAMLINE_HOME/audit-anchors.jsonl)",
    ),
]
AnchorFile = Annotated[
    Path | None,
    typer.Option(
        "--anchor",
        help="anchor file (JSON lines) to check against "
        "(default: $SEAMLINE_HOME/audit-anchors.jsonl when it exists)",
    ),
]


@audit_app.command("verify")
def audit_verify(
    anchor_file: AnchorFile = None, project: ProjectOption = None, json_output: JsonOption = False
) -> None:
    """Recompute the keyed hash chain and check it against every anchor of the project; exit
    1 naming the first entry that does not match, or the entries cut off its end. Example:
    seamline audit verify --anchor /mnt/worm/audit-anchors.jsonl"""
    who = actor(project)
    path = anchor_file or anchors.default_file(settings().home)
    recorded: list[anchors.Anchor] = []
    if anchor_file is not None or path.exists():
        recorded = anchors.read_file(path, who.project.name)
        if anchor_file is not None and not recorded:
            raise InvalidInput(f"{path} holds no anchor of project {who.project.name}")
    report = registry().verify_audit(who, anchors=recorded)
    if json_output:
        print_json(report.to_dict())
    elif report.ok:
        typer.echo(
            f"audit chain intact: {report.entries} entries verified, head {report.head_hash}"
        )
        if report.anchor is None:
            typer.echo(
                "note: no anchor recorded, so rows cut off the end would go unnoticed: "
                "run 'seamline audit anchor'",
                err=True,
            )
        else:
            typer.echo(
                f"consistent with {len(recorded)} anchor(s) in {path}, the latest of "
                f"{isoformat(report.anchor.at)} at {report.anchor.entries} entries"
            )
    else:
        failed = (
            f"audit chain broken at entry {report.first_bad_seq}"
            if report.first_bad_seq
            else "audit anchor check failed"
        )
        typer.echo(f"{failed}: {report.problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(
    to: AnchorDestinations = None, project: ProjectOption = None, json_output: JsonOption = False
) -> None:
    """Record the chain's head (entry count, hash, time; signed with the installation secret)
    outside the database, where its writers cannot reach it, so that 'audit verify' notices
    rows cut off the end. Run it after every release, or from cron. Example:
    seamline audit anchor --to file:/mnt/worm/anchors.jsonl --to https://ops.example.com/anchor"""
    who = actor(project)
    destinations = to or [str(anchors.default_file(settings().home))]
    files = [p for p in map(anchors.file_destination, destinations) if p and p.exists()]
    known = [a for path in files for a in anchors.read_file(path, who.project.name)]
    anchor = registry().anchor_audit(who, anchors=known)
    sent = [anchors.send(anchor, destination) for destination in destinations]
    if json_output:
        print_json({"anchor": anchor.to_dict(), "sent_to": sent})
        return
    typer.echo(
        f"anchored project {anchor.project}: {anchor.entries} entries, head {anchor.head_hash}"
    )
    for destination in sent:
        typer.echo(f"  -> {destination}")


@audit_app.command("log")
def audit_log(
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="how many entries")] = 50,
    action: Annotated[str | None, typer.Option("--action", help="e.g. alias, key.create")] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """The newest audit entries, newest first."""
    entries = registry().audit_log(actor(project), limit=last, action=action)
    rows = [entry.to_dict() for entry in entries]
    if json_output:
        print_json({"data": rows})
    else:
        for row in rows:
            row["hash"] = row["hash"][:12]
        print_table(rows, ["seq", "at", "actor", "action", "target", "details", "hash"])


@keys_app.command("create")
def keys_create(
    scopes: Annotated[list[str], typer.Option("--scopes", help="admin, write, read, invoke")],
    project: ProjectOption = None,
    name: Annotated[str, typer.Option("--name", help="what the key is for")] = "api",
    owner: Annotated[str | None, typer.Option("--owner", help="default: the acting user")] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models", help="models it may call, e.g. 'gpt-4o-mini,local-*' (default: any)"
        ),
    ] = None,
    as_user: AsUser = None,
    json_output: JsonOption = False,
) -> None:
    """Create an API key and print it once. Example:
    seamline keys create --project default --scopes invoke,read --name checkout-service"""
    who = actor(project, as_user)
    allowed = [m.strip() for v in models for m in v.split(",") if m.strip()] if models else None
    plaintext, info = registry().create_key(
        who, owner=owner or who.user, scopes=parse_scopes(scopes), name=name, models=allowed
    )
    if json_output:
        print_json({**info.to_dict(), "key": plaintext})
        return
    typer.echo(plaintext)
    typer.echo(
        f"key {info.id} ({', '.join(info.scopes)}) for {info.owner} in project "
        f"{who.project.name}: shown once, store it now",
        err=True,
    )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (key_...), see 'keys list'")],
    project: ProjectOption = None,
    as_user: AsUser = None,
) -> None:
    """Revoke a key; requests with it fail from the next one on."""
    info = registry().revoke_key(actor(project, as_user), key_id)
    typer.echo(f"revoked {info.id} ({info.name})")


@keys_app.command("list")
def keys_list(project: ProjectOption = None, json_output: JsonOption = False) -> None:
    """Keys of a project (never their secrets)."""
    rows = [k.to_dict() for k in registry().list_keys(actor(project))]
    if json_output:
        print_json({"data": rows})
    else:
        print_table(rows, ["id", "name", "prefix", "owner", "scopes", "created_at", "revoked_at"])


@projects_app.command("create")
def projects_create(name: str, as_user: AsUser = None) -> None:
    """Create a project. Example: seamline projects create checkout"""
    with registry().db.write() as conn:
        _, created = ensure_project(conn, name, actor=as_user or settings().acting_user)
    typer.echo(f"created project {name}" if created else f"project {name} already exists")


@projects_app.command("logging")
def projects_logging(
    mode: Annotated[
        str, typer.Argument(help="full, redacted (personal data and secrets masked) or none")
    ],
    project: ProjectOption = None,
    as_user: AsUser = None,
) -> None:
    """What the gateway stores of prompts and answers. Example:
    seamline projects logging redacted --project checkout"""
    updated = registry().set_content_logging(actor(project, as_user), mode)
    typer.echo(f"project {updated.name}: content logging {updated.content_logging}")


@policies_app.command("list")
def policies_list(project: ProjectOption = None, json_output: JsonOption = False) -> None:
    """Alias policies in force (production's default shows when none is set)."""
    rows = [p.to_dict() for p in registry().list_policies(actor(project))]
    if json_output:
        print_json({"data": rows})
    else:
        print_table(
            rows,
            [
                "alias",
                "allowed_scopes",
                "required_approvals",
                "approver_must_differ",
                "require_gate",
                "is_default",
            ],
        )


@policies_app.command("set")
def policies_set(
    alias: str,
    scopes: Annotated[list[str], typer.Option("--scopes", help="scopes that may move it")] = [  # noqa: B006
        "admin",
        "write",
    ],
    approvals: Annotated[int, typer.Option("--approvals", min=0, max=10)] = 0,
    separate: Annotated[
        bool, typer.Option("--separate/--no-separate", help="approver must not be the author")
    ] = False,
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="require a passing eval")] = False,
    project: ProjectOption = None,
    as_user: AsUser = None,
) -> None:
    """Set the policy of an alias. Example:
    seamline policies set staging --approvals 1 --separate"""
    policy = AliasPolicy(
        alias,
        sorted(s.value for s in parse_scopes(scopes)),
        approvals,
        separate,
        gate,
        is_default=False,
    )
    saved = registry().set_policy(actor(project, as_user), policy)
    typer.echo(f"policy for {alias}: {saved.to_dict()}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    db = open_database(settings())
    applied = upgrade(db, secret=settings().key_secret())
    typer.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@db_app.command("prune-content")
def db_prune_content(
    older_than: Annotated[
        str | None,
        typer.Option(help="e.g. 30d (default: content_retention_days of seamline.toml)"),
    ] = None,
) -> None:
    """Delete what calls said (messages, answers, variables) from events older than a limit;
    the events' numbers and the hourly rollups stay."""
    config = settings()
    if older_than is None and config.content_retention_days is None:
        raise InvalidInput("give --older-than, or set content_retention_days in seamline.toml")
    span = (
        duration(older_than) if older_than else timedelta(days=config.content_retention_days or 0)
    )
    pruned = prune_content(registry().db, utcnow() - span)
    typer.echo(f"content deleted from {pruned} events older than {span.days} days")
