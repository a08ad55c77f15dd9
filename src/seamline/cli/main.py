"""The ``seamline`` command line. Errors print one line on stderr and exit 1."""

from __future__ import annotations

import importlib.util
import math
import os
import shlex
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from seamline.cli import (
    admin,
    alerts,
    drift,
    eval_runs,
    evals,
    feedback,
    gateway,
    guards,
    index,
    prompts,
    quality,
    rag,
    replay,
    review,
    runtime,
)
from seamline.cli.context import AsUser, registry, settings
from seamline.core.errors import SeamlineError
from seamline.registry.identity import Scope
from seamline.registry.loader import load_drafts
from seamline.registry.workspace import initialise, local_actor, open_database

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUICKSTART_KEY = "quickstart"

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="seamline: versioned prompts, aliases, approvals and audit for LLM features.",
)
app.add_typer(prompts.app, name="prompts")
app.add_typer(admin.audit_app, name="audit")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.projects_app, name="projects")
app.add_typer(admin.policies_app, name="policies")
app.add_typer(admin.db_app, name="db")
app.add_typer(gateway.traces_app, name="traces")
app.add_typer(gateway.models_app, name="models")
app.add_typer(guards.guard_app, name="guard")
eval_runs.register(evals.evals_app)
app.add_typer(evals.evals_app, name="evals")
app.add_typer(index.index_app, name="index")
app.add_typer(rag.rag_app, name="rag")
app.add_typer(feedback.feedback_app, name="feedback")
app.add_typer(drift.drift_app, name="drift")
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(quality.quality_app, name="quality")
app.add_typer(runtime.runtime_app, name="runtime")
app.command("replay")(replay.replay_command)
app.command("review")(review.review_command)
app.command()(gateway.cost)

Host = Annotated[str | None, typer.Option("--host", help="default: 127.0.0.1")]
Port = Annotated[int | None, typer.Option("--port", help="default: 8750")]


@app.command()
def init() -> None:
    """Create the home ($SEAMLINE_HOME, default ~/.seamline), the database and the project."""
    current = settings()
    report = initialise(current, open_database(current))
    typer.echo(f"home: {current.home}")
    typer.echo(f"database: {report.database_url}")
    applied = ", ".join(report.migrations_applied) or "none (up to date)"
    typer.echo(f"migrations applied: {applied}")
    state = "created" if report.project_created else "exists"
    typer.echo(f"project: {report.project} ({state})")


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="worker processes")] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log",
            envvar="SEAMLINE_ACCESS_LOG",
            help="log a line per request on stderr (off: every call is stored as an event)",
        ),
    ] = False,
) -> None:
    """Start the gateway (/v1), the registry API (/api/v1), /metrics, /healthz, /readyz.

    Example: seamline serve --port 8750 --workers 2
    """
    import uvicorn

    from seamline.gateway.server.connections import guarded_protocol

    registry()  # fail here, in one line, if the database is not initialised
    current = settings()
    # Workers inherit the environment: each learns it is one of several (budgets need to).
    os.environ["SEAMLINE_WORKERS"] = str(workers)
    if workers > 1:
        # Every worker writes its metrics here; /metrics sums them (see gateway/metrics.py).
        metrics_dir = current.home / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        if not current.redis_url:
            typer.echo(
                "note: without SEAMLINE_REDIS_URL each worker keeps its own rate limits "
                "and cache; budgets are shared through the database",
                err=True,
            )
    uvicorn.run(
        "seamline.gateway.app:app_from_env",
        factory=True,
        host=host or current.host,
        port=port or current.port,
        workers=workers,
        # Header and body deadlines and a connection cap (gateway/server/connections.py); no
        # WebSocket upgrades, as the server has no WebSocket route.
        http=guarded_protocol(current.gateway),
        ws="none",
        log_level="info",
        # Off by default: a line per request cost ~0.04 ms of CPU per call (bench/
        # profile_gateway.py), 6 % of the gateway's, and says less than the call's event.
        access_log=access_log,
        # Calls still in flight at SIGTERM get this long, then uvicorn cancels them (each is
        # recorded as cancelled) and the worker exits; without it a call that never ends
        # (an upstream that hangs) keeps the process alive forever.
        timeout_graceful_shutdown=math.ceil(current.gateway.shutdown_grace_s),
    )


@app.command()
def up(
    host: Host = None,
    port: Port = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="set up, then exit")] = False,
    as_user: AsUser = None,
) -> None:
    """The quick start: init, push the bundled example prompts, make a key, and serve the
    gateway on the embedded models."""
    current = settings()
    db = open_database(current)
    initialise(current, db)
    who = local_actor(db, current.project, as_user or current.acting_user)
    pushed = registry().push(who, load_drafts([EXAMPLES]), message="bundled examples")
    for item in pushed:
        typer.echo(f"{item.status:>9}  {item.kind} {item.name} v{item.version}")
    url = f"http://{host or current.host}:{port or current.port}"
    existing = [
        k for k in registry().list_keys(who) if k.name == QUICKSTART_KEY and k.revoked_at is None
    ]
    if existing:
        key = f"{existing[0].prefix}... (shown when created; 'seamline keys create' makes another)"
    else:
        key, _ = registry().create_key(
            who, owner=who.user, scopes=frozenset({Scope.ADMIN}), name=QUICKSTART_KEY
        )
    shown = key.split()[0]
    typer.echo(f"\nseamline gateway: {url}/v1   registry API: {url}/api/v1   docs: {url}/docs")
    typer.echo(f"API key: {key}")
    typer.echo(
        "\ntry it (the embedded model is SmolLM2-135M: small, local, free):\n"
        f"{_python_with_openai()} - <<'PY'\n"
        "from openai import OpenAI\n"
        f"client = OpenAI(base_url='{url}/v1', api_key='{shown}')\n"
        "reply = client.chat.completions.create(model='local-smollm2', max_tokens=40,\n"
        "    messages=[{'role': 'user', 'content': 'Name three colours.'}])\n"
        "print(reply.choices[0].message.content)\n"
        "reply = client.chat.completions.create(model='prompt:support-answer@latest',\n"
        "    messages=[], extra_body={'seamline': {'variables': {\n"
        "        'question': 'When will my order ship?',\n"
        "        'context': '[kb-3] Orders ship within 2 working days.'}}})\n"
        "print(reply.choices[0].message.content)\n"
        "PY\n"
        f"curl -s {url}/v1/models -H 'Authorization: Bearer {shown}'\n"
        "\ngate a prompt version on its eval set (exit 0 passed, 1 failed):\n"
        "seamline evals run --prompt support-answer@1 --markdown summary.md\n"
    )
    if not no_serve:
        serve(host=host, port=port, workers=1)


def _python_with_openai() -> str:
    """The interpreter to paste: this one, which has the ``openai`` package when seamline's
    dev extra is installed; a bare ``python`` on a fresh machine has none."""
    python = shlex.quote(sys.executable)
    if importlib.util.find_spec("openai") is None:
        return f"{python} -m pip install openai && {python}"
    return python


def main() -> None:
    try:
        app()
    except SeamlineError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except (ValidationError, tomllib.TOMLDecodeError) as exc:
        first = str(exc).splitlines()[0]
        typer.echo(f"error: invalid configuration (SEAMLINE_* or seamline.toml): {first}", err=True)
        sys.exit(1)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        typer.echo(f"error: database: {str(cause).splitlines()[0]}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
