"""Where the SDK fetches versions from and sends feedback to: the HTTP API, or the
database directly."""

from __future__ import annotations

from collections.abc import Callable
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

    def send_feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store feedback (``monitoring.feedback``'s body); the stored record."""
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
        return self._answer(lambda: self._http.get(path))

    def send_feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._answer(lambda: self._http.post("/v1/feedback", json=body))

    def _answer(self, request: Callable[[], httpx.Response]) -> dict[str, Any]:
        """The JSON answer of ``request``; the server's error as the SDK's own."""
        try:
            response = request()
        except httpx.HTTPError as exc:
            raise Unavailable(f"seamline unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise Unavailable(f"seamline answered {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
        except ValueError:  # a proxy's HTML page, not seamline
            raise Unavailable(f"seamline answered {response.status_code} without JSON") from None
        if response.status_code not in (200, 201):
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

    def send_feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        # Imported here: ``import seamline`` (the SDK) must stay free of numpy and the rest.
        from seamline.monitoring.feedback import FeedbackStore, parse_feedback

        store = FeedbackStore(self._registry.db)
        stored, _ = store.record(self._actor.project.id, parse_feedback(body), source="sdk")
        return stored

    def close(self) -> None:
        self._registry.db.dispose()
