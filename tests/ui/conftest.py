"""The dashboard served for real (uvicorn on 127.0.0.1) over a SQLite registry holding two
projects, a prompt with two versions, and calls (one failed) with feedback; and a headless
Chromium (Debian's, driven by Playwright: ``../shared/FACTS.md``, "Browser testing")."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from seamline.core.clock import utcnow
from seamline.core.settings import BudgetConfig, GatewayConfig, Settings
from seamline.gateway.app import build_app
from seamline.registry import Registry, Scope
from seamline.registry.policy import AliasPolicy
from seamline.store.database import Database
from seamline.store.migrate import upgrade
from seamline.telemetry.event import CallEvent
from seamline.telemetry.event_insert import insert_events
from tests.conftest import KEY_SECRET, make_actor
from tests.factories import prompt_draft
from tests.live import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class Dashboard:
    url: str  # the dashboard's root: .../ui
    registry: Registry
    alice: str  # admin of acme, author of the prompt's versions
    bob: str  # writer in acme: the second pair of eyes
    reader: str  # read-only in acme
    carol: str  # admin of another project
    failed_call: str  # request id of acme's failed call


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    home = tmp_path_factory.mktemp("ui")
    db = Database(f"sqlite:///{home / 'seamline.db'}")
    upgrade(db)
    registry = Registry(db, key_secret=KEY_SECRET)
    alice = make_actor(registry, "alice")
    other = make_actor(registry, "carol", project="globex")
    keys = {
        "alice": registry.create_key(
            alice, owner="alice", scopes=frozenset({Scope.ADMIN}), name="a"
        )[0],
        "bob": registry.create_key(alice, owner="bob", scopes=frozenset({Scope.WRITE}), name="b")[
            0
        ],
        "reader": registry.create_key(
            alice, owner="rita", scopes=frozenset({Scope.READ}), name="r"
        )[0],
        "carol": registry.create_key(
            other, owner="carol", scopes=frozenset({Scope.ADMIN}), name="c"
        )[0],
    }
    registry.push(alice, [prompt_draft("support", "Answer: {{ who }}")], message="first")
    registry.push(alice, [prompt_draft("support", "Answer kindly: {{ who }}")], message="kinder")
    for alias in ("production", "canary"):  # approvals as by default, no eval gate here
        registry.set_policy(
            alice, AliasPolicy(alias, required_approvals=1, approver_must_differ=True)
        )
    failed = _record_calls(db, alice.project.id, alice.project.name, other.project.id)
    settings = Settings(
        home=home,
        models=[],
        gateway=GatewayConfig(
            embedded_models=False, drift={"sample_rate": 0.0}, quality={"sample_rate": 0.0}
        ),
        budgets=[BudgetConfig(name="acme", period="month", limit_usd=1.0)],
    )
    live = LiveServer(build_app(settings, registry)).start()
    yield Dashboard(
        f"{live.url}/ui",
        registry,
        keys["alice"],
        keys["bob"],
        keys["reader"],
        keys["carol"],
        failed,
    )
    live.stop()
    db.dispose()


def _record_calls(db: Database, project_id: int, project: str, other_project_id: int) -> str:
    """Calls of the last hours: support v1 (control) and v2 (canary), one failed call with
    a telling message, and a call of the other project that acme must never see."""
    now = utcnow()
    made = []
    for i in range(40):
        event = CallEvent(route="/v1/chat/completions", time=now - timedelta(minutes=3 * i + 1))
        event.project_id, event.project = project_id, project
        event.prompt_name, event.prompt_version = "support", 1 + i % 2
        event.arm = "canary" if i % 2 else "control"
        event.model_used = event.model_requested = "gpt-4o-mini"
        event.user_id, event.session_id = f"user-{i % 4}", f"session-{i % 4}"
        event.prompt_tokens, event.completion_tokens = 120, 30
        event.cost_usd, event.latency_ms = 0.0004, 300.0 + 20 * i
        event.request_content = [{"role": "user", "content": f"Where is parcel {i}?"}]
        event.response_content = {"role": "assistant", "content": f"Parcel {i} is on its way."}
        made.append(event)
    failed = made[7]
    failed.status, failed.error_type = "error", "upstream_timeout"
    failed.error_message = "the upstream did not answer within 30 s"
    secret = CallEvent(route="/v1/chat/completions", time=now - timedelta(minutes=5))
    secret.project_id, secret.project, secret.model_used = (
        other_project_id,
        "globex",
        "globex-model",
    )
    secret.request_content = [{"role": "user", "content": "globex secret plans"}]
    made.append(secret)
    with db.write() as conn:
        insert_events(conn, sorted(made, key=lambda e: e.time), postgres=False)
    return failed.request_id


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():  # as for PostgreSQL: skipped outside CI, required in it
        missing = f"no Chromium at {CHROMIUM}: 'apt-get install chromium' (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield context.new_page()
    context.close()


def sign_in(page: Page, dashboard: Dashboard, key: str) -> None:
    page.goto(f"{dashboard.url}/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/overview")
