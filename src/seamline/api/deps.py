"""Request-scoped dependencies: the registry and the authenticated actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from seamline.core.errors import AuthenticationFailed
from seamline.registry import Actor, Registry

_bearer = HTTPBearer(auto_error=False, description="a seamline API key (sk-seam-...)")


def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def get_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None:
        raise AuthenticationFailed(
            "missing API key: send 'Authorization: Bearer sk-seam-...'", code="missing_api_key"
        )
    return get_registry(request).authenticate(credentials.credentials)


RegistryDep = Annotated[Registry, Depends(get_registry)]
ActorDep = Annotated[Actor, Depends(get_actor)]
