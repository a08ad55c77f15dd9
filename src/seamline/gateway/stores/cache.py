"""The exact response cache: the same request to the same prompt version, answered once.

The key is the sha256 of the canonical upstream request (model, messages, every sampling
parameter, tools) within a project, so a new prompt version, a changed parameter or another
tenant never hits an old answer. Off unless ``[gateway] cache_ttl_s`` is set; a request can
opt out with ``"seamline": {"cache": false}``. One worker keeps an LRU in memory; with
``SEAMLINE_REDIS_URL`` every worker and replica shares Redis. A cached answer to a streaming
request is replayed as a stream.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from seamline.core.canonical import content_hash

# Fields that change how an answer is delivered or attributed, not what it is.
_NOT_PART_OF_THE_ANSWER = frozenset({"stream", "stream_options", "user", "metadata", "seamline"})


def cache_key(project_id: int, body: dict[str, Any]) -> str:
    request = {k: v for k, v in body.items() if k not in _NOT_PART_OF_THE_ANSWER}
    return content_hash({"project": project_id, "request": request})


class ResponseCache:
    def __init__(self, ttl_s: float, max_entries: int, redis_url: str | None = None) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._memory: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._redis = aioredis.from_url(redis_url) if redis_url and ttl_s > 0 else None

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    async def get(self, key: str) -> dict[str, Any] | None:
        raw: bytes | str | None
        if self._redis is not None:
            try:
                raw = await self._redis.get(f"seamline:cache:{key}")
            except RedisError:
                return None  # a cache that is down is a miss, never an error
        else:
            entry = self._memory.get(key)
            if entry is None or entry[0] < time.monotonic():
                self._memory.pop(key, None)
                return None
            self._memory.move_to_end(key)
            raw = entry[1]
        return None if raw is None else dict(orjson.loads(raw))

    async def put(self, key: str, answer: dict[str, Any]) -> None:
        raw = orjson.dumps(answer)
        if self._redis is not None:
            with contextlib.suppress(RedisError):
                await self._redis.set(f"seamline:cache:{key}", raw, ex=max(int(self.ttl_s), 1))
            return
        self._memory[key] = (time.monotonic() + self.ttl_s, raw)
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_entries:
            self._memory.popitem(last=False)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def as_stream(answer: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A cached chat.completion replayed as the chunks a streaming client expects."""
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    base = {
        "id": answer.get("id", "chatcmpl-cached"),
        "object": "chat.completion.chunk",
        "created": answer.get("created", int(time.time())),
        "model": answer.get("model"),
    }
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": message.get("content") or ""},
                    "finish_reason": None,
                }
            ],
        },
        {
            **base,
            "choices": [
                {"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}
            ],
        },
    ]
    if include_usage and answer.get("usage"):
        chunks.append({**base, "choices": [], "usage": answer["usage"]})
    return chunks
