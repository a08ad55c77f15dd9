"""Calls through the gateway are embedded for drift off the request path, inputs and
answers; a project that logs no content has none of its calls embedded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from seamline.providers.local_models import minilm_files
from seamline.registry import Actor, Registry
from seamline.store.schema import call_embeddings
from tests.gateway.conftest import RunningGateway

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")


def test_calls_are_embedded_unless_the_project_logs_no_content(
    start_gateway: Callable[..., RunningGateway], registry: Registry, alice: Actor
) -> None:
    gateway = start_gateway(drift={"sample_rate": 1.0})
    ask = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "where is my laptop?"}]}
    reply = gateway.client().chat.completions.with_raw_response.create(**ask)
    gateway.events()
    embedder = gateway.app.gateway.call_embedder
    assert embedder is not None
    embedder.queue.wait()
    with registry.db.read() as conn:
        [row] = conn.execute(select(call_embeddings)).mappings().all()
    assert row["request_id"] == reply.headers["x-request-id"]
    assert row["output_vector"] is not None and len(row["input_vector"]) == 384
    assert row["model"].startswith("local-minilm:")

    registry.set_content_logging(alice, "none")
    gateway.client().chat.completions.create(**ask)
    gateway.events(expected=2)
    embedder.queue.wait()
    with registry.db.read() as conn:
        assert len(conn.execute(select(call_embeddings)).all()) == 1
