from __future__ import annotations

import pytest
from sqlalchemy import func, select

from seamline.core.errors import InvalidInput, NotFound
from seamline.registry import Actor, Registry
from seamline.registry.loader import draft_from_mapping
from seamline.store.schema import artefact_versions, audit_log
from tests.factories import prompt_doc, prompt_draft


def _count(registry: Registry, table) -> int:  # type: ignore[no-untyped-def]
    with registry.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_pushing_identical_content_creates_no_version(registry: Registry, alice: Actor) -> None:
    first = registry.push(alice, [prompt_draft()])
    again = registry.push(alice, [prompt_draft()])
    assert [(p.status, p.version) for p in first] == [("created", 1)]
    assert [(p.status, p.version) for p in again] == [("unchanged", 1)]
    assert _count(registry, artefact_versions) == 1


def test_key_order_and_whitespace_do_not_change_the_content_hash(
    registry: Registry, alice: Actor
) -> None:
    doc = prompt_doc()
    reordered = dict(reversed(list(doc.items())))
    a = registry.push(alice, [draft_from_mapping(doc, source="a")])[0]
    b = registry.push(alice, [draft_from_mapping(reordered, source="b")])[0]
    assert b.status == "unchanged" and a.content_hash == b.content_hash


def test_changed_content_creates_the_next_version_with_its_parent(
    registry: Registry, alice: Actor
) -> None:
    registry.push(alice, [prompt_draft()])
    pushed = registry.push(alice, [prompt_draft(text="Hi {{ who }}!")], message="shorter")
    assert (pushed[0].status, pushed[0].version, pushed[0].previous) == ("created", 2, 1)
    record = registry.get_version(alice, "prompt", "greeter")
    assert (record.number, record.parent, record.message, record.author) == (
        2,
        1,
        "shorter",
        "alice",
    )
    assert registry.get_version(alice, "prompt", "greeter", 1).content["messages"][1][
        "content"
    ] == ("Hello {{ who }}!")


def test_dry_run_reports_the_changes_and_writes_nothing(registry: Registry, alice: Actor) -> None:
    entries_before = _count(registry, audit_log)
    result = registry.push(alice, [prompt_draft()], dry_run=True)
    assert [(p.status, p.version) for p in result] == [("created", 1)]
    assert _count(registry, artefact_versions) == 0
    assert _count(registry, audit_log) == entries_before
    with pytest.raises(NotFound):
        registry.get_version(alice, "prompt", "greeter")


def test_a_batch_with_a_bad_reference_writes_nothing(registry: Registry, alice: Actor) -> None:
    drafts = [prompt_draft(f"p{i}") for i in range(10)]
    drafts[6] = prompt_draft("p6", model="no-such-model@production")
    with pytest.raises(InvalidInput, match="no model 'no-such-model'"):
        registry.push(alice, drafts)
    assert _count(registry, artefact_versions) == 0


def test_prompt_links_to_the_model_version_pushed_with_it(registry: Registry, alice: Actor) -> None:
    model = draft_from_mapping(
        {"kind": "model", "name": "small", "provider": "openai", "upstream_model": "gpt-4o-mini"},
        source="small.yaml",
    )
    registry.push(alice, [prompt_draft(model="small", eval_set="greeter-golden"), model])
    record = registry.get_version(alice, "prompt", "greeter")
    links = {(link.relation, link.name, link.version) for link in record.lineage}
    assert links == {("model", "small", 1), ("eval_set", "greeter-golden", None)}


def test_model_configurations_refuse_literal_api_keys(registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="api_key"):
        draft_from_mapping(
            {
                "kind": "model",
                "name": "m",
                "provider": "openai",
                "upstream_model": "x",
                "api_key": "sk-live-secret",
            },
            source="m.yaml",
        )


def test_versions_are_invisible_to_other_projects(registry: Registry, alice: Actor) -> None:
    from tests.conftest import make_actor

    registry.push(alice, [prompt_draft()])
    outsider = make_actor(registry, "eve", project="other")
    with pytest.raises(NotFound):
        registry.get_version(outsider, "prompt", "greeter")
    assert registry.list_artefacts(outsider) == []
