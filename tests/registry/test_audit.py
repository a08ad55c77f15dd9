from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, delete, select, text

from seamline.core.canonical import canonical_json, sha256_hex
from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.core.errors import Conflict
from seamline.registry import Actor, Registry
from seamline.registry.audit import GENESIS_HASH, HASHED_FIELDS, ChainKeys, chain_hash
from seamline.registry.identity import Scope, effective_scopes, ensure_project, get_project
from seamline.store import Database
from seamline.store.database import insert_returning_id
from seamline.store.migrate import MIGRATIONS, current_revision, upgrade
from seamline.store.schema import audit_log, projects
from tests.conftest import KEY_SECRET
from tests.factories import prompt_draft

ChainHash = Callable[[str, dict[str, Any]], str]


@contextmanager
def _unguarded(db: Database) -> Iterator[Connection]:
    """What a database administrator could do by hand: lift the append-only triggers."""
    with db.write() as conn:
        if db.is_postgres:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        yield conn


def _tamper(db: Database, statement: str) -> None:
    with _unguarded(db) as conn:
        conn.execute(text(statement))


def unkeyed_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """An entry's hash as every release before revision 0005 computed it: plain sha256, which
    anyone who can read the code and write the database can recompute."""
    hashed = {name: body[name] for name in HASHED_FIELDS}
    hashed["at"] = isoformat(body["at"])
    return sha256_hex(prev_hash + canonical_json(hashed))


def keyed_hash(secret: bytes) -> ChainHash:
    key = ChainKeys.from_secret(secret).chain
    return lambda prev_hash, body: chain_hash(key, prev_hash, body)


def _chain(db: Database, project_id: int) -> list[dict[str, Any]]:
    with db.read() as conn:
        query = select(audit_log).where(audit_log.c.project_id == project_id)
        rows = conn.execute(query.order_by(audit_log.c.seq)).mappings()
        return [{**row, "at": as_utc(row["at"])} for row in rows]


def _delete_and_rehash(registry: Registry, actor: Actor, seq: int, rehash: ChainHash) -> None:
    """Delete entry ``seq`` and renumber and rehash every later one with ``rehash``: the
    rewrite an attacker with database access makes so that the chain verifies again."""
    rows = _chain(registry.db, actor.project.id)
    prev_hash = rows[seq - 2]["hash"] if seq > 1 else GENESIS_HASH
    forged = []
    for new_seq, row in enumerate(rows[seq:], start=seq):
        body = {**row, "seq": new_seq, "prev_hash": prev_hash}
        del body["id"]
        body["hash"] = prev_hash = rehash(prev_hash, body)
        forged.append(body)
    with _unguarded(registry.db) as conn:
        conn.execute(
            delete(audit_log).where(
                audit_log.c.project_id == actor.project.id, audit_log.c.seq >= seq
            )
        )
        conn.execute(audit_log.insert(), forged)


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
    _tamper(registry.db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
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
    # actor and a hash recomputed over it, as someone who holds the secret could.
    with registry.db.read() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.seq == 2)).mappings().one()
    forged = {**row, "actor": "mallory", "at": as_utc(row["at"])}
    forged_hash = keyed_hash(registry.key_secret)(row["prev_hash"], forged)
    _tamper(
        registry.db, f"UPDATE audit_log SET actor = 'mallory', hash = '{forged_hash}' WHERE seq = 2"
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


@pytest.mark.parametrize(
    "rehash",
    [unkeyed_hash, keyed_hash(b"not-the-installation-secret")],
    ids=["sha256-as-before-keying", "hmac-under-a-wrong-key"],
)
def test_deleting_an_entry_and_rehashing_the_rest_fails_verification(
    registry: Registry, alice: Actor, rehash: ChainHash
) -> None:
    for text_ in ("A {{ who }}", "B {{ who }}", "C {{ who }}"):
        registry.push(alice, [prompt_draft(text=text_)])
    # entries: 1 project.create, 2-4 version.create; entry 3 goes, 4 becomes a rehashed 3.
    _delete_and_rehash(registry, alice, 3, rehash)
    rows = _chain(registry.db, alice.project.id)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert all(r["prev_hash"] == p["hash"] for p, r in itertools.pairwise(rows))
    report = registry.verify_audit(alice)
    assert not report.ok
    assert (report.first_bad_seq, report.problem) == (3, "its content does not match its hash")


def test_entries_cut_off_the_end_are_found_missing_against_an_anchor(
    registry: Registry, alice: Actor
) -> None:
    for text_ in ("A {{ who }}", "B {{ who }}", "C {{ who }}"):
        registry.push(alice, [prompt_draft(text=text_)])
    anchor = registry.anchor_audit(alice)
    assert (anchor.project, anchor.entries) == ("acme", 4)
    _tamper(registry.db, "DELETE FROM audit_log WHERE seq > 2")
    assert registry.verify_audit(alice).ok  # the chain alone cannot tell: hence anchors
    report = registry.verify_audit(alice, anchors=[anchor])
    assert not report.ok and report.first_bad_seq == 3
    assert "entries 3 to 4 are missing" in report.problem and "truncated" in report.problem
    with pytest.raises(Conflict, match="truncated"):
        registry.anchor_audit(alice, anchors=[anchor])


def test_a_chain_cut_and_grown_again_differs_from_its_anchor(
    registry: Registry, alice: Actor
) -> None:
    registry.push(alice, [prompt_draft()])
    registry.push(alice, [prompt_draft(text="Bye {{ who }}")])
    anchor = registry.anchor_audit(alice)
    _tamper(registry.db, "DELETE FROM audit_log WHERE seq = 3")
    registry.push(alice, [prompt_draft(text="Hi {{ who }}")])  # a new, validly keyed entry 3
    assert registry.verify_audit(alice).entries == anchor.entries
    report = registry.verify_audit(alice, anchors=[anchor])
    assert report.first_bad_seq == 3 and "differs from the anchor" in report.problem


def test_every_anchor_of_the_project_must_hold_and_the_latest_is_reported(
    registry: Registry, alice: Actor
) -> None:
    early = registry.anchor_audit(alice)
    registry.push(alice, [prompt_draft()])
    late = registry.anchor_audit(alice, anchors=[early])
    report = registry.verify_audit(alice, anchors=[late, early])
    assert report.ok and report.anchor == late and report.to_dict()["anchor"]["entries"] == 2
    lied = replace(early, head_hash=late.head_hash)
    assert "not authentic" in registry.verify_audit(alice, anchors=[late, lied]).problem


def test_an_anchor_edited_or_signed_elsewhere_is_not_authentic(
    registry: Registry, alice: Actor
) -> None:
    registry.push(alice, [prompt_draft()])
    anchor = registry.anchor_audit(alice)
    # An attacker who cuts entry 2 and lowers the anchor to match, reusing its MAC.
    lowered = replace(anchor, entries=1, head_hash=_chain(registry.db, alice.project.id)[0]["hash"])
    report = registry.verify_audit(alice, anchors=[lowered])
    assert not report.ok and report.first_bad_seq is None
    assert "not authentic" in report.problem
    assert registry.verify_audit(alice, anchors=[anchor]).ok


def test_a_broken_chain_is_not_anchored(registry: Registry, alice: Actor) -> None:
    registry.push(alice, [prompt_draft()])
    _tamper(registry.db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(Conflict, match="entry 2"):
        registry.anchor_audit(alice)


def test_no_entry_is_written_without_the_key_nor_under_a_second_secret(
    empty_db: Database,
) -> None:
    upgrade(empty_db)
    with pytest.raises(RuntimeError, match="no key"), empty_db.write() as conn:
        ensure_project(conn, "acme", actor="ops")
    Registry(empty_db, key_secret=KEY_SECRET)
    with pytest.raises(ValueError, match="another secret"):
        Registry(empty_db, key_secret=b"another-secret-of-enough-length")


# -- the upgrade from unkeyed chains (revision 0005) -------------------------------------------


def write_unkeyed_chain(db: Database, actions: list[str], project: str = "acme") -> Actor:
    """A project and its audit entries as every release before revision 0005 wrote them."""
    with db.write() as conn:
        project_id = insert_returning_id(
            conn,
            projects.insert().values(name=project, content_logging="full", created_at=utcnow()),
        )
        prev_hash = GENESIS_HASH
        for seq, action in enumerate(actions, start=1):
            body = {
                "project_id": project_id,
                "seq": seq,
                "at": utcnow(),
                "actor": "ops",
                "action": action,
                "target": project,
                "details": {"n": seq},
            }
            digest = unkeyed_hash(prev_hash, body)
            conn.execute(audit_log.insert().values(**body, prev_hash=prev_hash, hash=digest))
            prev_hash = digest
        found = get_project(conn, project)
    return Actor("ops", found, effective_scopes(frozenset({Scope.ADMIN})))


def _at_0004_with_unkeyed_chain(db: Database, length: int = 4) -> Actor:
    upgrade(db, "0004")
    return write_unkeyed_chain(db, ["project.create"] + ["alias.move"] * (length - 1))


def test_a_chain_written_before_keying_verifies_after_the_upgrade(empty_db: Database) -> None:
    actor = _at_0004_with_unkeyed_chain(empty_db)
    before = _chain(empty_db, actor.project.id)
    assert upgrade(empty_db, secret=KEY_SECRET)[0] == "0005"  # and those after it
    registry = Registry(empty_db, key_secret=KEY_SECRET)
    report = registry.verify_audit(actor)
    assert report.ok and report.entries == 4
    after = _chain(empty_db, actor.project.id)
    assert all(a["hash"] != b["hash"] for a, b in zip(after, before, strict=True))
    registry.push(actor, [prompt_draft()])
    assert registry.verify_audit(actor).entries == 5
    # Going back to sha256 is not an option for an attacker: the chain is keyed for good.
    _delete_and_rehash(registry, actor, 2, unkeyed_hash)
    assert registry.verify_audit(actor).first_bad_seq == 2


def test_a_chain_broken_before_the_upgrade_stays_broken_at_the_same_entry(
    empty_db: Database,
) -> None:
    actor = _at_0004_with_unkeyed_chain(empty_db)
    _tamper(empty_db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    upgrade(empty_db, secret=KEY_SECRET)
    report = Registry(empty_db, key_secret=KEY_SECRET).verify_audit(actor)
    assert not report.ok and report.first_bad_seq == 3


def test_the_upgrade_refuses_to_rekey_without_the_secret(empty_db: Database) -> None:
    _at_0004_with_unkeyed_chain(empty_db)
    with pytest.raises(RuntimeError, match="installation secret"):
        upgrade(empty_db)
    assert current_revision(empty_db) == "0004"


def test_downgrading_restores_the_unkeyed_chain(empty_db: Database) -> None:
    actor = _at_0004_with_unkeyed_chain(empty_db)
    before = _chain(empty_db, actor.project.id)
    upgrade(empty_db, secret=KEY_SECRET)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with empty_db.engine.begin() as conn:
        config.attributes.update(connection=conn, secret=KEY_SECRET)
        command.downgrade(config, "0004")
    assert _chain(empty_db, actor.project.id) == before
