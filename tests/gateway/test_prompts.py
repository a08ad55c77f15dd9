"""Prompts resolved by alias on the gateway: releases, canaries and shadows."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from seamline.registry import Actor, Registry
from tests.factories import prompt_draft
from tests.gateway.conftest import RunningGateway


def _release(registry: Registry, alice: Actor, bob: Actor) -> None:
    """v1 and v2 of 'greeter' (model gpt-4o-mini), v1 in production."""
    for text in ("Hello {{ who }}!", "Howdy {{ who }}!"):
        registry.push(
            alice, [prompt_draft(text=text, model="gpt-4o-mini", parameters={"temperature": 0.1})]
        )
    registry.approve(bob, "prompt", "greeter", 1)
    registry.move_alias(alice, "prompt", "greeter", "production", 1, override=True, reason="test")


def _call(gateway: RunningGateway, http: httpx.Client, **extra: object) -> httpx.Response:
    body = {
        "model": "prompt:greeter@production",
        "seamline": {"variables": {"who": "Ada"}},
        **extra,
    }
    return http.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {gateway.key}"},
    )


def test_prompt_by_alias_renders_and_records_its_version(
    gateway: RunningGateway, registry: Registry, alice: Actor, bob: Actor
) -> None:
    _release(registry, alice, bob)
    reply = gateway.client().chat.completions.create(
        model="prompt:greeter@production",
        messages=[{"role": "user", "content": "and you?"}],
        extra_body={"seamline": {"variables": {"who": "Ada"}}},
        metadata={"session_id": "s-1", "user_id": "u-1"},
    )
    assert reply.choices[0].message.content == "[primary] echo: and you?"
    sent = gateway.upstreams["primary"].requests[-1]
    assert [m["content"] for m in sent["messages"]] == [
        "You greet people.",
        "Hello Ada!",
        "and you?",
    ]
    assert (sent["model"], sent["temperature"]) == ("gpt-4o-mini", 0.1)
    [event] = gateway.events()
    assert (event["prompt_name"], event["prompt_version"], event["prompt_alias"], event["arm"]) == (
        "greeter",
        1,
        "production",
        "control",
    )
    assert (event["session_id"], event["user_id"]) == ("s-1", "u-1")


def test_alias_move_takes_effect_on_the_next_request(
    gateway: RunningGateway, registry: Registry, alice: Actor, bob: Actor
) -> None:
    _release(registry, alice, bob)
    with httpx.Client() as http:
        assert _call(gateway, http).headers["x-seamline-prompt-version"] == "greeter@1"
        registry.approve(bob, "prompt", "greeter", 2)
        registry.move_alias(
            alice, "prompt", "greeter", "production", 2, override=True, reason="test"
        )
        assert _call(gateway, http).headers["x-seamline-prompt-version"] == "greeter@2"
        registry.rollback(alice, "prompt", "greeter", "production")
        assert _call(gateway, http).headers["x-seamline-prompt-version"] == "greeter@1"
    sent = [r["messages"][1]["content"] for r in gateway.upstreams["primary"].requests]
    assert sent == ["Hello Ada!", "Howdy Ada!", "Hello Ada!"]


def test_bad_variables_are_a_400(
    gateway: RunningGateway, registry: Registry, alice: Actor, bob: Actor
) -> None:
    _release(registry, alice, bob)
    with httpx.Client() as http:
        missing = http.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "prompt:greeter@production"},
            headers={"Authorization": f"Bearer {gateway.key}"},
        )
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "missing_variable"
        wrong = _call(gateway, http, seamline={"variables": {"who": 3}})
        assert wrong.json()["error"]["code"] == "invalid_variable"
        assert _call(gateway, http, model="prompt:greeter@9").status_code == 404


def test_canary_gets_its_share_of_2000_calls_and_sessions_stick(
    gateway: RunningGateway, registry: Registry, alice: Actor, bob: Actor
) -> None:
    _release(registry, alice, bob)
    registry.approve(bob, "prompt", "greeter", 2, alias="canary")
    registry.move_alias(
        alice, "prompt", "greeter", "canary", 2, weight=20, override=True, reason="canary"
    )
    # A generous timeout: 2,000 calls on a busy 2-core machine can queue a call for seconds.
    with httpx.Client(timeout=30) as http, ThreadPoolExecutor(8) as pool:
        versions = list(
            pool.map(
                lambda i: _call(gateway, http, metadata={"session_id": f"s{i}"}).headers[
                    "x-seamline-prompt-version"
                ],
                range(2000),
            )
        )
        share = Counter(versions)["greeter@2"] / 2000
        # 20% of 2,000 Bernoulli draws: sd = sqrt(.2*.8/2000) = 0.9%; 4 sd either side.
        assert 0.164 < share < 0.236
        sticky = {
            _call(gateway, http, metadata={"session_id": "s7"}).headers["x-seamline-prompt-version"]
            for _ in range(20)
        }
        assert sticky == {versions[7]}
    arms = Counter(e["arm"] for e in gateway.events(2020))
    assert arms["canary"] + arms["control"] == 2020
    assert abs(arms["canary"] / 2020 - share) < 0.01


def test_shadow_is_called_but_never_returned(
    gateway: RunningGateway, registry: Registry, alice: Actor, bob: Actor
) -> None:
    _release(registry, alice, bob)
    registry.push(alice, [prompt_draft(text="Shadowy {{ who }}!", model="backup-model")])
    registry.move_alias(alice, "prompt", "greeter", "shadow", 3)
    with httpx.Client() as http:
        for _ in range(5):
            reply = _call(gateway, http, messages=[{"role": "user", "content": "ping"}])
            assert reply.json()["choices"][0]["message"]["content"] == "[primary] echo: ping"
    rows = gateway.events(10)
    live = {e["request_id"]: e for e in rows if e["arm"] == "control"}
    shadows = [e for e in rows if e["arm"] == "shadow"]
    assert len(live) == 5 and len(shadows) == 5
    assert {s["parent_request_id"] for s in shadows} == set(live)
    assert all(s["prompt_version"] == 3 and s["model_used"] == "backup-model" for s in shadows)
    assert len(gateway.upstreams["backup"].requests) == 5


def test_a_runaway_template_is_refused_while_other_requests_are_served(
    gateway: RunningGateway, registry: Registry, alice: Actor
) -> None:
    loops = "{% for i in range(10000) %}{% for j in range(30000) %}{% endfor %}{% endfor %}"
    registry.push(alice, [prompt_draft(text=loops + "{{ who }}", model="gpt-4o-mini")])
    answers: list[httpx.Response] = []
    served_meanwhile = False
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=60) as http:
        for _ in range(5):  # a loaded machine may finish a render first: try again
            pending = pool.submit(_call, gateway, http, model="prompt:greeter@latest")
            time.sleep(0.05)  # let the call reach the gateway and start rendering
            # Before the fix the render held the event loop for 12.8 s, and this waited.
            assert httpx.get(f"{gateway.url}/healthz", timeout=60).status_code == 200
            served_meanwhile = not pending.done()
            answers.append(pending.result())
            if served_meanwhile:
                break
    assert served_meanwhile
    for refused in answers:
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "template_error"
        assert "runs over" in refused.json()["error"]["message"]
    assert gateway.upstreams["primary"].requests == []
