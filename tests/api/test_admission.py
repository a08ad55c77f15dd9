"""The registry API checks the key and the body's size before it reads the body, and checks
the ``write`` scope before it compiles a pushed template.

Bodies are streamed from a generator that counts the bytes the server pulled, through
httpx's ASGI transport (which pulls a request body only as the app receives it): that is how
a test can tell "refused unread" from "read, then refused".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from seamline.api import create_app
from seamline.core.settings import GatewayConfig, Settings
from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope
from tests.factories import prompt_doc
from tests.live import LiveServer

CAP = 4096


class CountingBody:
    """A chunked request body that counts the bytes the server has pulled from it."""

    def __init__(self, data: bytes, chunk_size: int = 256) -> None:
        self.chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += len(chunk)
            yield chunk


@pytest.fixture
def app(registry: Registry) -> FastAPI:
    return create_app(Settings(gateway=GatewayConfig(max_body_bytes=CAP)), registry=registry)


@pytest.fixture
def make_key(registry: Registry, alice: Actor) -> Callable[[Scope], str]:
    def make(scope: Scope) -> str:
        key, _ = registry.create_key(alice, owner="alice", scopes=frozenset({scope}), name="t")
        return key

    return make


def _push(app: FastAPI, body: CountingBody, headers: dict[str, str]) -> httpx.Response:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post(
                "/api/v1/artefacts",
                content=body,
                headers={"content-type": "application/json", **headers},
            )

    return asyncio.run(post())


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param"} and error["code"] == code


def test_a_declared_length_over_the_cap_is_refused_unread(
    app: FastAPI, make_key: Callable[[Scope], str]
) -> None:
    body = CountingBody(b"x" * (CAP * 4))
    headers = {**_bearer(make_key(Scope.ADMIN)), "content-length": str(CAP * 4)}
    _assert_error(_push(app, body, headers), 413, "payload_too_large")
    assert body.pulled == 0


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_cap(
    app: FastAPI, make_key: Callable[[Scope], str]
) -> None:
    key = make_key(Scope.ADMIN)
    huge = CountingBody(b" " * (CAP * 64))
    response = _push(app, huge, _bearer(key))
    _assert_error(response, 413, "payload_too_large")
    assert "content-length" not in response.request.headers
    assert huge.pulled <= CAP + 256  # stopped at the chunk that passed the cap
    # Under the cap, the chunks the middleware read reach the route intact.
    small = CountingBody(json.dumps({"artefacts": [prompt_doc()]}).encode(), chunk_size=64)
    pushed = _push(app, small, _bearer(key))
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["data"][0]["version"] == 1


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "missing_api_key"), (_bearer("sk-seam-wrong"), "invalid_api_key")],
)
def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(
    app: FastAPI, headers: dict[str, str], code: str
) -> None:
    body = CountingBody(json.dumps({"artefacts": [prompt_doc()]}).encode())
    _assert_error(_push(app, body, headers), 401, code)
    assert body.pulled == 0


def test_invalid_json_without_a_key_is_a_401_not_a_parse_error(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/api/v1/artefacts",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    _assert_error(response, 401, "missing_api_key")


def test_a_key_is_authenticated_once_per_request(
    app: FastAPI,
    registry: Registry,
    make_key: Callable[[Scope], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    authenticate = registry.authenticate

    def counted(key: str) -> Actor:
        calls.append(key)
        return authenticate(key)

    monkeypatch.setattr(registry, "authenticate", counted)
    body = CountingBody(json.dumps({"artefacts": [prompt_doc()]}).encode())
    assert _push(app, body, _bearer(make_key(Scope.ADMIN))).status_code == 200
    assert len(calls) == 1


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_key_without_write_cannot_push_and_its_templates_are_not_compiled(
    server: LiveServer, make_key: Callable[[Scope], str], dry_run: bool
) -> None:
    # A template that does not compile: had it been compiled, the answer would be a 400.
    broken = prompt_doc(text="Hello {{ who ")
    response = httpx.post(
        f"{server.url}/api/v1/artefacts",
        json={"artefacts": [broken], "dry_run": dry_run},
        headers=_bearer(make_key(Scope.INVOKE)),
    )
    _assert_error(response, 403, "missing_scope")
