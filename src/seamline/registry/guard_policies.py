"""Which guard policy a call runs under, for every face that guards (the gateway, the CLI)."""

from __future__ import annotations

from seamline.core.errors import NotFound
from seamline.guards.policy import GuardPolicySpec, default_policy
from seamline.registry.identity import Actor
from seamline.registry.service import Registry

# A project's own policy for every call whose prompt names none, once it pushes one.
PROJECT_POLICY = "default"


def policy_for(
    registry: Registry, actor: Actor, name: str | None = None
) -> tuple[GuardPolicySpec, int | None]:
    """The policy ``name`` (a prompt's), else the project's ``default``, else the one
    seamline ships (version None); a named policy at its production version, else its
    latest. A name the project lacks is an error: a prompt that asks for a policy must not
    run under none."""
    record = registry.released_version(actor, "guard_policy", name or PROJECT_POLICY)
    if record is not None:
        return GuardPolicySpec.model_validate(record.content), record.number
    if name is not None:
        raise NotFound(f"guard policy {name!r} not found", code="guard_policy_not_found")
    return default_policy(), None
