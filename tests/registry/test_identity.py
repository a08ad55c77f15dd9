from __future__ import annotations

import pytest
from sqlalchemy import text

from seamline.core.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope, parse_scopes
from tests.conftest import make_actor


def test_keys_are_shown_once_and_stored_only_hashed(registry: Registry, alice: Actor) -> None:
    plaintext, info = registry.create_key(
        alice, owner="svc", scopes=frozenset({Scope.INVOKE}), name="checkout"
    )
    assert plaintext.startswith("sk-seam-") and len(plaintext) > 40
    with registry.db.read() as conn:
        dump = str(conn.execute(text("SELECT * FROM api_keys")).all())
    assert plaintext not in dump
    assert plaintext[len("sk-seam-") :] not in dump
    actor = registry.authenticate(plaintext)
    assert (actor.user, actor.project.name, actor.key_id) == ("svc", "acme", info.id)
    assert actor.can(Scope.INVOKE) and not actor.can(Scope.READ)


def test_revoked_and_wrong_keys_are_refused(registry: Registry, alice: Actor) -> None:
    plaintext, info = registry.create_key(
        alice, owner="svc", scopes=frozenset({Scope.READ}), name="svc"
    )
    with pytest.raises(AuthenticationFailed, match="invalid"):
        registry.authenticate(plaintext[:-2] + "xx")
    with pytest.raises(AuthenticationFailed, match="start with"):
        registry.authenticate("sk-live-123")
    registry.revoke_key(alice, info.id)
    with pytest.raises(AuthenticationFailed, match="revoked") as revoked:
        registry.authenticate(plaintext)
    assert revoked.value.code == "revoked_api_key"


def test_a_key_of_another_project_cannot_be_revoked_or_listed(
    registry: Registry, alice: Actor
) -> None:
    _, info = registry.create_key(alice, owner="svc", scopes=frozenset({Scope.READ}), name="svc")
    outsider = make_actor(registry, "eve", project="other")
    with pytest.raises(NotFound):
        registry.revoke_key(outsider, info.id)
    assert registry.list_keys(outsider) == []


def test_only_admins_manage_keys(registry: Registry) -> None:
    writer = make_actor(registry, "wendy", scopes=frozenset({Scope.WRITE}))
    with pytest.raises(PermissionDenied, match="admin"):
        registry.create_key(writer, owner="x", scopes=frozenset({Scope.READ}), name="x")


def test_scopes_parse_from_lists_and_commas() -> None:
    assert parse_scopes(["invoke,read", "write"]) == {Scope.INVOKE, Scope.READ, Scope.WRITE}
    with pytest.raises(InvalidInput, match="unknown scope 'root'"):
        parse_scopes(["root"])


def test_keys_of_two_projects_for_one_new_owner_can_be_made_at_once(registry: Registry) -> None:
    import threading

    admins = [make_actor(registry, "ops", project=p) for p in ("one", "two", "three")]
    start = threading.Barrier(len(admins))
    errors: list[Exception] = []

    def create(admin: Actor) -> None:
        start.wait()
        try:
            registry.create_key(admin, owner="newcomer", scopes=frozenset({Scope.READ}), name="k")
        except Exception as exc:  # pragma: no cover - the failure this test guards against
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(a,)) for a in admins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_model_limited_admin_cannot_mint_a_broader_key(registry: Registry, alice: Actor) -> None:
    from dataclasses import replace

    narrow = replace(alice, models=("gpt-4o-mini",))
    with pytest.raises(PermissionDenied, match="limited"):
        registry.create_key(narrow, owner="x", scopes=frozenset({Scope.INVOKE}), name="x")
    registry.create_key(
        narrow, owner="x", scopes=frozenset({Scope.INVOKE}), name="x", models=["gpt-4o-mini"]
    )
