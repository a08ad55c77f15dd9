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
