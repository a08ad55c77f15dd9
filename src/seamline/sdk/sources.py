"""Where the SDK fetches versions from: the HTTP API, or the database directly."""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

import httpx

from seamline.core.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SeamlineError,
    Unavailable,
)
from seamline.registry import Actor, Registry

_ERRORS_BY_STATUS: dict[int, type[SeamlineError]] = {
    400: InvalidInput,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
}


class VersionSource(Protocol):
    def fetch(self, kind: str, name: str, ref: str) -> dict[str, Any]:
        """The version's JSON form (see ``VersionRecord.to_dict``); raises
        :class:`Unavailable` when the source cannot be reached."""
        ...

    def close(self) -> None: ...


class HttpSource:
    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def fetch(self, kind: str, name: str, ref: str) -> dict[str, Any]:
        path = f"/api/v1/artefacts/{kind}/{quote(name)}/versions/{quote(ref)}"
        try:
            response = self._http.get(path)
        except httpx.HTTPError as exc:
            raise Unavailable(f"registry unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise Unavailable(f"registry answered {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
        except ValueError:  # a proxy's HTML page, not the registry
            raise Unavailable(f"registry answered {response.status_code} without JSON") from None
        if response.status_code != 200:
            error = body.get("error", {})
            raise _ERRORS_BY_STATUS.get(response.status_code, InvalidInput)(
                error.get("message", response.text), code=error.get("code")
            )
        return body

    def close(self) -> None:
        self._http.close()


class LocalSource:
    def __init__(self, registry: Registry, actor: Actor) -> None:
        self._registry = registry
        self._actor = actor

    def fetch(self, kind: str, name: str, ref: str) -> dict[str, Any]:
        return self._registry.get_version(self._actor, kind, name, ref).to_dict()

    def close(self) -> None:
        self._registry.db.dispose()
