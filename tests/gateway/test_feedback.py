"""Feedback round-trips through the gateway, the SDK and the store: idempotent per call,
user and metric; scoped to the caller's project (another project's call is a 404 that says
nothing of it); aggregated per prompt version; bad input is a clear 400."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from seamline.core.clock import utcnow
from seamline.core.errors import InvalidInput, NotFound
from seamline.monitoring.feedback import FeedbackStore, parse_feedback
from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope
from seamline.sdk import Client
from tests.conftest import make_actor
from tests.factories import prompt_draft
from tests.gateway.conftest import RunningGateway


def _call(gateway: RunningGateway, **extra: Any) -> str:
    reply = gateway.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], **extra
    )
    return reply.headers["x-request-id"]


def _post(gateway: RunningGateway, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or gateway.key}"}
    return httpx.post(f"{gateway.url}/v1/feedback", json=body, headers=headers)


def test_feedback_round_trips_and_a_second_score_replaces_the_first(
    gateway: RunningGateway, registry: Registry, alice: Actor
) -> None:
    request_id = _call(gateway)  # posted at once: the event may still be in the writer
    first = _post(gateway, {"request_id": request_id, "score": "down", "user": "u-1"})
    assert first.status_code == 201, first.text
    assert first.json()["metric"] == "thumbs" and first.json()["value"] == 0.0
    again = _post(
        gateway,
        {
            "request_id": request_id,
            "score": "up",
            "user": "u-1",
            "comment": "fixed it",
            "tags": ["x"],
        },
    )
    assert again.status_code == 200 and again.json()["value"] == 1.0
    other_user = _post(gateway, {"request_id": request_id, "score": "down", "user": "u-2"})
    rating = _post(gateway, {"request_id": request_id, "score": 4, "user": "u-1"})
    named = _post(gateway, {"request_id": request_id, "metric": "accuracy", "value": 0.25})
    assert [r.status_code for r in (other_user, rating, named)] == [201, 201, 201]
    with registry.db.read() as conn:
        said = FeedbackStore(registry.db).of_call(conn, alice.project.id, request_id, None)
    assert sorted((s["user"] or "-", s["metric"], s["value"]) for s in said) == [
        ("-", "accuracy", 0.25),
        ("u-1", "rating", 4.0),
        ("u-1", "thumbs", 1.0),
        ("u-2", "thumbs", 0.0),
    ]
    assert [s["comment"] for s in said if s["user"] == "u-1" and s["metric"] == "thumbs"] == [
        "fixed it"
    ]


def test_feedback_is_scoped_to_the_callers_project(
    gateway: RunningGateway, registry: Registry
) -> None:
    request_id = _call(gateway)
    gateway.events()
    outsider = make_actor(registry, "mallory", project="globex")
    key, _ = registry.create_key(
        outsider, owner="globex-svc", scopes=frozenset({Scope.INVOKE}), name="svc"
    )
    for body in (
        {"request_id": request_id, "score": "down"},
        {"request_id": "req_nope", "score": 1},
    ):
        refused = _post(gateway, body, key=key)
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["code"] == "feedback_target_not_found"
    with registry.db.read() as conn:
        assert FeedbackStore(registry.db).of_call(conn, outsider.project.id, request_id, None) == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"score": "up"}, "request_id"),
        ({"request_id": "r", "session_id": "s", "score": "up"}, "request_id"),
        ({"request_id": "r", "score": 7}, "score"),
        ({"request_id": "r", "score": "meh"}, "score"),
        ({"request_id": "r", "score": "up", "metric": "x", "value": 1}, "score"),
        ({"request_id": "r", "metric": "accuracy"}, "value"),
        ({"request_id": "r", "metric": "accuracy", "value": float("nan")}, "value"),
        ({"request_id": "r", "metric": "rating", "value": 9}, "value"),
        ({"request_id": "r", "score": "up", "comment": "x" * 4001}, "comment"),
        ({"request_id": "r", "score": "up", "tags": ["t"] * 21}, "tags"),
    ],
)
def test_bad_feedback_is_a_clear_error(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_feedback(body)
    assert refused.value.param == param


def test_bad_feedback_on_the_wire_is_a_400_naming_the_field(gateway: RunningGateway) -> None:
    request_id = _call(gateway)
    refused = _post(gateway, {"request_id": request_id, "score": 11})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "score"


def test_the_sdk_sends_feedback_and_versions_are_compared(
    gateway: RunningGateway, registry: Registry, alice: Actor
) -> None:
    for text in ("Say hi to {{ who }}.", "Greet {{ who }} warmly."):
        registry.push(alice, [prompt_draft(text=text, model="gpt-4o-mini")])
    client = Client(base_url=gateway.url, api_key=gateway.key)
    for version, scores in ((1, ["down", "down", "up"]), (2, ["up", "up", "up"])):
        for score in scores:
            reply = gateway.client().chat.completions.with_raw_response.create(
                model=f"prompt:greeter@{version}",
                messages=[],
                extra_body={"seamline": {"variables": {"who": "Ada"}}},
            )
            client.feedback(reply.headers["x-request-id"], score=score, user="u-1")
    with pytest.raises(NotFound):
        client.feedback("req_unknown", score="up")
    client.close()
    summary = FeedbackStore(registry.db).summary(alice.project.id, utcnow() - timedelta(hours=1))
    shares = {g.prompt: g.as_record()["metrics"]["thumbs"] for g in summary}
    assert (shares["greeter@1"]["n"], round(shares["greeter@1"]["estimate"], 3)) == (3, 0.333)
    assert (shares["greeter@2"]["n"], shares["greeter@2"]["estimate"]) == (3, 1.0)
    only_two = FeedbackStore(registry.db).summary(
        alice.project.id, utcnow() - timedelta(hours=1), prompt="greeter@2"
    )
    assert [g.prompt for g in only_two] == ["greeter@2"]
