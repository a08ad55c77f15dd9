"""Online quality through the gateway: a sampled call is scored off the request path and
its score attached to it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from seamline.core.clock import utcnow
from seamline.monitoring.quality import CallScores
from seamline.providers.local_models import minilm_files
from seamline.registry import Actor, Registry
from tests.gateway.conftest import RunningGateway

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")
QUESTION = "How many days of paid time off do employees get?"


def test_the_gateway_scores_sampled_calls_off_the_request_path(
    start_gateway: Callable[..., RunningGateway], registry: Registry, alice: Actor
) -> None:
    gateway = start_gateway(quality={"sample_rate": 1.0, "scorers": ["answer_relevance"]})
    reply = gateway.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}]
    )
    gateway.events()
    gateway.app.gateway.quality_scorer.queue.wait()
    [score] = CallScores(registry.db).of_call(alice.project.id, reply.headers["x-request-id"])
    assert score["metric"] == "answer_relevance" and score["value"] > 0.5  # an echo
    report = CallScores(registry.db).report(alice.project.id, utcnow() - timedelta(hours=1))
    assert report.as_record()["versions"][0]["prompt"] == "-"
