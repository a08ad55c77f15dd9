"""Upstream adapters behind one small protocol, so the gateway and tests swap providers,
not code."""

from seamline.providers.base import (
    ChatResult,
    Deployment,
    Provider,
    StreamChunk,
    UpstreamError,
)

__all__ = ["ChatResult", "Deployment", "Provider", "StreamChunk", "UpstreamError"]
