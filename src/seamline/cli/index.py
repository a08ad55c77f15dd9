"""``seamline index``: ingest sources into index versions, list and show them, query one,
and move its aliases like a prompt's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Annotated

import typer

from seamline.cli.context import (
    AsUser,
    JsonOption,
    MessageOption,
    OverrideOption,
    ProjectOption,
    ReasonOption,
    actor,
    registry,
    settings,
)
from seamline.cli.output import print_json, print_table
from seamline.cli.prompts import print_alias, split_ref
from seamline.core.clock import isoformat, utcnow
from seamline.gateway.core import GatewayThread
from seamline.gateway.embedding import blocking_embedder
from seamline.providers.local_models import LOCAL_EMBEDDING_MODEL
from seamline.rag.chunking import ChunkerConfig
from seamline.rag.freshness import answering_ages, version_freshness
from seamline.rag.indexes import Indexes, local_embedder
from seamline.rag.ingest import INDEX, Embedder
from seamline.rag.store import ChunkFilter, ChunkStore, open_store
from seamline.telemetry.traces import parse_since

index_app = typer.Typer(no_args_is_help=True, help="Versioned indexes for retrieval (RAG).")


@cache
def _store() -> ChunkStore:
    return open_store(settings())


@contextmanager
def _indexes(
    project: str | None, as_user: str | None = None, model: str = LOCAL_EMBEDDING_MODEL
) -> Iterator[Indexes]:
    """Indexes of the actor's project: ingest embeds with ``model``; a query with the model
    that embedded the version it reads. A configured model is called through an in-process
    gateway, started on first use and stopped (its events written) on the way out."""
    who = actor(project, as_user)
    started: list[GatewayThread] = []

    def embedder_for(name: str) -> Embedder:
        if not started and name != LOCAL_EMBEDDING_MODEL:
            started.append(GatewayThread(settings(), registry()))
        return blocking_embedder(started[0] if started else None, who, name)

    try:
        embedder = local_embedder() if model == LOCAL_EMBEDDING_MODEL else embedder_for(model)
        yield Indexes(registry(), who, _store(), embedder, embedder_for)
    finally:
        for thread in started:
            thread.close()


@index_app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="files or folders (text, Markdown, HTML, PDF)")
    ],
    name: Annotated[str, typer.Option("--name", help="the index")],
    tokens: Annotated[int, typer.Option(help="tokens per chunk")] = 200,
    overlap: Annotated[int, typer.Option(help="tokens shared by neighbouring chunks")] = 40,
    embedding_model: Annotated[
        str,
        typer.Option(help="the embedded MiniLM, or an embedding model of seamline.toml"),
    ] = LOCAL_EMBEDDING_MODEL,
    message: MessageOption = "",
    as_user: AsUser = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Read, chunk and embed sources into a new index version: unchanged files keep their
    vectors, a file that cannot be read is reported and left out.

    Example: seamline index ingest docs/ --name help-centre [--embedding-model text-embed]
    """
    try:
        chunker = ChunkerConfig(tokens=tokens, overlap=overlap)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).splitlines()[-1]) from None
    with _indexes(project, as_user, embedding_model) as indexes:
        pushed, report = indexes.ingest(paths, name, chunker, message=message)
    if json_output:
        print_json({"index": pushed.to_dict(), "report": report.as_record()})
        return
    typer.echo(f"{pushed.status:>9}  index {pushed.name} v{pushed.version}")
    typer.echo(
        f"sources: {len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.removed)} removed, {len(report.unchanged)} unchanged; {report.chunks} "
        f"chunks ({report.embedded} embedded in {report.embed_seconds:.2f} s, "
        f"{report.reused} reused)"
    )
    for where, why in report.errors.items():
        typer.echo(f"  left out {where}: {why}", err=True)


@index_app.command("list")
def list_indexes(project: ProjectOption = None, json_output: JsonOption = False) -> None:
    """Every index with its latest version, aliases and size."""
    who = actor(project)
    rows = []
    for item in registry().list_artefacts(who, INDEX):
        latest = registry().get_version(who, INDEX, item.name, None).content
        rows.append(
            {
                **item.to_dict(),
                "chunks": latest.get("chunks"),
                "sources": len(latest.get("sources") or []),
                "model": (latest.get("embedding") or {}).get("model"),
            }
        )
    if json_output:
        print_json({"data": rows})
    else:
        print_table(
            rows, ["name", "latest_version", "sources", "chunks", "model", "aliases", "updated_at"]
        )


@index_app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME@VERSION")],
    against: Annotated[
        str | None, typer.Option("--diff", help="another version or alias: the sources that differ")
    ] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """One index version: its embedding model, chunker, snapshot and sources."""
    who = actor(project)
    name, version = split_ref(ref)
    record = registry().get_version(who, INDEX, name, version)
    content = record.content
    changes = None
    if against is not None:
        other = registry().get_version(who, INDEX, name, against).content
        changes = _source_diff(other.get("sources") or [], content.get("sources") or [])
    if json_output:
        print_json({**record.to_dict(), "content": content, "diff": changes})
        return
    embedding = content.get("embedding") or {}
    typer.echo(f"{record.name} v{record.number}  aliases: {', '.join(record.aliases) or '-'}")
    typer.echo(
        f"created {isoformat(record.created_at)} by {record.author}; {content.get('chunks')} "
        f"chunks; {embedding.get('model')} ({str(embedding.get('version'))[:12]}); chunker "
        f"{content.get('chunker')}"
    )
    for source in content.get("sources") or []:
        typer.echo(
            f"  {source['uri']}  {source['sha256'][:12]}  {source['modified']}  "
            f"{source['chunks']} chunks"
        )
    for kind, uris in (changes or {}).items():
        for uri in uris:
            typer.echo(f"  {kind}: {uri}")


@index_app.command()
def query(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME@VERSION")],
    text: Annotated[str, typer.Argument(help="what to look for")],
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="how many chunks")] = 5,
    hybrid: Annotated[
        bool, typer.Option("--hybrid", help="fuse with keyword (full-text) ranking")
    ] = False,
    source: Annotated[
        str | None, typer.Option(help="only chunks of sources matching this glob")
    ] = None,
    max_age_days: Annotated[
        float | None,
        typer.Option(min=0, max=36_500, help="only documents changed within N days"),
    ] = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """The chunks of an index version nearest a text.

    Example: seamline index query help@live "refund window" --source '*/policies/*'
    """
    after = None if max_age_days is None else isoformat(utcnow() - timedelta(days=max_age_days))
    where = ChunkFilter(source, after) if source or after else None
    with _indexes(project) as indexes:
        found = indexes.query(ref, text, k, hybrid=hybrid, where=where)
    if json_output:
        print_json(found.as_record())
        return
    for hit in found.hits:
        snippet = " ".join(hit.chunk.text.split())[:140]
        typer.echo(f"{hit.score:.3f}  {hit.chunk.chunk_id}  {snippet}")


@index_app.command()
def promote(
    name: str,
    version: Annotated[str, typer.Argument(help="version number (or an alias to copy)")],
    to: Annotated[str, typer.Option("--to", help="alias to move, e.g. live, production")],
    override: OverrideOption = False,
    reason: ReasonOption = None,
    as_user: AsUser = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move an index alias to a version: what the next retrieval by that alias reads.

    Example: seamline index promote help-centre 4 --to live
    """
    record = registry().move_alias(
        actor(project, as_user), INDEX, name, to, version, override=override, reason=reason
    )
    print_alias(record, name, to, json_output)


@index_app.command()
def rollback(
    name: str,
    alias: Annotated[str, typer.Option("--alias", help="alias to move back")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    as_user: AsUser = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move an index alias back to its previous version."""
    record = registry().rollback(actor(project, as_user), INDEX, name, alias, reason=reason)
    print_alias(record, name, alias, json_output, rolled_back=True)


@index_app.command()
def freshness(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME@VERSION")],
    since: Annotated[str, typer.Option("--since", help="calls to read ages from, e.g. 7d")] = "7d",
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Each source of an index version against what it is now (fresh, changed, touched,
    missing), the version's age, how often the index is rebuilt, and how old the documents
    were that answered recent calls.

    Example: seamline index freshness help-centre@live
    """
    who = actor(project)
    name, version = split_ref(ref)
    record = registry().get_version(who, INDEX, name, version)
    created = [v.created_at for v in registry().versions(who, INDEX, name)]
    with registry().db.read() as conn:
        ages = answering_ages(conn, _store(), who.project.id, name, parse_since(since))
    report = version_freshness(record, created, ages)
    if json_output:
        print_json(report.as_record())
        return
    days = report.rebuild_interval_days
    cadence = "-" if days is None else f"{days * 24:.1f} h" if days < 1 else f"{days:.1f} days"
    typer.echo(
        f"{report.index} built {report.built_at}; rebuilt every {cadence} (median); "
        f"{len(report.stale)} of {len(report.sources)} sources stale"
    )
    for source in report.sources:
        typer.echo(f"  {source.state:>8}  {source.uri}  (indexed as of {source.recorded_modified})")
    typer.echo(
        "documents answering calls, by age: " + ", ".join(f"{k} {v}" for k, v in ages.items())
    )


def _source_diff(before: list[dict[str, str]], after: list[dict[str, str]]) -> dict[str, list[str]]:
    old = {s["uri"]: s["sha256"] for s in before}
    new = {s["uri"]: s["sha256"] for s in after}
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(u for u in set(new) & set(old) if new[u] != old[u]),
    }
