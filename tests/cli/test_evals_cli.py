"""``seamline evals``: eval sets pushed (cases inline and from a JSON Lines file) and
listed; other artefacts are refused with a one-line error."""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree

import yaml

from tests.cli.test_cli import Run, _runner


def test_eval_sets_are_pushed_and_listed(seamline: Run, tmp_path: Path) -> None:
    spec = {
        "kind": "eval_set",
        "name": "support-qa",
        "cases": [{"variables": {"question": "Refunds?"}, "reference": "14 days"}],
        "cases_file": "more.jsonl",
    }
    (tmp_path / "more.jsonl").write_text('{"variables": {"question": "Hours?"}}\n')
    (tmp_path / "set.yaml").write_text(yaml.safe_dump(spec))
    assert (
        "created  eval_set support-qa v1 (new)" in seamline("evals", "push", str(tmp_path)).stdout
    )
    listed = json.loads(seamline("evals", "list", "--json").stdout)["data"]
    assert [(s["name"], s["latest_version"], s["cases"]) for s in listed] == [("support-qa", 1, 2)]
    prompt = tmp_path / "p.yaml"
    prompt.write_text(yaml.safe_dump({"name": "p", "messages": [{"role": "user", "content": "x"}]}))
    refused = seamline("evals", "push", str(prompt), ok=False)
    assert refused.returncode == 1 and "not an eval set" in refused.stderr


def _scores(path: Path, values: list[float]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"c{i}", "scores": {"accuracy": v}}) + "\n"
            for i, v in enumerate(values)
        )
    )
    return path


def test_compare_exits_0_when_the_gate_passes_1_when_it_fails_2_on_bad_input(
    seamline: Run, tmp_path: Path
) -> None:
    production = _scores(tmp_path / "prod.jsonl", [1.0] * 170 + [0.0] * 30)
    regressed = _scores(tmp_path / "new.jsonl", [0.0] * 6 + [1.0] * 164 + [0.0] * 30)
    same = seamline("evals", "compare", str(production), str(production), "--min", "accuracy=0.8")
    assert same.returncode == 0 and "gate: passed" in same.stdout
    assert "accuracy: 0.850 [" in same.stdout
    worse = seamline("evals", "compare", str(regressed), str(production), "--json", ok=False)
    report = json.loads(worse.stdout)
    assert worse.returncode == 1 and report["passed"] is False
    assert report["conditions"][0]["condition"] == "accuracy: no regression against prod.jsonl"
    missing = seamline("evals", "compare", str(tmp_path / "absent.jsonl"), ok=False)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")
    bad = seamline("evals", "compare", str(production), "--min", "accuracy", ok=False)
    assert bad.returncode == 2 and "METRIC=NUMBER" in bad.stderr


def test_run_gates_a_prompt_version_writes_junit_and_markdown_and_exits_0_1_or_2(
    stub_home: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "SEAMLINE_HOME": str(stub_home), "SEAMLINE_USER": "alice"}
    env.pop("SEAMLINE_DATABASE_URL", None)
    seamline = _runner(env)
    seamline("init")
    words = ["apple", "pear", "plum", "fig", "lime", "kiwi"]
    cases = [
        {"id": w, "variables": {"word": w}, "criteria": {"contains": {"value": w}}} for w in words
    ]
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "set.yaml").write_text(
        yaml.safe_dump(
            {
                "kind": "eval_set",
                "name": "echo-set",
                "scorers": [{"name": "contains"}],
                "cases": cases,
            }
        )
    )
    prompt = {
        "name": "echo",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say {{ word }}"}],
        "variables": [{"name": "word", "type": "string"}],
        "eval_set": "echo-set",
        "gate": {"min": {"contains": 1.0}},
    }
    (folder / "echo.yaml").write_text(yaml.safe_dump(prompt))
    seamline("evals", "push", str(folder / "set.yaml"))
    seamline("prompts", "push", str(folder / "echo.yaml"))
    junit, markdown = tmp_path / "gate.xml", tmp_path / "pr.md"
    passed = seamline(
        "evals", "run", "--prompt", "echo@1", "--junit", str(junit), "--markdown", str(markdown)
    )
    assert "gate: passed" in passed.stdout and "6 cases, 6 to ask" in passed.stderr
    assert (
        "✅ gate passed" in markdown.read_text()
        and "`echo@1` on `gpt-4o-mini`" in markdown.read_text()
    )
    suite = ElementTree.fromstring(junit.read_bytes())
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")

    # A version whose answers miss the fact: the gate fails (exit 1) and says by how much.
    prompt["messages"] = [{"role": "user", "content": "Say nothing"}]
    (folder / "echo.yaml").write_text(yaml.safe_dump(prompt))
    seamline("prompts", "push", str(folder / "echo.yaml"))
    failed = seamline(
        "evals", "run", "--prompt", "echo@2", "--against", "staging", "--json", ok=False
    )
    report = json.loads(failed.stdout)
    assert failed.returncode == 1 and report["passed"] is False
    assert report["conditions"][0] == {
        "condition": "contains >= 1",
        "passed": False,
        "detail": report["conditions"][0]["detail"],
    }
    assert report["notes"] == ["echo@staging does not exist: no baseline"]
    runs = json.loads(seamline("evals", "runs", "--json").stdout)["data"]
    assert [(r["prompt"], r["passed"]) for r in runs] == [("echo@2", False), ("echo@1", True)]

    for args, message in [
        ((), "give --prompt NAME@VERSION, or --resume RUN"),
        (("--prompt", "nope@1"), "error: "),
        (("--prompt", "echo@1", "--set", "no-such-set"), "no-such-set"),
    ]:
        usage = seamline("evals", "run", *args, ok=False)
        assert usage.returncode == 2 and message in usage.stderr
        assert "Traceback" not in usage.stderr and len(usage.stderr.strip().splitlines()) == 1
    # eval runs' own calls are never sampled into cases
    sampled = seamline("evals", "add-from-traces", "--prompt", "echo", ok=False)
    assert sampled.returncode == 1 and "no case to add: 0 calls matched" in sampled.stderr
    # a judge whose every answer is not a verdict (the stub echoes) measures nothing
    unmeasured = seamline("evals", "calibrate", "--judge", "echo@1", ok=False)
    assert unmeasured.returncode == 2 and "graded none of the 150 items" in unmeasured.stderr
