"""The Python SDK: fetch prompts by alias from a seamline server (or the local database),
with a client-side cache that keeps serving the last good version when the server is down."""

from seamline.registry.prompt import Prompt, RenderedPrompt
from seamline.sdk.client import Client

__all__ = ["Client", "Prompt", "RenderedPrompt"]
