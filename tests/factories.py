"""Small builders of artefact documents for tests."""

from __future__ import annotations

from typing import Any

from seamline.registry.loader import Draft, draft_from_mapping


def prompt_doc(
    name: str = "greeter", text: str = "Hello {{ who }}!", **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "messages": [
            {"role": "system", "content": "You greet people."},
            {"role": "user", "content": text},
        ],
        "variables": [{"name": "who", "type": "string"}],
    }
    doc.update(extra)
    return doc


def prompt_draft(name: str = "greeter", text: str = "Hello {{ who }}!", **extra: Any) -> Draft:
    return draft_from_mapping(prompt_doc(name, text, **extra), source=f"{name}.yaml")
