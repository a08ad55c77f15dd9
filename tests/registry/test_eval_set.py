"""Eval sets as artefacts: cases numbered and checked at push, cases from a JSON Lines file
beside the YAML, and a version per change of content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from seamline.core.errors import InvalidInput
from seamline.registry import Actor, Registry
from seamline.registry.loader import draft_from_mapping, load_drafts


def _set(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "eval_set",
        "name": "support-qa",
        "scorers": [{"name": "contains"}],
        "cases": [
            {"variables": {"question": "How long do refunds take?"}, "reference": "14 days"},
            {"id": "greeting", "messages": [{"role": "user", "content": "hi"}]},
        ],
        **changes,
    }


def test_cases_without_an_id_are_numbered_by_position() -> None:
    draft = draft_from_mapping(_set(), source="t.yaml")
    assert [c["id"] for c in draft.content["cases"]] == ["case-1", "greeting"]
    assert draft.content["cases"][0]["reference"] == "14 days"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cases": []}, "at least 1"),
        ({"cases": [{"reference": "x"}]}, "needs variables or messages"),
        ({"cases": [{"id": "a", "variables": {"q": 1}}, {"id": "a", "variables": {"q": 2}}]},
         "used twice"),
        ({"cases": [{"variables": {"q": 1}, "colour": "red"}]}, "colour"),
        ({"scorers": [{"value": "x"}]}, "needs a name"),
        ({"cases": [{"messages": [{"content": "no role"}]}]}, "needs a role"),
    ],
)  # fmt: skip
def test_a_bad_eval_set_is_refused_naming_the_problem(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        draft_from_mapping(_set(**changes), source="t.yaml")


def test_cases_from_a_json_lines_file_beside_the_yaml(tmp_path: Path) -> None:
    lines = [{"variables": {"question": f"q{i}"}, "tags": ["traces"]} for i in range(3)]
    (tmp_path / "more.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n\n")
    spec = _set(cases_file="more.jsonl")
    (tmp_path / "set.yaml").write_text(json.dumps(spec))  # JSON is YAML
    [draft] = load_drafts([tmp_path / "set.yaml"])
    assert [c["id"] for c in draft.content["cases"]] == [
        "case-1", "greeting", "case-3", "case-4", "case-5",
    ]  # fmt: skip
    assert "cases_file" not in draft.content  # the cases are versioned, not a path


def test_a_bad_cases_file_line_is_named_by_its_number(tmp_path: Path) -> None:
    (tmp_path / "more.jsonl").write_text('{"variables": {"q": 1}}\n{not json\n')
    (tmp_path / "set.yaml").write_text(json.dumps(_set(cases_file="more.jsonl")))
    with pytest.raises(InvalidInput, match=r"more\.jsonl line 2: not JSON"):
        load_drafts([tmp_path / "set.yaml"])
    (tmp_path / "set.yaml").write_text(json.dumps(_set(cases_file="absent.jsonl")))
    with pytest.raises(InvalidInput, match="cannot read cases_file"):
        load_drafts([tmp_path / "set.yaml"])
    with pytest.raises(InvalidInput, match="cases_file"):  # no file to read beside a mapping
        draft_from_mapping(_set(cases_file="more.jsonl"), source="api")


def test_a_change_of_cases_is_a_new_version_and_the_same_content_is_not(
    registry: Registry, alice: Actor
) -> None:
    [first] = registry.push(alice, [draft_from_mapping(_set(), source="t.yaml")])
    [same] = registry.push(alice, [draft_from_mapping(_set(), source="t.yaml")])
    more = _set(cases=[*_set()["cases"], {"variables": {"question": "Opening hours?"}}])
    [second] = registry.push(alice, [draft_from_mapping(more, source="t.yaml")])
    assert (first.version, same.status, second.version) == (1, "unchanged", 2)
