"""Requests and tokens per minute, per key, per project and per model.

Fixed one-minute windows: a request is counted when admitted; tokens are counted when the
call ends (they are unknown before), and a window over its token limit admits no new call
until it rolls over. This in-process limiter serves one worker; the Redis limiter (same
interface) shares the counts between workers and replicas.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from seamline.core.errors import RateLimited
from seamline.core.settings import LimitConfig

WINDOW_S = 60


@dataclass(frozen=True)
class LimitScope:
    """One counter family, e.g. ``key:key_ab12`` with that key's limits."""

    name: str
    limits: LimitConfig


@dataclass(frozen=True)
class RateState:
    """What the ``x-ratelimit-*`` headers report, for the tightest scope."""

    limit_requests: int = 0
    remaining_requests: int = 0
    limit_tokens: int = 0
    remaining_tokens: int = 0
    reset_s: float = 0.0

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.limit_requests:
            headers["x-ratelimit-limit-requests"] = str(self.limit_requests)
            headers["x-ratelimit-remaining-requests"] = str(max(self.remaining_requests, 0))
            headers["x-ratelimit-reset-requests"] = f"{self.reset_s:.0f}s"
        if self.limit_tokens:
            headers["x-ratelimit-limit-tokens"] = str(self.limit_tokens)
            headers["x-ratelimit-remaining-tokens"] = str(max(self.remaining_tokens, 0))
            headers["x-ratelimit-reset-tokens"] = f"{self.reset_s:.0f}s"
        return headers


def over_limit(scope: LimitScope, kind: str, reset_s: float, limit: int) -> RateLimited:
    """The refusal, with the ``x-ratelimit-*`` headers of the exhausted limit as OpenAI sends
    them, so a client's backoff reads the same numbers here as from the provider."""
    retry = max(1, int(reset_s + 0.999))
    return RateLimited(
        f"Rate limit reached for {scope.name}: {limit} {kind} per minute. Retry in {retry}s.",
        code="rate_limit_exceeded",
        headers={
            "Retry-After": str(retry),
            f"x-ratelimit-limit-{kind}": str(limit),
            f"x-ratelimit-remaining-{kind}": "0",
            f"x-ratelimit-reset-{kind}": f"{retry}s",
        },
    )


class LocalLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int, int]] = {}  # scope -> (window, requests, tokens)

    def _window(self, scope: str, now: float) -> tuple[int, int, int]:
        window = int(now // WINDOW_S)
        current = self._windows.get(scope)
        if current is None or current[0] != window:
            current = (window, 0, 0)
        return current

    async def admit(self, scopes: list[LimitScope]) -> RateState:
        """Count one request against every scope, or raise RateLimited and count none."""
        now = time.time()
        reset = WINDOW_S - now % WINDOW_S
        windows = [self._window(s.name, now) for s in scopes]
        for scope, (_, requests, tokens) in zip(scopes, windows, strict=True):
            rpm, tpm = scope.limits.requests_per_minute, scope.limits.tokens_per_minute
            if rpm and requests >= rpm:
                raise over_limit(scope, "requests", reset, rpm)
            if tpm and tokens >= tpm:
                raise over_limit(scope, "tokens", reset, tpm)
        state = RateState(reset_s=reset)
        for scope, (window, requests, tokens) in zip(scopes, windows, strict=True):
            self._windows[scope.name] = (window, requests + 1, tokens)
            state = tighter(state, scope, requests + 1, tokens, reset)
        return state

    async def add_tokens(self, scopes: list[LimitScope], tokens: int) -> None:
        now = time.time()
        for scope in scopes:
            window, requests, used = self._window(scope.name, now)
            self._windows[scope.name] = (window, requests, used + tokens)

    async def close(self) -> None:
        return None


def tighter(
    state: RateState, scope: LimitScope, requests: int, tokens: int, reset: float
) -> RateState:
    rpm, tpm = scope.limits.requests_per_minute, scope.limits.tokens_per_minute
    if not rpm and not tpm:
        return state
    remaining_r = rpm - requests if rpm else state.remaining_requests
    remaining_t = tpm - tokens if tpm else state.remaining_tokens
    if state.limit_requests and rpm and remaining_r >= state.remaining_requests:
        return state
    return RateState(
        rpm or state.limit_requests, remaining_r, tpm or state.limit_tokens, remaining_t, reset
    )
