"""``seamline evals``: eval sets pushed (cases inline and from a JSON Lines file) and
listed; other artefacts are refused with a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.test_cli import Run


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
