"""The dashboard's main journeys in a real headless Chromium: sign in, find a failed call
by filter and open it, diff two prompt versions, approve and promote as a second user (the
author refused), a canary's numbers, sign out; another project's key sees none of it, and
an action without the CSRF token is refused."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from seamline.core.clock import utcnow
from seamline.evals.runs import RunStore, RunSubject
from seamline.monitoring.alerts import AlertStore, Firing
from seamline.monitoring.quality import CallScores
from seamline.registry import Scope
from seamline.registry.identity import Actor
from seamline.telemetry.event import CallEvent
from seamline.telemetry.event_insert import insert_events
from tests.ui.conftest import Dashboard, sign_in


def test_sign_in_with_a_wrong_key_is_refused_and_a_page_asks_for_it(
    page: Page, dashboard: Dashboard
) -> None:
    page.goto(f"{dashboard.url}/traces?status=error")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("API key").fill("sk-seam-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid API key")
    page.get_by_label("API key").fill(dashboard.alice)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/traces\?status=error$"))  # back where it was


def test_the_session_cookie_is_http_only_and_same_site(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, dashboard.alice)
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/ui"
    assert dashboard.alice not in cookie["value"]  # a session token, never the key


def test_find_a_failed_call_by_filter_and_open_it(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, dashboard.alice)
    expect(page.locator("#total-calls")).to_have_text("40")
    page.get_by_role("link", name="Traces").click()
    page.get_by_label("Status").select_option("error")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#calls tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("upstream_timeout")
    rows.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(dashboard.failed_call))
    expect(page.get_by_role("alert").or_(page.locator(".flash.error"))).to_contain_text(
        "did not answer within 30 s"
    )
    expect(page.locator(".message").first).to_contain_text("Where is parcel 7?")
    page.get_by_role("link", name="session-3").click()  # the conversation it belongs to
    expect(page.locator("section.message")).to_have_count(10)


def test_the_traces_list_sorts_and_pages_on_the_server(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, dashboard.alice)
    page.goto(f"{dashboard.url}/traces?sort=latency&order=desc")
    first = page.locator("#calls tbody tr").first
    expect(first).to_contain_text("1080 ms")  # the slowest call: 300 + 20 x 39 ms
    page.goto(f"{dashboard.url}/traces?model=gpt-4o-mini")
    expect(page.locator("#calls tbody tr")).to_have_count(40)
    page.goto(f"{dashboard.url}/traces?q=PARCEL+12%3F")
    expect(page.locator("#calls tbody tr")).to_have_count(1)


def test_diff_two_prompt_versions(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, dashboard.alice)
    page.get_by_role("link", name="Prompts").click()
    page.get_by_role("link", name="support").click()
    page.get_by_role("button", name="Diff").click()
    diff = page.locator("#diff")
    expect(diff).to_contain_text("Answer: {{ who }}")
    expect(diff).to_contain_text("Answer kindly: {{ who }}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("v1 against v2")
    assert diff.locator(".diff_add, .diff_chg").count() > 0  # the changed line is marked


def test_approve_and_promote_with_a_second_user_after_the_author_is_refused(
    page: Page, dashboard: Dashboard
) -> None:
    sign_in(page, dashboard, dashboard.alice)
    page.goto(f"{dashboard.url}/prompts/support")
    approve = page.get_by_role("form", name="Approve a version")
    approve.get_by_label("Approve version").select_option("2")
    approve.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("alert")).to_contain_text("author")  # separation of duties
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, dashboard, dashboard.bob)
    page.goto(f"{dashboard.url}/prompts/support")
    promote = page.get_by_role("form", name="Point an alias at a version")
    promote.get_by_label("at version").select_option("2")
    promote.get_by_role("button", name="Promote").click()
    expect(page.get_by_role("alert")).to_contain_text("needs 1 approval")  # not yet approved
    page.goto(f"{dashboard.url}/prompts/support")
    approve = page.get_by_role("form", name="Approve a version")
    approve.get_by_label("Approve version").select_option("2")
    approve.get_by_label("for").fill("production")
    approve.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_have_text("Approval recorded.")
    expect(page.locator("#approvals")).to_contain_text("bob")
    promote = page.get_by_role("form", name="Point an alias at a version")
    promote.get_by_label("at version").select_option("2")
    promote.get_by_role("button", name="Promote").click()
    expect(page.get_by_role("status")).to_have_text("Alias moved.")
    expect(page.locator("#aliases tbody tr", has_text="production")).to_contain_text("v2")
    entries = dashboard.registry.audit_log(_actor(dashboard, "alice"), limit=50)
    done = {(entry.action, entry.actor) for entry in entries}
    assert {("version.approve", "bob"), ("alias.move", "bob"), ("ui.sign_in", "bob")} <= done


def test_a_canarys_numbers_beside_its_control(page: Page, dashboard: Dashboard) -> None:
    bob = _actor(dashboard, "bob")
    dashboard.registry.approve(bob, "prompt", "support", 2, alias="canary")
    dashboard.registry.move_alias(bob, "prompt", "support", "canary", 2, weight=10)
    sign_in(page, dashboard, dashboard.reader)
    page.goto(f"{dashboard.url}/prompts/support")
    canary = page.locator("#live tbody tr[data-version='2']")
    expect(canary).to_contain_text("canary (10%)")
    expect(canary.locator("td").nth(2)).to_have_text("20")
    expect(page.locator("#live tbody tr[data-version='1'] td").nth(2)).to_have_text("20")
    expect(page.get_by_role("form", name="Approve a version")).to_have_count(0)  # read only


def test_sign_out_ends_the_session_for_good(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, dashboard.alice)
    (cookie,) = page.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.context.add_cookies([cookie])  # the old cookie, replayed
    page.goto(f"{dashboard.url}/overview")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_a_key_of_another_project_sees_none_of_it(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, dashboard.carol)
    expect(page.locator("#total-calls")).to_have_text("1")
    page.goto(f"{dashboard.url}/traces")
    expect(page.locator("#calls tbody tr")).to_have_count(1)
    expect(page.locator("#calls")).to_contain_text("globex-model")
    response = page.goto(f"{dashboard.url}/traces/{dashboard.failed_call}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).not_to_contain_text("parcel")
    page.goto(f"{dashboard.url}/prompts")
    expect(page.locator("#prompts")).not_to_contain_text("support")
    response = page.goto(f"{dashboard.url}/prompts/support")
    assert response is not None and response.status == 404


def test_an_action_without_the_csrf_token_is_refused(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, dashboard.bob)
    before = len(dashboard.registry.approvals(_actor(dashboard, "bob"), "prompt", "support"))
    forged = page.request.post(
        f"{dashboard.url}/prompts/support/approve",
        form={"version": "1", "alias": "staging"},
    )
    assert forged.status == 403 and "forged" in forged.text()
    wrong = page.request.post(
        f"{dashboard.url}/prompts/support/approve",
        form={"version": "1", "alias": "staging", "csrf_token": "guessed"},
    )
    assert wrong.status == 403
    after = len(dashboard.registry.approvals(_actor(dashboard, "bob"), "prompt", "support"))
    assert after == before


def _actor(dashboard: Dashboard, user: str) -> Actor:
    key = {"alice": dashboard.alice, "bob": dashboard.bob}[user]
    actor = dashboard.registry.authenticate(key)
    assert actor.can(Scope.WRITE)
    return actor


def test_cost_by_model_and_the_audit_chain_verified(page: Page, dashboard: Dashboard) -> None:
    sign_in(page, dashboard, dashboard.alice)
    page.get_by_role("link", name="Cost").click()
    expect(page.locator("#cost tbody tr")).to_have_count(1)
    expect(page.locator("#cost tbody tr")).to_contain_text("gpt-4o-mini")
    expect(page.locator("#cost-total")).to_have_text("$0.02")  # 40 calls at $0.0004
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("#chain")).to_contain_text("Hash chain verified")
    expect(page.locator("#audit")).to_contain_text("ui.sign_in")


def test_an_alert_links_to_the_calls_behind_it(page: Page, dashboard: Dashboard) -> None:
    alice = _actor(dashboard, "alice")
    firing = Firing(
        rule="errors",
        kind="error_rate",
        project_id=alice.project.id,
        subject="support",
        value=0.025,
        threshold=0.02,
        message="error rate 2.5% above 2%",
        evidence={"window": "1h"},
        request_ids=[dashboard.failed_call],
    )
    AlertStore(dashboard.registry.db).record(firing, utcnow(), {"delivered": True, "attempts": 1})
    sign_in(page, dashboard, dashboard.reader)
    page.get_by_role("link", name="Alerts").click()
    row = page.locator("#alerts tbody tr", has_text="error_rate")
    expect(row).to_contain_text("posted")
    row.get_by_role("link", name=re.compile(dashboard.failed_call[:14])).click()
    expect(page.locator("h1")).to_contain_text(dashboard.failed_call)


def test_an_eval_run_shows_its_intervals_and_gate_and_only_to_its_project(
    page: Page, dashboard: Dashboard
) -> None:
    alice = _actor(dashboard, "alice")
    store = RunStore(dashboard.registry.db, alice.project.id)
    subject = RunSubject("support", 2, "hash", "gpt-4o-mini", "support-cases", 1)
    run_id = store.create(subject, {"metrics": ["exact"]}, cases_total=50, created_by="alice")
    interval = {"estimate": 0.82, "low": 0.71, "high": 0.9, "n": 50, "confidence": 0.95}
    report = {
        "passed": False,
        "metrics": [
            {
                "metric": "exact",
                "candidate": interval,
                "baseline": {**interval, "estimate": 0.9},
                "difference": {**interval, "estimate": -0.08, "low": -0.15, "high": -0.01},
                "p_worse": 0.98,
                "test": "paired bootstrap",
            }
        ],
        "conditions": [
            {"condition": "no regression on exact", "passed": False, "detail": "worse: p=0.98"}
        ],
    }
    store.finish(run_id, status="finished", cost_usd=0.12, report=report, passed=False)
    sign_in(page, dashboard, dashboard.reader)
    page.get_by_role("link", name="Evals").click()
    page.get_by_role("link", name=run_id).click()
    expect(page.locator("#metrics")).to_contain_text("0.820 [0.710, 0.900] n=50")
    expect(page.locator("#metrics")).to_contain_text("-0.080 [-0.150, -0.010]")
    expect(page.locator("#conditions")).to_contain_text("worse: p=0.98")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, dashboard, dashboard.carol)
    response = page.goto(f"{dashboard.url}/evals/{run_id}")
    assert response is not None and response.status == 404


def test_guard_blocks_by_detector_and_policy_version(page: Page, dashboard: Dashboard) -> None:
    alice = _actor(dashboard, "alice")
    blocked = CallEvent(route="/v1/chat/completions", time=utcnow() - timedelta(minutes=2))
    blocked.project_id, blocked.project = alice.project.id, alice.project.name
    blocked.status, blocked.error_type = "blocked", "content_policy_violation"
    blocked.guard_actions = [
        {
            "policy": "default@3",
            "detector": "injection",
            "label": "INJECTION",
            "score": 0.97,
            "action": "block",
            "where": "messages[1]",
            "enforced": True,
        }
    ]
    with dashboard.registry.db.write() as conn:
        insert_events(conn, [blocked], postgres=False)
    sign_in(page, dashboard, dashboard.reader)
    page.get_by_role("link", name="Guards").click()
    row = page.locator("#guard-activity tbody tr", has_text="injection")
    expect(row).to_contain_text("default@3")
    expect(row).to_contain_text("enforced")
    expect(page.locator("#blocked tbody tr")).to_have_count(1)


def test_online_scores_per_version_and_the_drift_and_rag_pages(
    page: Page, dashboard: Dashboard
) -> None:
    alice = _actor(dashboard, "alice")
    CallScores(dashboard.registry.db).record(
        [
            {
                "request_id": f"req_scored_{i}",
                "metric": "relevance",
                "source": "online",
                "project_id": alice.project.id,
                "time": utcnow() - timedelta(minutes=i + 1),
                "prompt_name": "support",
                "prompt_version": 2,
                "arm": "canary",
                "value": 0.8,
                "reason": None,
            }
            for i in range(5)
        ]
    )
    sign_in(page, dashboard, dashboard.reader)
    page.get_by_role("link", name="Quality & drift").click()
    expect(page.locator("#scores")).to_contain_text("support@2")
    expect(page.locator("#scores")).to_contain_text("0.800")
    expect(page.locator("#drift")).to_contain_text("No embedded calls")
    page.get_by_role("link", name="RAG health").click()
    expect(page.locator("#rag")).to_contain_text("No RAG call scored")
    expect(page.locator("#freshness")).to_contain_text("No index yet")


def test_bad_parameters_get_a_clear_page_not_a_server_error(
    page: Page, dashboard: Dashboard
) -> None:
    sign_in(page, dashboard, dashboard.reader)
    for path, says in (
        ("/traces?page=abc", "page must be a whole number"),
        ("/traces?prompt=support@%C2%B2", "not a version number"),
        ("/traces?range=1y", "unknown range"),
        ("/traces?min_cost=cheap", "min_cost must be a number"),
        ("/prompts/support/diff?a=%C2%B2", "version must be a whole number"),
        ("/cost?by=planet", "cannot group cost"),
        ("/prompts/no-such-prompt", "no-such-prompt"),
    ):
        response = page.goto(f"{dashboard.url}{path}")
        assert response is not None and response.status in (400, 404), path
        expect(page.get_by_role("alert")).to_contain_text(says)


def test_sign_in_goes_nowhere_but_this_site_and_refuses_other_origins(
    page: Page, dashboard: Dashboard
) -> None:
    page.goto(f"{dashboard.url}/login?next=https://evil.example/ui/overview")
    page.get_by_label("API key").fill(dashboard.reader)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"127\.0\.0\.1:\d+/ui/overview$"))
    forged = page.request.post(
        f"{dashboard.url}/login",
        form={"api_key": dashboard.reader},
        headers={"Origin": "https://evil.example"},
        max_redirects=0,
    )
    assert forged.status == 403
    out = page.request.post(f"{dashboard.url}/logout", form={}, max_redirects=0)
    assert out.status == 303  # no token: not signed out
    page.goto(f"{dashboard.url}/overview")
    expect(page).to_have_url(re.compile(r"/ui/overview$"))
