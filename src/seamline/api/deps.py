"""Request-scoped dependencies: the registry and the authenticated actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from seamline.api.admission import ACTOR_STATE
from seamline.registry import Actor, Registry

# Declares the bearer scheme in the OpenAPI document (the docs' "Authorize" button); the key
# itself is checked by the Admission middleware, before the body is read.
_bearer = HTTPBearer(auto_error=False, description="a seamline API key (sk-seam-...)")


def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def get_actor(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Actor:
    """The actor the Admission middleware authenticated: every route that takes one lives
    under its keyed prefix (``/api/v1``), so a request reaching it has a valid key."""
    actor: Actor = getattr(request.state, ACTOR_STATE)
    return actor


RegistryDep = Annotated[Registry, Depends(get_registry)]
ActorDep = Annotated[Actor, Depends(get_actor)]
