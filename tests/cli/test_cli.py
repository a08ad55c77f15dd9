"""The command line as users and CI scripts call it: a real process per command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.conftest import POSTGRES_URL
from tests.factories import prompt_doc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

Run = Callable[..., subprocess.CompletedProcess[str]]


def _runner(env: dict[str, str]) -> Run:
    def run(
        *args: str, ok: bool = True, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        extra = {"SEAMLINE_USER": user} if user else {}
        done = subprocess.run(
            [sys.executable, "-m", "seamline", *args],
            capture_output=True,
            text=True,
            env={**env, **extra},
            timeout=60,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return run


def _write_prompt(folder: Path, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "greeter.yaml"
    path.write_text(yaml.safe_dump(prompt_doc(text=text), sort_keys=False))
    return path


def test_push_is_idempotent_and_reports_what_changed(seamline: Run, tmp_path: Path) -> None:
    path = _write_prompt(tmp_path / "prompts", "Hello {{ who }}!")
    assert "created  prompt greeter v1 (new)" in seamline("prompts", "push", str(path)).stdout
    assert "unchanged  prompt greeter v1" in seamline("prompts", "push", str(path)).stdout
    _write_prompt(tmp_path / "prompts", "Hi {{ who }}!")
    dry = seamline("prompts", "push", str(tmp_path / "prompts"), "--dry-run").stdout
    assert "would create  prompt greeter v2 (was v1)" in dry and "nothing written" in dry
    listed = json.loads(seamline("prompts", "list", "--json").stdout)["data"]
    assert [(p["name"], p["latest_version"]) for p in listed] == [("greeter", 1)]
    seamline("prompts", "push", str(tmp_path / "prompts"), "-m", "shorter")
    diff = seamline("prompts", "diff", "greeter", "1", "2").stdout
    assert "-  content: Hello {{ who }}!" in diff and "+  content: Hi {{ who }}!" in diff


def test_release_flow_with_approval_override_and_rollback(seamline: Run, tmp_path: Path) -> None:
    seamline("prompts", "push", str(_write_prompt(tmp_path / "p", "Hello {{ who }}!")))
    seamline("prompts", "push", str(_write_prompt(tmp_path / "p", "Hi {{ who }}!")))
    refused = seamline("prompts", "approve", "greeter", "1", ok=False)
    assert refused.returncode == 1 and "cannot approve" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    seamline("prompts", "approve", "greeter", "1", user="bob")
    seamline("prompts", "approve", "greeter", "2", "--as", "bob")
    gated = seamline("prompts", "promote", "greeter", "1", "--to", "production", ok=False)
    assert gated.returncode == 1 and "names no eval_set to be gated on" in gated.stderr
    seamline(
        "prompts",
        "promote",
        "greeter",
        "1",
        "--to",
        "production",
        "--override",
        "--reason",
        "first release",
    )
    seamline(
        "prompts",
        "promote",
        "greeter",
        "2",
        "--to",
        "production",
        "--override",
        "--reason",
        "wording",
    )
    shown = json.loads(seamline("prompts", "show", "greeter@production", "--json").stdout)
    assert shown["version"] == 2
    assert (
        "rolled back to v1"
        in seamline("prompts", "rollback", "greeter", "--alias", "production").stdout
    )
    assert (
        json.loads(seamline("prompts", "show", "greeter@production", "--json").stdout)["version"]
        == 1
    )
    rendered = json.loads(
        seamline("prompts", "render", "greeter@production", "-v", "who=42").stdout
    )
    assert rendered["messages"][1]["content"] == "Hello 42!"
    log = json.loads(seamline("audit", "log", "--json", "--action", "gate.override").stdout)
    assert [e["details"]["reason"] for e in log["data"]] == ["wording", "first release"]
    assert "intact" in seamline("audit", "verify").stdout


def test_audit_verify_exits_non_zero_naming_the_tampered_entry(
    seamline: Run, tmp_path: Path
) -> None:
    import sqlite3

    seamline("prompts", "push", str(EXAMPLES))
    db = sqlite3.connect(tmp_path / "home" / "seamline.db")
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("UPDATE audit_log SET details = '{}' WHERE seq = 3")
    db.commit()
    db.close()
    broken = seamline("audit", "verify", ok=False)
    assert broken.returncode == 1
    assert "audit chain broken at entry 3" in broken.stderr


def test_keys_are_printed_once_and_revocable(seamline: Run) -> None:
    created = seamline(
        "keys", "create", "--project", "default", "--scopes", "invoke,read", "--name", "checkout"
    )
    key = created.stdout.strip()
    assert key.startswith("sk-seam-") and "shown once" in created.stderr
    listed = json.loads(seamline("keys", "list", "--json").stdout)["data"]
    assert key not in json.dumps(listed) and listed[0]["scopes"] == ["invoke", "read"]
    seamline("keys", "revoke", listed[0]["id"])
    again = seamline("keys", "revoke", listed[0]["id"], ok=False)
    assert "already revoked" in again.stderr


BAD_INPUT = [
    (["prompts", "show", "nope"], "no prompt named 'nope'"),
    (["prompts", "show", "greeter@staging"], "no alias 'staging'"),
    (["prompts", "promote", "greeter", "9", "--to", "staging"], "no version 9"),
    (["prompts", "promote", "greeter", "1", "--to", "Prod"], "invalid alias 'Prod'"),
    (["keys", "create", "--project", "ghost", "--scopes", "read"], "unknown project 'ghost'"),
    (["keys", "create", "--scopes", "root"], "unknown scope 'root'"),
    (["prompts", "push", "missing.yaml"], "no such file"),
    (["prompts", "render", "greeter", "-v", "city=Oslo"], "unknown variables: city"),
    (["prompts", "render", "greeter"], "missing required variable 'who'"),
    (["projects", "logging", "everything"], "content logging must be one of"),
]


def test_bad_input_gets_a_one_line_error_and_exit_1(seamline: Run, tmp_path: Path) -> None:
    seamline("prompts", "push", str(_write_prompt(tmp_path / "p", "Hello {{ who }}!")))
    for args, message in BAD_INPUT:
        done = seamline(*args, ok=False)
        assert done.returncode == 1, args
        assert message in done.stderr and done.stderr.count("\n") == 1, (args, done.stderr)


def test_malformed_yaml_is_reported_with_its_location(seamline: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmessages:\n  - role: user\n   content: oops\n")
    done = seamline("prompts", "push", str(bad), ok=False)
    assert done.returncode == 1 and f"{bad}:4:4: invalid YAML" in done.stderr


def test_commands_before_init_say_how_to_fix_it(tmp_path: Path) -> None:
    run = _runner({**os.environ, "SEAMLINE_HOME": str(tmp_path / "fresh")})
    done = run("prompts", "list", ok=False)
    assert done.returncode == 1 and "seamline init" in done.stderr


def test_up_sets_up_examples_and_a_key_without_serving(tmp_path: Path) -> None:
    run = _runner({**os.environ, "SEAMLINE_HOME": str(tmp_path / "home")})
    first = run("up", "--no-serve").stdout
    assert "created  prompt support-answer v1" in first and "API key: sk-seam-" in first
    # The snippet names the interpreter that has the openai package, not a bare python.
    assert f"\n{sys.executable} - <<'PY'\n" in first
    second = run("up", "--no-serve").stdout
    assert "unchanged  prompt support-answer v1" in second and "shown when created" in second


def test_cli_runs_against_postgresql(postgres_schema: str, tmp_path: Path) -> None:
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{postgres_schema}"
    run = _runner(
        {
            **os.environ,
            "SEAMLINE_HOME": str(tmp_path / "home"),
            "SEAMLINE_DATABASE_URL": url,
            "SEAMLINE_USER": "alice",
        }
    )
    run("init")
    assert "created  prompt support-answer v1" in run("prompts", "push", str(EXAMPLES)).stdout
    assert "intact" in run("audit", "verify").stdout
