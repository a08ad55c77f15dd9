"""``seamline audit anchor`` and ``audit verify`` as operators and cron jobs run them."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seamline.store import Database
from tests.cli.test_cli import EXAMPLES, Run, _runner
from tests.registry.test_audit import write_unkeyed_chain


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def seamline(home: Path) -> Run:
    env = {**os.environ, "SEAMLINE_HOME": str(home), "SEAMLINE_USER": "alice"}
    env.pop("SEAMLINE_DATABASE_URL", None)
    env.pop("SEAMLINE_PROJECT", None)
    return _runner(env)


@dataclass
class Webhook:
    url: str
    bodies: list[bytes] = field(default_factory=list)


@contextmanager
def webhook(status: int = 204) -> Iterator[Webhook]:
    """A real HTTP receiver on 127.0.0.1 that keeps every body POSTed to it."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(f"http://127.0.0.1:{server.server_port}/anchors", received)
    finally:
        server.shutdown()
        server.server_close()


def _cut_off_the_end(home: Path, keep: int) -> None:
    """What someone with write access to the database file can do: drop the trigger."""
    db = sqlite3.connect(home / "seamline.db")
    db.execute("DROP TRIGGER audit_log_no_delete")
    db.execute("DELETE FROM audit_log WHERE seq > ?", (keep,))
    db.commit()
    db.close()


def test_anchor_to_the_default_file_then_verify_finds_rows_cut_off_the_end(
    seamline: Run, home: Path
) -> None:
    seamline("init")
    seamline("prompts", "push", str(EXAMPLES))
    unanchored = seamline("audit", "verify")
    assert "intact" in unanchored.stdout and "no anchor recorded" in unanchored.stderr
    anchored = seamline("audit", "anchor")
    lines = (home / "audit-anchors.jsonl").read_text().splitlines()
    anchor = json.loads(lines[0])
    assert len(lines) == 1 and len(anchor["mac"]) == 64
    assert f"anchored project default: {anchor['entries']} entries" in anchored.stdout
    assert "consistent with 1 anchor(s)" in seamline("audit", "verify").stdout

    _cut_off_the_end(home, keep=2)
    broken = seamline("audit", "verify", ok=False)
    assert broken.returncode == 1 and broken.stdout == ""
    assert broken.stderr.splitlines() == [
        f"audit chain broken at entry 3: entries 3 to {anchor['entries']} are missing: the "
        f"anchor of {anchor['at']} recorded {anchor['entries']} entries and the chain has 2, "
        "so it was truncated"
    ]
    report = json.loads(seamline("audit", "verify", "--json", ok=False).stdout)
    assert (report["ok"], report["first_bad_seq"], report["anchor"]) == (False, 3, anchor)
    refused = seamline("audit", "anchor", ok=False)
    assert refused.stderr.startswith("error: not anchoring a broken audit chain")
    assert len((home / "audit-anchors.jsonl").read_text().splitlines()) == 1


def test_anchor_to_a_webhook_and_a_file_then_verify_against_the_received_copy(
    seamline: Run, tmp_path: Path, home: Path
) -> None:
    seamline("init")
    seamline("prompts", "push", str(EXAMPLES))
    kept = tmp_path / "worm" / "anchors.jsonl"
    with webhook() as hook:
        done = seamline("audit", "anchor", "--to", hook.url, "--to", f"file:{kept}", "--json")
    printed = json.loads(done.stdout)
    assert printed["sent_to"] == [hook.url, str(kept)]
    assert [json.loads(body) for body in hook.bodies] == [printed["anchor"]]
    assert json.loads(kept.read_text()) == printed["anchor"]
    assert not (home / "audit-anchors.jsonl").exists()  # --to replaces the default

    received = tmp_path / "received.jsonl"
    received.write_bytes(hook.bodies[0] + b"\n")
    assert (
        "consistent with 1 anchor(s)"
        in seamline("audit", "verify", "--anchor", str(received)).stdout
    )
    lowered = {**printed["anchor"], "entries": 1}
    received.write_text(json.dumps(lowered) + "\n")
    forged = seamline("audit", "verify", "--anchor", str(received), ok=False)
    assert forged.returncode == 1
    assert "not authentic: forged, or made with another installation secret" in forged.stderr


def test_anchor_and_verify_errors_are_one_line(seamline: Run, tmp_path: Path) -> None:
    seamline("init")
    with webhook(status=500) as hook:
        refused = seamline("audit", "anchor", "--to", hook.url, ok=False)
    assert refused.stderr == f"error: anchor webhook {hook.url} answered HTTP 500\n"
    s3 = seamline("audit", "anchor", "--to", "s3://bucket/anchors", ok=False)
    assert s3.stderr.startswith("error: unsupported anchor destination 's3://bucket/anchors'")
    missing = seamline("audit", "verify", "--anchor", str(tmp_path / "none.jsonl"), ok=False)
    assert missing.stderr.startswith("error: cannot read anchors from")
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text("{not json\n")
    assert seamline("audit", "verify", "--anchor", str(garbled), ok=False).stderr == (
        f"error: {garbled} line 1: not JSON\n"
    )
    other = tmp_path / "other.jsonl"
    other.write_text("")
    assert "holds no anchor of project default" in (
        seamline("audit", "verify", "--anchor", str(other), ok=False).stderr
    )
    for command in ("anchor", "verify"):
        assert "Example:" in seamline("audit", command, "--help").stdout


def test_db_upgrade_rekeys_a_chain_written_before_keying(seamline: Run, home: Path) -> None:
    from seamline.store.migrate import upgrade

    db = Database(f"sqlite:///{home / 'seamline.db'}")
    upgrade(db, "0004")
    write_unkeyed_chain(db, ["project.create", "alias.move", "alias.move"], project="default")
    db.dispose()
    assert seamline("db", "upgrade").stdout.startswith("applied: 0005")
    assert "audit chain intact: 3 entries verified" in seamline("audit", "verify").stdout
