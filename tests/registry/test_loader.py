from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seamline.core.errors import InvalidInput
from seamline.registry import Actor, Registry, load_drafts
from seamline.registry.loader import load_draft
from tests.factories import prompt_doc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(text: str) -> None:
    load_draft(text, source="p.yaml")


def test_bundled_examples_load(registry: Registry, alice: Actor) -> None:
    drafts = load_drafts([EXAMPLES])
    names = {(d.kind, d.name) for d in drafts}
    assert {
        ("prompt", "support-answer"),
        ("prompt", "invoice-extract"),
        ("model", "local-smollm2"),
    } <= names
    assert all(p.status == "created" for p in registry.push(alice, drafts))


def test_malformed_yaml_names_file_line_and_column() -> None:
    with pytest.raises(InvalidInput, match=r"^p\.yaml:4:4: invalid YAML"):
        _load("name: x\nmessages:\n  - role: user\n   content: [unclosed\n")


def test_schema_errors_name_the_field_and_its_line() -> None:
    doc = yaml.safe_dump(prompt_doc(parameters={"temperature": 5}), sort_keys=False)
    with pytest.raises(
        InvalidInput, match=r"p\.yaml:\d+: parameters\.temperature: .*less than or equal to 2"
    ):
        _load(doc)


def test_unknown_fields_are_errors() -> None:
    with pytest.raises(InvalidInput, match="temprature"):
        _load(yaml.safe_dump(prompt_doc(temprature=0.2)))


def test_template_syntax_errors_are_reported() -> None:
    with pytest.raises(InvalidInput, match="template syntax error"):
        _load(yaml.safe_dump(prompt_doc(text="Hello {{ who ")))


def test_templates_may_only_use_declared_variables() -> None:
    with pytest.raises(InvalidInput, match="undeclared variables: city"):
        _load(yaml.safe_dump(prompt_doc(text="Hello {{ who }} from {{ city }}")))


def test_invalid_tool_schemas_are_refused() -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "objekt"}}}
    with pytest.raises(InvalidInput, match="tool parameters is not a valid JSON Schema"):
        _load(yaml.safe_dump(prompt_doc(tools=[tool])))


def test_invalid_output_schema_is_refused() -> None:
    with pytest.raises(InvalidInput, match="output_schema"):
        _load(yaml.safe_dump(prompt_doc(output_schema={"type": 12})))


def test_one_bad_file_in_a_folder_fails_the_whole_load(tmp_path: Path) -> None:
    for i in range(10):
        text = yaml.safe_dump(prompt_doc(f"p{i}"))
        if i == 6:
            text = "name: p6\nmessages: [\n"
        (tmp_path / f"p{i}.yaml").write_text(text)
    with pytest.raises(InvalidInput, match=r"p6\.yaml"):
        load_drafts([tmp_path])


def test_the_same_artefact_in_two_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(prompt_doc("same")))
    (tmp_path / "b.yml").write_text(yaml.safe_dump(prompt_doc("same")))
    with pytest.raises(InvalidInput, match="also defined in"):
        load_drafts([tmp_path])


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        load_drafts([tmp_path / "nope.yaml"])
