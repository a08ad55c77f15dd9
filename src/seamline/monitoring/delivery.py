"""Posting alerts to a webhook: a Slack-compatible body (``text`` and ``blocks``, which
Slack, Mattermost and most chat tools' incoming webhooks read; the whole alert under
``seamline`` for anything else), retried with backoff when the receiver is down or busy,
and the outcome kept with the alert. Runs beside the request path, never on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from seamline.core.settings import AlertRule, BudgetConfig
from seamline.monitoring.alerts import AlertStore, Firing, evaluate
from seamline.store.database import Database
from seamline.store.schema import projects

ATTEMPTS = 3
BACKOFF_S = 1.0  # then 2 s: a receiver restarting is back within seconds
TIMEOUT_S = 10.0


def slack_payload(firing: Firing) -> dict[str, Any]:
    calls = ", ".join(firing.request_ids) or "-"
    return {
        "text": f"seamline alert {firing.rule}: {firing.message}",
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{firing.rule}*: {firing.message}"},
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{firing.kind} · {firing.subject} · calls: {calls} "
                        f"(`seamline traces show ID`)",
                    }
                ],
            },
        ],
        "seamline": firing.as_record(),
    }


def deliver(
    firing: Firing,
    webhook: str,
    *,
    attempts: int = ATTEMPTS,
    backoff_s: float = BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Post ``firing``; what happened: delivered or not, attempts, the last error."""
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(webhook, json=slack_payload(firing), timeout=TIMEOUT_S)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            if response.status_code < 300:
                return {"delivered": True, "attempts": attempt}
            error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # the receiver refuses this body: another try would be refused too
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    return {"delivered": False, "attempts": attempt, "error": error}


Deliver = Callable[[Firing, str], dict[str, Any]]


def run_alerts(
    db: Database,
    rules: Sequence[AlertRule],
    default_webhook: str | None,
    now: datetime,
    *,
    post: Deliver = deliver,
) -> list[Firing]:
    """Check every rule now; each alert that fires is recorded (first: another worker
    checking meanwhile sees it and holds back), then posted, and its delivery recorded."""
    store = AlertStore(db)
    return [
        firing
        for firing in evaluate(db, rules, now)
        if keep_and_post(store, firing, now, firing.webhook or default_webhook, post)
    ]


def keep_and_post(
    store: AlertStore, firing: Firing, now: datetime, webhook: str | None, post: Deliver = deliver
) -> bool:
    """Keep and post ``firing``; False when another worker kept it first (and posts it)."""
    pending = {"delivered": False, "attempts": 0, "pending": webhook is not None}
    if not store.record(firing, now, pending):
        return False
    if webhook is not None:
        store.delivered(firing.id, post(firing, webhook))
    return True


def record_budget_alert(
    db: Database,
    budget: BudgetConfig,
    level: str,
    spent_usd: float,
    webhook: str | None,
    now: datetime,
) -> None:
    """A budget crossing its alert share (``warning``) or its cap (``exceeded``), kept and
    posted like any alert."""
    with db.read() as conn:
        project_id = (
            conn.execute(select(projects.c.id).where(projects.c.name == budget.name)).scalar()
            if budget.scope == "project"
            else None
        )
    period = now.strftime("%Y-%m-%d" if budget.period == "day" else "%Y-%m")
    firing = Firing(
        f"budget:{budget.name}",
        "budget",
        project_id,
        f"{budget.scope} {budget.name}",
        f"budget {level}: {budget.scope} {budget.name} spent ${spent_usd:.4f} of "
        f"${budget.limit_usd:.2f} this {budget.period}",
        value=spent_usd,
        threshold=budget.limit_usd * (budget.alert_at if level == "warning" else 1.0),
        evidence={"period": budget.period, "limit_usd": budget.limit_usd, "level": level},
        slot=f"{level}:{period}",  # once per level and period, whichever worker saw it
    )
    keep_and_post(AlertStore(db), firing, now, webhook)
