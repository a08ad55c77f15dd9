"""What every command needs: settings, the registry on the configured database, the actor."""

from __future__ import annotations

from functools import cache
from typing import Annotated

import typer

from seamline.core.errors import SeamlineError
from seamline.core.settings import Settings
from seamline.registry import Actor, Registry
from seamline.registry.workspace import local_actor, open_registry
from seamline.store.migrate import current_revision, head_revision

AsUser = Annotated[
    str | None,
    typer.Option("--as", help="act as this user (default: $SEAMLINE_USER, else the OS user)"),
]
ProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="project (default: $SEAMLINE_PROJECT)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
MessageOption = Annotated[str, typer.Option("--message", "-m", help="why this change")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="show what would change")]
OverrideOption = Annotated[bool, typer.Option("--override", help="release despite the gate")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="why (needed to override)")]


class NotInitialised(SeamlineError):
    default_code = "not_initialised"


@cache
def settings() -> Settings:
    return Settings()


@cache
def registry() -> Registry:
    """The registry, after checking that the database schema is current."""
    opened = open_registry(settings())
    if current_revision(opened.db) != head_revision(opened.db):
        raise NotInitialised(
            "the database is not initialised or not up to date: run 'seamline init' "
            "(or 'seamline db upgrade')"
        )
    return opened


def actor(project: str | None = None, user: str | None = None) -> Actor:
    return local_actor(registry().db, project or settings().project, user or settings().acting_user)
