"""``seamline.Client``: prompts by alias, cached, with the last good version as a safety net.

    client = Client(base_url="http://127.0.0.1:8750", api_key="sk-seam-...")
    prompt = client.prompts.get("support-answer", alias="production")
    messages = prompt.render(question="...", context="...").messages

A version is fetched at most once per ``cache_ttl`` seconds (default 60); an alias move is
seen by the next fetch after the TTL. When the registry cannot be reached, ``get`` returns
the last version it fetched, however old, then the caller's ``fallback``, and only then
raises :class:`~seamline.core.errors.Unavailable`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from seamline.core.errors import InvalidInput, Unavailable
from seamline.core.settings import Settings
from seamline.registry import Prompt, PromptSpec
from seamline.registry.workspace import local_actor, open_registry
from seamline.sdk.sources import HttpSource, LocalSource, VersionSource

DEFAULT_CACHE_TTL_S = 60.0
DEFAULT_TIMEOUT_S = 5.0
RETRY_AFTER_FAILURE_S = 5.0


@dataclass
class _Cached:
    prompt: Prompt
    fetched_at: float


class PromptsClient:
    def __init__(self, source: VersionSource, cache_ttl: float, clock: Callable[[], float]) -> None:
        self._source = source
        self._ttl = cache_ttl
        self._clock = clock
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._lock = threading.Lock()

    def get(
        self,
        name: str,
        alias: str | None = None,
        version: int | None = None,
        *,
        fallback: Prompt | PromptSpec | dict[str, Any] | None = None,
    ) -> Prompt:
        """The prompt ``name`` at ``alias`` or ``version`` (the latest version if neither)."""
        if alias is not None and version is not None:
            raise InvalidInput("give an alias or a version, not both")
        ref = alias if alias is not None else (str(version) if version is not None else "latest")
        key = (name, ref)
        with self._lock:
            cached = self._cache.get(key)
        if cached and self._clock() - cached.fetched_at < self._ttl:
            return cached.prompt
        try:
            body = self._source.fetch("prompt", name, ref)
            prompt = Prompt.from_content(
                body["content"],
                version=body["version"],
                content_hash=body["content_hash"],
                alias=alias,
            )
        except (Unavailable, ValidationError, KeyError) as exc:
            # Down, or an answer this SDK cannot read (a newer server's schema): keep serving
            # what worked, and do not retry for a while, so each call does not wait out a
            # timeout during an outage.
            if cached:
                cached.fetched_at = self._clock() - self._ttl + RETRY_AFTER_FAILURE_S
                return cached.prompt
            if fallback is not None:
                return _as_prompt(fallback, alias)
            if isinstance(exc, Unavailable):
                raise
            raise Unavailable(f"cannot read prompt {name}@{ref} from the registry") from exc
        with self._lock:
            self._cache[key] = _Cached(prompt, self._clock())
        return prompt

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()


class Client:
    """A seamline client, remote (``base_url`` + ``api_key``) or local (:meth:`local`)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL_S,
        timeout: float = DEFAULT_TIMEOUT_S,
        source: VersionSource | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if source is None:
            if not base_url or not api_key:
                raise InvalidInput("Client needs base_url and api_key (or use Client.local())")
            source = HttpSource(base_url, api_key, timeout)
        self._source = source
        self.prompts = PromptsClient(source, cache_ttl, clock)

    @classmethod
    def local(
        cls,
        settings: Settings | None = None,
        *,
        project: str | None = None,
        user: str | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL_S,
    ) -> Client:
        """Read the registry database directly, as the CLI does."""
        settings = settings or Settings()
        registry = open_registry(settings)
        actor = local_actor(registry.db, project or settings.project, user or settings.acting_user)
        return cls(source=LocalSource(registry, actor), cache_ttl=cache_ttl)

    def feedback(
        self,
        request_id: str | None = None,
        *,
        session_id: str | None = None,
        score: str | int | None = None,
        metric: str | None = None,
        value: float | None = None,
        comment: str | None = None,
        tags: list[str] | None = None,
        user: str | None = None,
    ) -> dict[str, Any]:
        """What a user said of a call (its ``x-request-id``, ``response._request_id`` in
        OpenAI's SDK) or of a session: ``score="up"``/``"down"``, a rating ``score=4``, or
        ``metric=`` with ``value=``; sent again by the same user on the same metric, it
        replaces the earlier one. The stored record."""
        given = {
            "request_id": request_id,
            "session_id": session_id,
            "score": score,
            "metric": metric,
            "value": value,
            "comment": comment,
            "tags": tags,
            "user": user,
        }
        return self._source.send_feedback({k: v for k, v in given.items() if v is not None})

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _as_prompt(fallback: Prompt | PromptSpec | dict[str, Any], alias: str | None) -> Prompt:
    if isinstance(fallback, Prompt):
        return fallback
    spec = fallback if isinstance(fallback, PromptSpec) else PromptSpec.model_validate(fallback)
    return Prompt(spec.name, 0, "", spec, alias)
