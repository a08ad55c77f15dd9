"""The Python SDK: fetch prompts by alias from a seamline server (or the local database),
with a client-side cache that keeps serving the last good version when the server is down;
and report retrieval an application did itself, to be recorded and scored with the call."""

from seamline.registry.prompt import Prompt, RenderedPrompt
from seamline.sdk.client import Client
from seamline.sdk.retrieval import RetrievalReport, RetrievedPassage

__all__ = ["Client", "Prompt", "RenderedPrompt", "RetrievalReport", "RetrievedPassage"]
