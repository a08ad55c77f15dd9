"""``seamline traces``, ``cost`` and ``models`` read what a real gateway recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import openai
import pytest

from seamline.core.settings import Settings
from seamline.gateway.app import build_app
from seamline.registry.identity import Scope
from seamline.registry.workspace import initialise, local_actor, open_registry
from tests.cli.test_cli import Run, _runner
from tests.live import LiveServer


def test_traces_and_cost_show_the_calls(stub_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAMLINE_HOME", str(stub_home))
    monkeypatch.delenv("SEAMLINE_DATABASE_URL", raising=False)
    settings = Settings()
    registry = open_registry(settings)
    initialise(settings, registry.db)
    key, _ = registry.create_key(
        local_actor(registry.db, "default", "ops"),
        owner="svc",
        scopes=frozenset({Scope.INVOKE}),
        name="svc",
    )
    app = build_app(settings, registry)
    server = LiveServer(app).start()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            metadata={"use_case": "faq"},
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    server.stop()
    run: Run = _runner({**os.environ, "SEAMLINE_HOME": str(stub_home)})

    listed = json.loads(run("traces", "list", "--last", "10", "--json").stdout)["data"]
    assert [e["status"] for e in listed] == ["error", "ok", "ok", "ok"]
    shown = json.loads(run("traces", "show", listed[1]["request_id"]).stdout)
    assert shown["model_used"] == "gpt-4o-mini" and shown["use_case"] == "faq"
    assert shown["feedback"] == []
    assert "REQUEST_ID" in run("traces", "list").stdout

    call = listed[1]["request_id"]
    said = run("feedback", "add", call, "--score", "down", "--comment", "too terse", user="ops")
    assert said.stdout.strip() == f"recorded thumbs = 0 on call {call}"
    again = run("feedback", "add", call, "--score", "4", user="ops")
    assert again.stdout.strip() == f"recorded rating = 4 on call {call}"
    changed = run("feedback", "add", call, "--score", "up", "--comment", "better now", user="ops")
    assert changed.stdout.strip() == f"replaced thumbs = 1 on call {call}"
    feedback = json.loads(run("traces", "show", call).stdout)["feedback"]
    assert sorted((f["metric"], f["value"], f["user"]) for f in feedback) == [
        ("rating", 4.0, "ops"),
        ("thumbs", 1.0, "ops"),
    ]
    [unprompted] = json.loads(run("feedback", "report", "--json").stdout)["prompts"]
    assert unprompted["prompt"] == "-" and unprompted["metrics"]["thumbs"]["estimate"] == 1.0
    report = run("feedback", "report").stdout  # a replaced score keeps only its own comment
    assert "better now" in report and "too terse" not in report
    for bad in (("req_nope", "--score", "up"), (call, "--score", "9")):
        failed = run("feedback", "add", *bad, ok=False)
        assert failed.returncode == 1 and failed.stderr.startswith("error: ")
        assert "Traceback" not in failed.stderr

    assert run("alerts", "check").stdout.strip() == "no [[alerts]] rules in seamline.toml"
    with (stub_home / "seamline.toml").open("a") as toml:
        toml.write('[[alerts]]\nname = "errors"\nkind = "error_rate"\nabove = 0.1\nmin_calls = 1\n')
    fired = run("alerts", "check", ok=False)
    assert fired.returncode == 1
    assert fired.stdout.startswith("errors (error_rate): default: 25.0% of 4 calls")
    [alert] = json.loads(run("alerts", "list", "--json").stdout)["alerts"]
    assert alert["kind"] == "error_rate" and alert["request_ids"] == [listed[0]["request_id"]]
    assert alert["delivery"] == {"delivered": False, "attempts": 0, "pending": False}
    assert run("alerts", "check").stdout.strip() == "1 rules checked: nothing fired"  # cooldown

    by_model = json.loads(run("cost", "--by", "model", "--json").stdout)["data"]
    served = next(row for row in by_model if row["group"] == "gpt-4o-mini")
    assert (served["requests"], served["errors"]) == (3, 0)
    assert served["cost_usd"] == pytest.approx(3 * (1 * 1.0 + 3 * 2.0) / 1e6)
    by_use = json.loads(run("cost", "--by", "use_case", "--since", "1h", "--json").stdout)
    assert {row["group"] for row in by_use["data"]} == {"faq", None}
    assert (
        "invalid duration" in run("cost", "--by", "model", "--since", "yesterday", ok=False).stderr
    )
    assert "cannot group by" in run("cost", "--by", "colour", ok=False).stderr

    models = json.loads(run("models", "list", "--json").stdout)["data"]
    assert models == [
        {
            "name": "gpt-4o-mini",
            "kind": "chat",
            "deployments": ["stub"],
            "fallbacks": [],
            "context_window": None,
        }
    ]
    missing = run("traces", "show", "req_nope", ok=False)
    assert "no call 'req_nope'" in missing.stderr
