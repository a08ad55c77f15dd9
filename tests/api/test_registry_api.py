from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from seamline.registry import Actor, Registry
from seamline.registry.identity import Scope
from tests.conftest import make_actor
from tests.factories import prompt_doc
from tests.live import LiveServer


def _client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def admin_http(server: LiveServer, registry: Registry, alice: Actor) -> Iterator[httpx.Client]:
    key, _ = registry.create_key(alice, owner="alice", scopes=frozenset({Scope.ADMIN}), name="t")
    with _client(server, key) as client:
        yield client


def _assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param"} and error["message"]
    if code:
        assert error["code"] == code


def test_push_show_promote_and_rollback_over_http(admin_http: httpx.Client) -> None:
    pushed = admin_http.post(
        "/api/v1/artefacts", json={"artefacts": [prompt_doc()], "message": "first"}
    )
    assert pushed.status_code == 200 and pushed.json()["data"][0]["version"] == 1
    changed = prompt_doc(text="Hi {{ who }}")
    assert (
        admin_http.post("/api/v1/artefacts", json={"artefacts": [changed]}).json()["data"][0][
            "version"
        ]
        == 2
    )
    admin_http.put(
        "/api/v1/artefacts/prompt/greeter/aliases/staging",
        json={"version": 1, "expected_version": 0},
    )
    moved = admin_http.put(
        "/api/v1/artefacts/prompt/greeter/aliases/staging",
        json={"version": 2, "expected_version": 1},
    )
    assert moved.json()["version"] == 2
    staging = admin_http.get("/api/v1/artefacts/prompt/greeter/versions/staging").json()
    assert staging["version"] == 2 and staging["aliases"] == ["staging"]
    diff = admin_http.get("/api/v1/artefacts/prompt/greeter/diff", params={"a": 1, "b": 2})
    assert "-  content: Hello {{ who }}!" in diff.json()["diff"]
    assert "+  content: Hi {{ who }}" in diff.json()["diff"]
    rolled = admin_http.post(
        "/api/v1/artefacts/prompt/greeter/aliases/staging/rollback", json={"reason": "worse"}
    )
    assert rolled.json()["version"] == 1
    _assert_error(
        admin_http.put(
            "/api/v1/artefacts/prompt/greeter/aliases/staging",
            json={"version": 1, "expected_version": 2},
        ),
        409,
        "alias_conflict",
    )


def test_errors_use_the_openai_shape_with_4xx(server: LiveServer, admin_http: httpx.Client) -> None:
    _assert_error(httpx.get(f"{server.url}/api/v1/artefacts"), 401, "missing_api_key")
    _assert_error(_client(server, "sk-seam-nope").get("/api/v1/artefacts"), 401, "invalid_api_key")
    _assert_error(
        admin_http.get("/api/v1/artefacts/prompt/none/versions/1"), 404, "artefact_not_found"
    )
    _assert_error(admin_http.get("/api/v1/artefacts/widget/x/versions"), 400)
    _assert_error(
        admin_http.post(
            "/api/v1/artefacts", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
    )
    _assert_error(
        admin_http.post("/api/v1/artefacts", json={"artefacts": [{"name": "x"}]}),
        400,
        "invalid_artefact",
    )
    _assert_error(admin_http.get("/no/such/route"), 404)
    bad_tool = prompt_doc(
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": 3}}}]
    )
    _assert_error(admin_http.post("/api/v1/artefacts", json={"artefacts": [bad_tool]}), 400)


def test_a_key_cannot_see_or_infer_another_projects_prompts(
    server: LiveServer, registry: Registry, alice: Actor, admin_http: httpx.Client
) -> None:
    admin_http.post("/api/v1/artefacts", json={"artefacts": [prompt_doc("secret-plan")]})
    outsider = make_actor(registry, "eve", project="rival")
    key, _ = registry.create_key(outsider, owner="eve", scopes=frozenset({Scope.ADMIN}), name="e")
    with _client(server, key) as eve:
        assert eve.get("/api/v1/artefacts").json()["data"] == []
        missing = eve.get("/api/v1/artefacts/prompt/secret-plan/versions/latest")
        absent = eve.get("/api/v1/artefacts/prompt/never-existed/versions/latest")
        _assert_error(missing, 404)
        # Same answer whether or not the name exists elsewhere: nothing to infer.
        assert missing.json()["error"]["code"] == absent.json()["error"]["code"]
        assert "acme" not in missing.text
        audit = eve.get("/api/v1/audit").json()["data"]
        assert [e["action"] for e in audit] == ["key.create", "project.create"]
        assert "secret-plan" not in str(audit)


def test_revoked_key_is_refused_on_the_next_request(
    server: LiveServer, registry: Registry, alice: Actor, admin_http: httpx.Client
) -> None:
    created = admin_http.post("/api/v1/keys", json={"scopes": ["read"], "name": "ci"}).json()
    with _client(server, created["key"]) as reader:
        assert reader.get("/api/v1/artefacts").status_code == 200
        _assert_error(
            reader.post("/api/v1/artefacts", json={"artefacts": [prompt_doc()]}),
            403,
            "missing_scope",
        )
        assert admin_http.delete(f"/api/v1/keys/{created['id']}").json()["revoked_at"]
        _assert_error(reader.get("/api/v1/artefacts"), 401, "revoked_api_key")
    listed = admin_http.get("/api/v1/keys").json()["data"]
    assert created["key"] not in str(listed)


def test_approvals_policies_and_audit_over_http(
    server: LiveServer, registry: Registry, admin_http: httpx.Client
) -> None:
    admin_http.post("/api/v1/artefacts", json={"artefacts": [prompt_doc()]})
    _assert_error(
        admin_http.post("/api/v1/artefacts/prompt/greeter/versions/1/approvals"),
        403,
        "self_approval",
    )
    policy = admin_http.put(
        "/api/v1/policies/staging", json={"required_approvals": 1, "approver_must_differ": True}
    )
    assert policy.json()["required_approvals"] == 1
    _assert_error(
        admin_http.put("/api/v1/artefacts/prompt/greeter/aliases/staging", json={"version": 1}),
        403,
        "approval_required",
    )
    verified = admin_http.get("/api/v1/audit/verify").json()
    assert verified["ok"] and verified["entries"] >= 3


def test_health_readiness_and_openapi(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready"}
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/api/v1/artefacts/{kind}/{name}/aliases/{alias}" in spec["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200


@pytest.mark.parametrize("ref", ["9" * 5000, "v" + "9" * 20, "2147483648", "0"])
def test_out_of_range_versions_are_400s_on_every_route(admin_http: httpx.Client, ref: str) -> None:
    # Python refuses to parse over 4,300 digits: these answered 500 before.
    assert admin_http.post("/api/v1/artefacts", json={"artefacts": [prompt_doc()]}).is_success
    base = "/api/v1/artefacts/prompt/greeter"
    for response in (
        admin_http.get(f"{base}/versions/{ref}"),
        admin_http.get(f"{base}/diff", params={"a": ref, "b": 1}),
        admin_http.post(f"{base}/versions/{ref}/approvals", json={}),
        admin_http.put(f"{base}/aliases/staging", json={"version": ref}),
    ):
        _assert_error(response, 400, "invalid_version")
