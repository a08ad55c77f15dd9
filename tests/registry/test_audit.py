from __future__ import annotations

import itertools

from sqlalchemy import select, text

from seamline.core.clock import as_utc
from seamline.registry import Actor, Registry
from seamline.registry.audit import chain_hash
from seamline.store.schema import audit_log
from tests.factories import prompt_draft


def _tamper(registry: Registry, statement: str) -> None:
    """What a database administrator could do by hand, bypassing the append-only trigger."""
    with registry.db.write() as conn:
        if registry.db.is_postgres:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text(statement))


def test_every_mutation_is_chained_and_verifies(
    registry: Registry, alice: Actor, bob: Actor
) -> None:
    registry.push(alice, [prompt_draft()])
    registry.approve(bob, "prompt", "greeter", 1)
    registry.move_alias(alice, "prompt", "greeter", "staging", 1)
    key, info = registry.create_key(alice, owner="svc", scopes=alice.scopes, name="svc")
    registry.revoke_key(alice, info.id)
    actions = [entry.action for entry in reversed(registry.audit_log(alice))]
    assert actions == [
        "project.create",
        "version.create",
        "version.approve",
        "alias.move",
        "key.create",
        "key.revoke",
    ]
    entries = list(reversed(registry.audit_log(alice)))
    assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(entries))
    report = registry.verify_audit(alice)
    assert report.ok and report.entries == 6
    assert key not in str([e.details for e in entries])


def test_an_entry_changed_by_hand_fails_verification_at_that_entry(
    registry: Registry, alice: Actor
) -> None:
    for text_ in ("A {{ who }}", "B {{ who }}", "C {{ who }}"):
        registry.push(alice, [prompt_draft(text=text_)])
    # entries: 1 project.create, 2-4 version.create
    _tamper(registry, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    report = registry.verify_audit(alice)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "does not match" in report.problem


def test_rewriting_an_entry_with_its_own_hash_still_breaks_the_next_link(
    registry: Registry, alice: Actor
) -> None:
    registry.push(alice, [prompt_draft()])
    registry.push(alice, [prompt_draft(text="Bye {{ who }}")])
    # entries: 1 project.create, 2 and 3 version.create. Forge entry 2 completely: new
    # actor and a hash recomputed over it, as someone who knows the scheme would.
    with registry.db.read() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.seq == 2)).mappings().one()
    forged = {**row, "actor": "mallory", "at": as_utc(row["at"])}
    forged_hash = chain_hash(row["prev_hash"], forged)
    _tamper(
        registry, f"UPDATE audit_log SET actor = 'mallory', hash = '{forged_hash}' WHERE seq = 2"
    )
    report = registry.verify_audit(alice)
    assert report.first_bad_seq == 3
    assert "link" in report.problem


def test_chains_are_per_project(registry: Registry, alice: Actor) -> None:
    from tests.conftest import make_actor

    registry.push(alice, [prompt_draft()])
    other = make_actor(registry, "olga", project="other")
    assert [e.action for e in registry.audit_log(other)] == ["project.create"]
    assert registry.verify_audit(other).ok and registry.verify_audit(alice).ok
