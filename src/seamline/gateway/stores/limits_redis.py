"""The Redis limiter: the same windows as ``LocalLimiter``, shared by every worker and replica.

Admission is one Lua script, so checking every scope and counting the request happen
atomically: two workers can never both take the last request of a window. Keys expire with
their window.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from seamline.core.errors import Unavailable
from seamline.gateway.stores.limits import WINDOW_S, LimitScope, RateState, over_limit, tighter

# KEYS: per scope, its request counter then its token counter.
# ARGV: the window's TTL, then per scope its requests and tokens limits (0: none).
# Returns {0, r1, t1, r2, t2, ...} when admitted, or {i, 1|2} when scope i is over its
# requests (1) or tokens (2) limit.
_ADMIT = """
local scopes = #KEYS / 2
for i = 1, scopes do
  local rpm = tonumber(ARGV[2 * i])
  local tpm = tonumber(ARGV[2 * i + 1])
  local requests = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local tokens = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  if rpm > 0 and requests >= rpm then return {i, 1} end
  if tpm > 0 and tokens >= tpm then return {i, 2} end
end
local counts = {0}
for i = 1, scopes do
  local requests = redis.call('INCR', KEYS[2 * i - 1])
  redis.call('EXPIRE', KEYS[2 * i - 1], ARGV[1])
  counts[#counts + 1] = requests
  counts[#counts + 1] = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
end
return counts
"""


class RedisLimiter:
    def __init__(self, url: str, prefix: str = "seamline:rl") -> None:
        self._redis = aioredis.from_url(url)
        self._prefix = prefix
        self._admit = self._redis.register_script(_ADMIT)

    def _keys(self, scope: LimitScope, window: int) -> tuple[str, str]:
        base = f"{self._prefix}:{scope.name}:{window}"
        return f"{base}:r", f"{base}:t"

    async def admit(self, scopes: list[LimitScope]) -> RateState:
        now = time.time()
        window, reset = int(now // WINDOW_S), WINDOW_S - now % WINDOW_S
        keys = [key for scope in scopes for key in self._keys(scope, window)]
        limits = [
            str(v)
            for s in scopes
            for v in (s.limits.requests_per_minute, s.limits.tokens_per_minute)
        ]
        try:
            result = await self._admit(keys=keys, args=[str(WINDOW_S * 2), *limits])
        except RedisError as exc:
            raise Unavailable(f"rate limiter unreachable: {exc}") from exc
        if result[0] != 0:
            scope = scopes[int(result[0]) - 1]
            kind = "requests" if int(result[1]) == 1 else "tokens"
            limit = (
                scope.limits.requests_per_minute
                if kind == "requests"
                else scope.limits.tokens_per_minute
            )
            raise over_limit(scope, kind, reset, limit)
        state = RateState(reset_s=reset)
        for index, scope in enumerate(scopes):
            requests, tokens = int(result[1 + 2 * index]), int(result[2 + 2 * index])
            state = tighter(state, scope, requests, tokens, reset)
        return state

    async def add_tokens(self, scopes: list[LimitScope], tokens: int) -> None:
        if not tokens:
            return
        window = int(time.time() // WINDOW_S)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    _, token_key = self._keys(scope, window)
                    pipe.incrby(token_key, tokens)
                    pipe.expire(token_key, WINDOW_S * 2)
                await pipe.execute()
        except RedisError:
            pass  # counting is best effort once the call is done; admission fails closed

    async def close(self) -> None:
        await self._redis.aclose()
