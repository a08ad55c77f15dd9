from __future__ import annotations

import threading

import pytest

from seamline.core.errors import Conflict, InvalidInput, PermissionDenied
from seamline.registry import Actor, GateSubject, GateVerdict, Registry
from seamline.registry.identity import Scope
from tests.conftest import make_actor
from tests.factories import prompt_draft


def _two_versions(registry: Registry, author: Actor) -> None:
    registry.push(author, [prompt_draft()])
    registry.push(author, [prompt_draft(text="Hi {{ who }}!")])


def test_promote_and_rollback_move_the_alias(registry: Registry, alice: Actor) -> None:
    _two_versions(registry, alice)
    registry.move_alias(alice, "prompt", "greeter", "staging", 1)
    assert registry.get_version(alice, "prompt", "greeter", "staging").number == 1
    registry.move_alias(alice, "prompt", "greeter", "staging", 2)
    assert registry.get_version(alice, "prompt", "greeter", "staging").number == 2
    back = registry.rollback(alice, "prompt", "greeter", "staging", reason="bad answers")
    assert back.version == 1
    assert registry.get_version(alice, "prompt", "greeter", "staging").number == 1
    history = registry.alias_history(alice, "prompt", "greeter", "staging")
    assert [(c.action, c.from_version, c.to_version) for c in history] == [
        ("move", None, 1),
        ("move", 1, 2),
        ("rollback", 2, 1),
    ]


def test_repeated_rollbacks_walk_further_back(registry: Registry, alice: Actor) -> None:
    for text in ("A {{ who }}", "B {{ who }}", "C {{ who }}"):
        registry.push(alice, [prompt_draft(text=text)])
    for version in (1, 2, 3):
        registry.move_alias(alice, "prompt", "greeter", "staging", version)
    assert registry.rollback(alice, "prompt", "greeter", "staging").version == 2
    assert registry.rollback(alice, "prompt", "greeter", "staging").version == 1
    with pytest.raises(Conflict, match="no earlier target"):
        registry.rollback(alice, "prompt", "greeter", "staging")


def test_author_cannot_approve_own_version_for_production(
    registry: Registry, alice: Actor, bob: Actor
) -> None:
    registry.push(alice, [prompt_draft()])
    with pytest.raises(PermissionDenied, match="cannot approve") as refused:
        registry.approve(alice, "prompt", "greeter", 1)
    assert refused.value.code == "self_approval"
    assert registry.approve(bob, "prompt", "greeter", 1)["approvals"] == 1


def test_production_needs_an_approval_and_an_audited_gate_override(
    registry: Registry, alice: Actor, bob: Actor
) -> None:
    registry.push(alice, [prompt_draft()])
    with pytest.raises(PermissionDenied) as no_approval:
        registry.move_alias(alice, "prompt", "greeter", "production", 1)
    assert no_approval.value.code == "approval_required"
    registry.approve(bob, "prompt", "greeter", 1)
    with pytest.raises(PermissionDenied, match="names no eval_set") as gated:
        registry.move_alias(alice, "prompt", "greeter", "production", 1)
    assert gated.value.code == "gate_failed"
    with pytest.raises(InvalidInput, match="reason"):
        registry.move_alias(alice, "prompt", "greeter", "production", 1, override=True)
    moved = registry.move_alias(
        alice, "prompt", "greeter", "production", 1, override=True, reason="hotfix, evals tomorrow"
    )
    assert moved.version == 1
    actions = [e.action for e in registry.audit_log(alice, limit=3)]
    assert actions == ["alias.move", "gate.override", "version.approve"]
    override = registry.audit_log(alice, action="gate.override")[0]
    assert override.details["reason"] == "hotfix, evals tomorrow"


def test_a_version_with_an_eval_set_needs_a_recorded_run_of_its_own_content(
    registry: Registry, alice: Actor, bob: Actor
) -> None:
    registry.push(alice, [prompt_draft(eval_set="greeter-golden")])
    registry.approve(bob, "prompt", "greeter", 1)
    with pytest.raises(PermissionDenied, match="no eval run recorded for prompt greeter v1 on "):
        registry.move_alias(alice, "prompt", "greeter", "production", 1)


def test_a_passing_gate_releases_without_override(
    registry: Registry, alice: Actor, bob: Actor
) -> None:
    class PassingGate:
        def check(self, subject: GateSubject) -> GateVerdict:
            return GateVerdict(True, f"eval passed for v{subject.version}")

    gated = Registry(registry.db, key_secret=registry.key_secret, gate=PassingGate())
    registry.push(alice, [prompt_draft()])
    registry.approve(bob, "prompt", "greeter", 1)
    assert gated.move_alias(alice, "prompt", "greeter", "production", 1).version == 1


def test_moving_an_alias_needs_a_scope_the_policy_allows(registry: Registry, alice: Actor) -> None:
    registry.push(alice, [prompt_draft()])
    reader = make_actor(registry, "rita", scopes=frozenset({Scope.READ}))
    with pytest.raises(PermissionDenied, match="scope"):
        registry.move_alias(reader, "prompt", "greeter", "staging", 1)


def test_canary_needs_a_weight_and_keeps_it(registry: Registry, alice: Actor, bob: Actor) -> None:
    _two_versions(registry, alice)
    for version in (1, 2):
        registry.approve(bob, "prompt", "greeter", version, alias="canary")
    release = {"override": True, "reason": "canary test"}
    with pytest.raises(InvalidInput, match="weight"):
        registry.move_alias(alice, "prompt", "greeter", "canary", 2, **release)
    moved = registry.move_alias(alice, "prompt", "greeter", "canary", 2, weight=10, **release)
    assert moved.weight == 10
    assert registry.move_alias(alice, "prompt", "greeter", "canary", 1, **release).weight == 10
    with pytest.raises(InvalidInput, match="between 0 and 100"):
        registry.move_alias(alice, "prompt", "greeter", "canary", 1, weight=101)


def test_a_canary_is_released_like_production(registry: Registry, alice: Actor) -> None:
    """A canary serves production's calls: an unapproved version cannot reach them by it."""
    _two_versions(registry, alice)
    with pytest.raises(PermissionDenied) as refused:
        registry.move_alias(alice, "prompt", "greeter", "canary", 2, weight=100)
    assert refused.value.code == "approval_required"


def test_stale_expected_version_is_a_conflict(registry: Registry, alice: Actor) -> None:
    _two_versions(registry, alice)
    registry.move_alias(alice, "prompt", "greeter", "staging", 1, expected_version=0)
    with pytest.raises(Conflict, match="now points at v1"):
        registry.move_alias(alice, "prompt", "greeter", "staging", 2, expected_version=0)
    assert (
        registry.move_alias(alice, "prompt", "greeter", "staging", 2, expected_version=1).version
        == 2
    )


def test_concurrent_alias_moves_leave_one_winner_and_an_intact_chain(
    registry: Registry, alice: Actor
) -> None:
    for text in ("A {{ who }}", "B {{ who }}", "C {{ who }}", "D {{ who }}", "E {{ who }}"):
        registry.push(alice, [prompt_draft(text=text)])
    registry.move_alias(alice, "prompt", "greeter", "staging", 1)
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def move(version: int) -> None:
        start.wait()
        try:
            registry.move_alias(alice, "prompt", "greeter", "staging", version, expected_version=1)
            outcomes.append("won")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=move, args=(v,)) for v in (2, 3, 4, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "won"]
    history = registry.alias_history(alice, "prompt", "greeter", "staging")
    assert len(history) == 2
    assert registry.verify_audit(alice).ok


def test_alias_names_that_look_like_versions_are_refused(registry: Registry, alice: Actor) -> None:
    registry.push(alice, [prompt_draft()])
    for bad in ("v2", "3", "latest", "Prod", ""):
        with pytest.raises(InvalidInput):
            registry.move_alias(alice, "prompt", "greeter", bad, 1)


def test_out_of_range_versions_and_newline_aliases_are_refused(
    registry: Registry, alice: Actor
) -> None:
    registry.push(alice, [prompt_draft()])
    with pytest.raises(InvalidInput, match="out of range"):
        registry.get_version(alice, "prompt", "greeter", "99999999999999999999")
    with pytest.raises(InvalidInput):
        registry.move_alias(alice, "prompt", "greeter", "staging\n", 1)
    with pytest.raises(InvalidInput, match="NUL"):
        registry.push(alice, [prompt_draft(text="Hi {{ who }}")], message="bad\x00message")
