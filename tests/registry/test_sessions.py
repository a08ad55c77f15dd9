"""Dashboard sessions: opened with a key, holding its project and scopes, stored as a hash,
ended by sign-out, by expiry and by the key's revocation, and audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from seamline.core.clock import utcnow
from seamline.core.errors import AuthenticationFailed, PermissionDenied
from seamline.registry import Actor, Registry, Scope
from seamline.store.schema import ui_sessions


def test_a_session_has_the_keys_project_and_scopes_and_keeps_no_token(
    registry: Registry, alice: Actor
) -> None:
    key, info = registry.create_key(alice, owner="rita", scopes=frozenset({Scope.READ}), name="r")
    token, opened = registry.open_session(key)
    found = registry.session(token)
    assert found.actor.project == alice.project and found.actor.user == "rita"
    assert found.actor.can(Scope.READ) and not found.actor.can(Scope.WRITE)
    assert found.csrf_token == opened.csrf_token and len(found.csrf_token) >= 32
    with registry.db.read() as conn:
        stored = conn.execute(select(ui_sessions.c.token_hash)).scalars().all()
    assert token not in stored and len(stored) == 1
    actions = [entry.action for entry in registry.audit_log(alice)]
    assert "ui.sign_in" in actions and info.id


def test_a_wrong_key_opens_nothing(registry: Registry, alice: Actor) -> None:
    for key in ("sk-seam-nope", "not-a-key"):
        with pytest.raises(AuthenticationFailed):
            registry.open_session(key)
    with pytest.raises(AuthenticationFailed):
        registry.session("made-up-token")


def test_sign_out_expiry_and_revocation_each_end_a_session(
    registry: Registry, alice: Actor
) -> None:
    key, info = registry.create_key(alice, owner="bob", scopes=frozenset({Scope.WRITE}), name="b")
    signed_out, _ = registry.open_session(key)
    registry.close_session(signed_out)
    with pytest.raises(AuthenticationFailed):
        registry.session(signed_out)

    expired, _ = registry.open_session(key)
    with registry.db.write() as conn:
        conn.execute(update(ui_sessions).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(AuthenticationFailed):
        registry.session(expired)

    revoked, _ = registry.open_session(key)
    registry.session(revoked)
    registry.revoke_key(alice, info.id)
    with pytest.raises(AuthenticationFailed):
        registry.session(revoked)
    assert "ui.sign_out" in [entry.action for entry in registry.audit_log(alice)]


def test_an_invoke_only_key_cannot_sign_in(registry: Registry, alice: Actor) -> None:
    key, _ = registry.create_key(alice, owner="svc", scopes=frozenset({Scope.INVOKE}), name="s")
    with pytest.raises(PermissionDenied, match="invoke scope only"):
        registry.open_session(key)
