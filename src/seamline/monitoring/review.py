"""The weekly review (``seamline review``): one document a team reads in its governance
meeting. For one project over a window: what changed (releases, rollbacks, approvals,
gate overrides, policies), cost by calling key and route with the anomalies that fired,
quality per prompt version (online scores and users' feedback), drift per prompt, failure
patterns, guard activity, every alert, and approvals given but not yet released.
Markdown, or the same as a standalone HTML page.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from seamline.core.clock import as_utc, isoformat
from seamline.monitoring.alerts import AlertStore
from seamline.monitoring.drift_report import drift_report
from seamline.monitoring.feedback import FeedbackStore
from seamline.monitoring.patterns import Embed, failures, patterns
from seamline.monitoring.quality import CallScores
from seamline.store.database import Database
from seamline.store.schema import (
    aliases,
    approvals,
    artefact_versions,
    artefacts,
    audit_log,
    events,
)
from seamline.telemetry.traces import cost_by

CHANGES = {
    "alias.move": "release",
    "alias.rollback": "rollback",
    "version.approve": "approval",
    "gate.override": "gate override",
    "policy.set": "policy",
    "key.create": "key created",
    "key.revoke": "key revoked",
    "project.content_logging": "content logging",
}


@dataclass
class Section:
    title: str
    note: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Review:
    project: str
    start: datetime
    end: datetime
    sections: list[Section]

    def markdown(self) -> str:
        lines = [
            f"# seamline review: {self.project}",
            "",
            f"{isoformat(as_utc(self.start))} to {isoformat(as_utc(self.end))}",
        ]
        for section in self.sections:
            lines += ["", f"## {section.title}", ""]
            if section.note:
                lines += [section.note, ""]
            if section.rows:
                lines.append("| " + " | ".join(section.columns) + " |")
                lines.append("|" + "---|" * len(section.columns))
                lines += [
                    "| "
                    + " | ".join(_cell(row.get(c)).replace("|", "\\|") for c in section.columns)
                    + " |"
                    for row in section.rows
                ]
            elif not section.note:
                lines.append("(none)")
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>seamline review: {html.escape(self.project)}</title>",
            "<style>body{font-family:sans-serif;max-width:70rem;margin:2rem auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
            "text-align:left;vertical-align:top}</style></head><body>",
            f"<h1>seamline review: {html.escape(self.project)}</h1>",
            f"<p>{isoformat(as_utc(self.start))} to {isoformat(as_utc(self.end))}</p>",
        ]
        for section in self.sections:
            parts.append(f"<h2>{html.escape(section.title)}</h2>")
            if section.note:
                parts.append(f"<p>{html.escape(section.note)}</p>")
            if section.rows:
                parts.append(
                    "<table><tr>"
                    + "".join(f"<th>{html.escape(c)}</th>" for c in section.columns)
                    + "</tr>"
                )
                for row in section.rows:
                    parts.append(
                        "<tr>"
                        + "".join(
                            f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in section.columns
                        )
                        + "</tr>"
                    )
                parts.append("</table>")
            elif not section.note:
                parts.append("<p>(none)</p>")
        return "".join(parts) + "</body></html>\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return " ".join(str(value).split())[:200]


def review(
    db: Database,
    project_id: int,
    project: str,
    start: datetime,
    end: datetime,
    embed: Embed | None,
) -> Review:
    """The review of ``project`` over ``[start, end)``; ``embed`` None leaves out drift and
    the clustering of failures (the embedded MiniLM is not installed)."""
    with db.read() as conn:
        sections = [
            _changes(conn, project_id, start, end),
            *_costs(conn, project_id, start, end),
        ]
        alerts = AlertStore(db).recent(project_id, start)
        sections.append(
            _table(
                "Cost anomalies",
                [a for a in alerts if a["kind"] == "cost_anomaly"],
                ["fired_at", "subject", "message"],
            )
        )
        sections.append(_quality(db, project_id, start))
        sections.append(_feedback(db, project_id, start))
        if embed is not None:
            sections.append(_drift(db, project_id, start, end))
            found = failures(conn, project_id, start, end)
            made = [p.as_record() for p in patterns(found, embed, start, end)]
            for pattern in made:
                pattern["kinds"] = ", ".join(f"{k} {n}" for k, n in pattern["kinds"].items())
                pattern["trend"] = f"{pattern['first_half']} -> {pattern['second_half']}"
                pattern["examples"] = "; ".join(
                    e["input"] or e["request_id"] for e in pattern["examples"]
                )
            sections.append(
                _table("Failure patterns", made, ["name", "calls", "trend", "kinds", "examples"])
            )
        sections.append(_guards(conn, project_id, start, end))
        sections.append(_table("Alerts", alerts, ["fired_at", "rule", "kind", "message"]))
        sections.append(_pending(conn, project_id))
    return Review(project, start, end, sections)


def _table(title: str, rows: list[dict[str, Any]], columns: list[str], note: str = "") -> Section:
    return Section(title, note, columns, rows)


def _changes(conn: Connection, project_id: int, start: datetime, end: datetime) -> Section:
    rows = conn.execute(
        select(
            audit_log.c.at,
            audit_log.c.actor,
            audit_log.c.action,
            audit_log.c.target,
            audit_log.c.details,
        )
        .where(
            audit_log.c.project_id == project_id,
            audit_log.c.at >= start,
            audit_log.c.at < end,
            audit_log.c.action.in_(list(CHANGES)),
        )
        .order_by(audit_log.c.at)
    ).mappings()
    found = [
        {
            "at": isoformat(as_utc(row["at"])),
            "what": CHANGES[row["action"]],
            "target": row["target"],
            "by": row["actor"],
            "reason": (row["details"] or {}).get("reason"),
        }
        for row in rows
    ]
    counts = Counter(row["what"] for row in found)
    note = ", ".join(f"{n} {what}" for what, n in counts.most_common()) or "nothing changed"
    return _table("What changed", found, ["at", "what", "target", "by", "reason"], note)


def _costs(conn: Connection, project_id: int, start: datetime, end: datetime) -> list[Section]:
    columns = ["group", "requests", "errors", "cost_usd", "avg_latency_ms"]
    return [
        _table(f"Cost by {label}", cost_by(conn, by, start, project_id, now=end), columns)
        for by, label in (("key", "calling key"), ("route", "route"), ("prompt", "prompt"))
    ]


def _quality(db: Database, project_id: int, start: datetime) -> Section:
    record = CallScores(db).report(project_id, start).as_record()
    rows = [
        {
            "prompt": v["prompt"],
            "metric": v["metric"],
            "n": v["n"],
            "mean": v["estimate"],
            "low": v["low"],
            "high": v["high"],
        }
        for v in record["versions"]
    ]
    rows += [
        {
            "prompt": f"{c['prompt']} canary - control",
            "metric": c["metric"],
            "n": c["canary"] + c["control"],
            "mean": c["difference"]["estimate"],
            "low": c["difference"]["low"],
            "high": c["difference"]["high"],
        }
        for c in record["canary_vs_control"]
    ]
    return _table("Online quality", rows, ["prompt", "metric", "n", "mean", "low", "high"])


def _feedback(db: Database, project_id: int, start: datetime) -> Section:
    rows = []
    for group in FeedbackStore(db).summary(project_id, start):
        record = group.as_record()
        for metric, figures in record["metrics"].items():
            rows.append({"prompt": record["prompt"], "metric": metric, **figures})
    return _table("Users' feedback", rows, ["prompt", "metric", "n", "estimate", "low", "high"])


def _drift(db: Database, project_id: int, start: datetime, end: datetime) -> Section:
    found = drift_report(db, project_id, (start - (end - start), start), (start, end))
    rows = []
    for group in found.as_record()["groups"]:
        top = (group.get("topics") or [{}])[0]
        terms = ", ".join(top.get("terms") or [])
        rows.append(
            {
                "prompt": group["prompt"],
                "use_case": group["use_case"],
                "calls": f"{group['reference_calls']} -> {group['current_calls']}",
                "drifted": group["drifted"],
                "p": group.get("adjusted_p", group.get("note")),
                "moved": group.get("topic_shift"),
                "top change": f"{terms} {top.get('change', '')}".strip(),
            }
        )
    return _table(
        "Drift against the window before",
        rows,
        ["prompt", "use_case", "calls", "drifted", "p", "moved", "top change"],
    )


def _guards(conn: Connection, project_id: int, start: datetime, end: datetime) -> Section:
    actions: Counter[tuple[str, str, str]] = Counter()
    query = select(events.c.guard_actions).where(
        events.c.project_id == project_id,
        events.c.time >= start,
        events.c.time < end,
        events.c.guard_actions.is_not(None),
    )
    for (taken,) in conn.execute(query.limit(100_000)):
        for action in taken or ():
            actions[
                (action.get("policy", "-"), action.get("detector", "-"), action.get("action", "-"))
            ] += 1
    rows = [
        {"policy": policy, "detector": detector, "action": action, "calls": n}
        for (policy, detector, action), n in actions.most_common(20)
    ]
    return _table("Guard activity", rows, ["policy", "detector", "action", "calls"])


def _pending(conn: Connection, project_id: int) -> Section:
    """Approvals of versions their alias does not point at yet."""
    query = (
        select(
            artefacts.c.kind,
            artefacts.c.name,
            artefact_versions.c.number,
            approvals.c.alias,
            approvals.c.approver,
            approvals.c.created_at,
            aliases.c.version_id,
            approvals.c.version_id.label("approved"),
        )
        .select_from(
            approvals.join(artefact_versions, artefact_versions.c.id == approvals.c.version_id)
            .join(artefacts, artefacts.c.id == artefact_versions.c.artefact_id)
            .outerjoin(
                aliases,
                and_(aliases.c.artefact_id == artefacts.c.id, aliases.c.name == approvals.c.alias),
            )
        )
        .where(artefacts.c.project_id == project_id)
    )
    rows = [
        {
            "artefact": f"{row.kind} {row.name}",
            "version": row.number,
            "alias": row.alias,
            "approved by": row.approver,
            "at": isoformat(as_utc(row.created_at)),
        }
        for row in conn.execute(query)
        if row.version_id != row.approved
    ]
    return _table(
        "Approved, not yet released", rows, ["artefact", "version", "alias", "approved by", "at"]
    )
