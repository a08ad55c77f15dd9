"""Alerts: rules from ``seamline.toml`` (``[[alerts]]``) checked against the events of
each project, and what fired, kept with its evidence and sample calls.

Rules live in the configuration, not in the registry: they belong to whoever runs the
gateway (an SRE's thresholds and webhooks), they change with the deployment rather than with
a release, and Prometheus users keep theirs in Alertmanager anyway (the metrics are there).

Every kind judges one project (a tenant) at a time:

* ``error_rate``: the share of calls that failed, above ``above``;
* ``latency``: the ``percentile`` of call latency in milliseconds, above ``above``;
* ``guard_blocks``: the share of calls a guard blocked, above ``above``;
* ``cost_anomaly``: cost per call against the project's own ``baseline`` window just
  before, above ``above`` times (1.5 by default: 150%); an anomaly opens a review (it is
  listed apart by ``seamline alerts list --kind cost_anomaly``);
* ``model_change``: a deployment answered as another upstream model or build (``model``
  or ``system_fingerprint`` of its answers) than it did before the window: a provider's
  silent update, a trigger to re-run the prompt's evals;
* ``stale_index``: an index version the window's calls retrieved from holds sources that
  changed or went away since it was built (the knowledge is stale: re-ingest);
* ``feedback_pattern``: users' negative feedback in the window clusters on one failure
  pattern (``monitoring.patterns``): at least ``min_calls`` calls and half of all the
  negative feedback on one pattern, named, with examples;
* ``drift``: a prompt's inputs in the window differ from the ``baseline`` window before
  it (``monitoring.drift``: the Holm-adjusted permutation p-value under 0.05), with the
  topics that grew;
* ``quality_drop`` and ``feedback_drop``: per prompt, an online score (``metric``, default
  ``answer_relevance``) or a feedback metric (default ``thumbs``: the share of thumbs up)
  lower in the window than over the ``baseline`` before it, with the significance the eval
  harness uses (a permutation test, one-sided, p under 0.05), not a bare threshold;
  ``above`` sets the smallest drop worth an alert.

A window with fewer than ``min_calls`` calls is not judged. An alert is not repeated for
the same subject within ``cooldown``.
"""

from __future__ import annotations

import logging
import secrets
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from seamline.core.clock import as_utc, isoformat
from seamline.core.settings import AlertRule
from seamline.evals.calls import EVAL_USE_CASES
from seamline.evals.stats import compare_groups
from seamline.monitoring.drift_report import drift_report
from seamline.monitoring.patterns import failures, patterns
from seamline.monitoring.replay import REPLAY_USE_CASE
from seamline.rag.freshness import CHANGED, MISSING, source_states
from seamline.store.database import Database
from seamline.store.schema import (
    alerts,
    artefact_versions,
    artefacts,
    call_scores,
    events,
    feedback,
    projects,
)
from seamline.telemetry.event import STATUS_BLOCKED, STATUS_ERROR
from seamline.telemetry.traces import duration

log = logging.getLogger("seamline.monitoring")
SAMPLE_CALLS = 5
NOT_TRAFFIC = (*EVAL_USE_CASES, REPLAY_USE_CASE)  # calls seamline made itself, to test
DROP_ALPHA = 0.05  # as the eval harness's gate
SCORED_KINDS = ("quality_drop", "feedback_drop", "drift")  # judged whatever calls came
DEFAULT_COST_RATIO = 1.5


@dataclass
class Firing:
    rule: str
    kind: str
    project_id: int | None
    subject: str
    message: str
    value: float | None = None
    threshold: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    request_ids: list[str] = field(default_factory=list)
    id: str = field(default_factory=lambda: f"alert_{secrets.token_hex(8)}")
    webhook: str | None = None
    slot: str = ""  # which cooldown period it belongs to: one alert per subject and slot

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "value": self.value,
            "threshold": self.threshold,
            "evidence": self.evidence,
            "request_ids": self.request_ids,
        }


@dataclass(frozen=True)
class _Call:
    request_id: str
    project_id: int
    status: str
    latency_ms: float
    cost_usd: float
    error_type: str | None
    replica: str | None
    model_used: str | None
    upstream_model: str | None
    system_fingerprint: str | None


def evaluate(db: Database, rules: Sequence[AlertRule], now: datetime) -> list[Firing]:
    """What fires now: each rule against each project's calls in its window, less what
    fired for the same subject within the rule's cooldown."""
    fired: list[Firing] = []
    with db.read() as conn:
        names = {row.id: row.name for row in conn.execute(select(projects.c.id, projects.c.name))}
        for rule in rules:
            start = now - duration(rule.window)
            by_project = _calls(conn, start, now, _project_id(names, rule.project))
            if rule.kind in SCORED_KINDS:  # judged on scores, whatever calls the window has
                wanted = _project_id(names, rule.project)
                by_project = {pid: [] for pid in names if wanted in (None, pid)}
            for project_id, calls in sorted(by_project.items()):
                try:  # one rule failing on one project must not silence the others
                    found = list(
                        _judge(db, conn, rule, names[project_id], project_id, calls, start)
                    )
                except Exception:
                    log.exception("alert rule %s failed on project %s", rule.name, project_id)
                    continue
                cooldown = duration(rule.cooldown)
                for firing in found:
                    if not _cooling(conn, firing, now - cooldown):
                        firing.webhook = rule.webhook
                        firing.slot = str(int(now.timestamp() // cooldown.total_seconds()))
                        fired.append(firing)
    return fired


def _project_id(names: dict[int, str], name: str | None) -> int | None:
    if name is None:
        return None
    return next((pid for pid, known in names.items() if known == name), -1)


def _calls(
    conn: Connection, start: datetime, end: datetime, project_id: int | None
) -> dict[int, list[_Call]]:
    query = select(
        events.c.request_id,
        events.c.project_id,
        events.c.status,
        events.c.latency_ms,
        events.c.cost_usd,
        events.c.error_type,
        events.c.replica,
        events.c.model_used,
        events.c.upstream_model,
        events.c.system_fingerprint,
    ).where(
        events.c.time >= start,
        events.c.time < end,
        events.c.project_id.is_not(None),
        events.c.parent_request_id.is_(None),  # the gateway's own side calls are not traffic
        events.c.use_case.is_(None) | events.c.use_case.notin_(NOT_TRAFFIC),
    )
    if project_id is not None:
        query = query.where(events.c.project_id == project_id)
    found: dict[int, list[_Call]] = defaultdict(list)
    for row in conn.execute(query):
        found[row.project_id].append(_Call(**row._mapping))
    return found


def _judge(
    db: Database,
    conn: Connection,
    rule: AlertRule,
    project: str,
    project_id: int,
    calls: list[_Call],
    start: datetime,
) -> Iterable[Firing]:
    if rule.kind == "model_change":
        yield from _model_changes(conn, rule, project, project_id, calls, start)
        return
    if rule.kind == "stale_index":
        yield from _stale_indexes(conn, rule, project, project_id, start)
        return
    if rule.kind == "feedback_pattern":
        yield from _feedback_pattern(conn, rule, project, project_id, start)
        return
    if rule.kind == "drift":
        yield from _drifts(db, rule, project, project_id, start)
        return
    if rule.kind in SCORED_KINDS:
        yield from _drops(conn, rule, project, project_id, start)
        return
    if len(calls) < rule.min_calls:
        return
    firing = Firing(rule.name, rule.kind, project_id, project, "")
    if rule.kind in ("error_rate", "guard_blocks"):
        status = STATUS_ERROR if rule.kind == "error_rate" else STATUS_BLOCKED
        hits = [c for c in calls if c.status == status]
        share, limit = len(hits) / len(calls), rule.above if rule.above is not None else 0.05
        if share <= limit:
            return
        what = "failed" if rule.kind == "error_rate" else "were blocked by a guard"
        firing.message = (
            f"{project}: {share:.1%} of {len(calls)} calls in the last {rule.window} {what} "
            f"(threshold {limit:.1%})"
        )
        firing.value, firing.threshold = share, limit
        firing.evidence = {
            "calls": len(calls),
            "matching": len(hits),
            "error_types": dict(Counter(c.error_type or "-" for c in hits).most_common(5)),
        }
        firing.request_ids = [c.request_id for c in hits[-SAMPLE_CALLS:]]
    elif rule.kind == "latency":
        latencies = np.array([c.latency_ms for c in calls])
        value = float(np.percentile(latencies, rule.percentile))
        if rule.above is None or value <= rule.above:
            return
        firing.message = (
            f"{project}: p{rule.percentile:g} latency {value:.0f} ms over the last "
            f"{rule.window} (threshold {rule.above:.0f} ms, {len(calls)} calls)"
        )
        firing.value, firing.threshold = value, rule.above
        firing.evidence = {"calls": len(calls), "p50_ms": float(np.percentile(latencies, 50))}
        slowest = sorted(calls, key=lambda c: -c.latency_ms)[:SAMPLE_CALLS]
        firing.request_ids = [c.request_id for c in slowest]
    else:  # cost_anomaly
        yield from _cost_anomaly(conn, rule, firing, calls, start)
        return
    yield firing


def _cost_anomaly(
    conn: Connection, rule: AlertRule, firing: Firing, calls: list[_Call], start: datetime
) -> Iterable[Firing]:
    assert firing.project_id is not None
    before = _calls(conn, start - duration(rule.baseline), start, firing.project_id).get(
        firing.project_id, []
    )
    if len(before) < rule.min_calls:
        return
    now_cost = statistics.fmean(c.cost_usd for c in calls)
    then_cost = statistics.fmean(c.cost_usd for c in before)
    ratio_limit = rule.above if rule.above is not None else DEFAULT_COST_RATIO
    if then_cost <= 0 or now_cost <= then_cost * ratio_limit:
        return
    ratio = now_cost / then_cost
    firing.message = (
        f"{firing.subject}: cost per call ${now_cost:.6f} over the last {rule.window}, "
        f"{ratio:.0%} of its own baseline (${then_cost:.6f} over the {rule.baseline} before; "
        f"threshold {ratio_limit:.0%}): a review is open"
    )
    firing.value, firing.threshold = ratio, ratio_limit
    firing.evidence = {
        "calls": len(calls),
        "cost_per_call_usd": now_cost,
        "baseline_calls": len(before),
        "baseline_cost_per_call_usd": then_cost,
        "by_model": _cost_by(calls, lambda c: c.model_used),
    }
    firing.request_ids = [
        c.request_id for c in sorted(calls, key=lambda c: -c.cost_usd)[:SAMPLE_CALLS]
    ]
    yield firing


def _drops(
    conn: Connection, rule: AlertRule, project: str, project_id: int, start: datetime
) -> Iterable[Firing]:
    """Per prompt: the metric now against the baseline window, lower and significantly so."""
    before = start - duration(rule.baseline)
    if rule.kind == "quality_drop":
        metric = rule.metric or "answer_relevance"
        query = select(
            call_scores.c.prompt_name,
            call_scores.c.value,
            call_scores.c.request_id,
            call_scores.c.time,
        ).where(
            call_scores.c.project_id == project_id,
            call_scores.c.metric == metric,
            call_scores.c.time >= before,
        )
    else:
        metric = rule.metric or "thumbs"
        query = (
            select(
                events.c.prompt_name, feedback.c.value, feedback.c.request_id, feedback.c.updated_at
            )
            .join(
                events,
                and_(
                    events.c.project_id == feedback.c.project_id,
                    events.c.request_id == feedback.c.request_id,
                ),
            )
            .where(
                feedback.c.project_id == project_id,
                feedback.c.metric == metric,
                feedback.c.updated_at >= before,
            )
        )
    windows: dict[str | None, tuple[list[tuple[float, str]], list[float]]] = defaultdict(
        lambda: ([], [])
    )
    for prompt, value, request_id, when in conn.execute(query):
        now_values, then_values = windows[prompt]
        if as_utc(when) >= as_utc(start):
            now_values.append((float(value), request_id))
        else:
            then_values.append(float(value))
    for prompt, (now_values, then_values) in sorted(windows.items(), key=lambda w: w[0] or ""):
        if min(len(now_values), len(then_values)) < rule.min_calls:
            continue
        compared = compare_groups([v for v, _ in now_values], then_values)
        drop = -compared.difference.estimate
        if compared.p_worse >= DROP_ALPHA or drop <= (rule.above or 0.0):
            continue
        name = prompt or "-"
        yield Firing(
            rule.name,
            rule.kind,
            project_id,
            f"{project} / {name}",
            f"{project}: {metric} of prompt {name} fell by {drop:.3f} over the last "
            f"{rule.window} against the {rule.baseline} before (p {compared.p_worse:.4f}, "
            f"{len(now_values)} against {len(then_values)})",
            value=drop,
            threshold=rule.above or 0.0,
            evidence={
                "metric": metric,
                "difference": compared.difference.as_record(),
                "p_worse": compared.p_worse,
                "now": len(now_values),
                "baseline": len(then_values),
                "prompts": [prompt] if prompt else [],
            },
            request_ids=[r for _, r in sorted(now_values)[:SAMPLE_CALLS]],
        )


def _cost_by(calls: list[_Call], key: Any) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for call in calls:
        totals[str(key(call) or "-")] += call.cost_usd
    return {name: round(total, 6) for name, total in sorted(totals.items())}


def _model_changes(
    conn: Connection,
    rule: AlertRule,
    project: str,
    project_id: int,
    calls: list[_Call],
    start: datetime,
) -> Iterable[Firing]:
    """Per deployment: the upstream identities answering now that it never gave before the
    window, when it gave one."""
    now_seen: dict[str, dict[tuple[str | None, str | None], _Call]] = defaultdict(dict)
    for call in calls:
        identity = (call.upstream_model, call.system_fingerprint)
        if call.replica and identity != (None, None):
            now_seen[call.replica].setdefault(identity, call)
    for replica, identities in sorted(now_seen.items()):
        before = _identities_before(conn, project_id, replica, start)
        if not before:
            continue  # a new deployment: nothing to compare with
        for (model, fingerprint), first in identities.items():
            if (model, fingerprint) in before:
                continue
            old_model, old_fingerprint = before[-1]
            users = _prompts_using(conn, project_id, start, events.c.replica == replica)
            yield Firing(
                rule.name,
                rule.kind,
                project_id,
                f"{replica} ({first.model_used})",
                f"{project}: deployment {replica} of {first.model_used} now answers as "
                f"{model} ({fingerprint or 'no fingerprint'}), before as {old_model} "
                f"({old_fingerprint or 'no fingerprint'}): re-run its prompts' evals",
                evidence={
                    "deployment": replica,
                    "model": first.model_used,
                    "before": {"upstream_model": old_model, "system_fingerprint": old_fingerprint},
                    "now": {"upstream_model": model, "system_fingerprint": fingerprint},
                    "prompts": users,
                },
                request_ids=[first.request_id],
            )


def _stale_indexes(
    conn: Connection, rule: AlertRule, project: str, project_id: int, start: datetime
) -> Iterable[Firing]:
    """The registry index versions the window's calls retrieved from, with stale sources."""
    used = conn.execute(
        select(events.c.index_version)
        .where(
            events.c.project_id == project_id,
            events.c.time >= start,
            events.c.index_version.is_not(None),
        )
        .distinct()
    ).scalars()
    for reference in sorted(used):
        name, _, number = reference.partition("@")
        content = conn.execute(
            select(artefact_versions.c.content)
            .join(artefacts, artefacts.c.id == artefact_versions.c.artefact_id)
            .where(
                artefacts.c.project_id == project_id,
                artefacts.c.kind == "index",
                artefacts.c.name == name,
                artefact_versions.c.number == (int(number) if number.isdigit() else -1),
            )
        ).scalar()
        if content is None:  # an index the application reported: not ours to check
            continue
        stale = [s for s in source_states(content) if s.state in (CHANGED, MISSING)]
        if not stale:
            continue
        users = _prompts_using(conn, project_id, start, events.c.index_version == reference)
        yield Firing(
            rule.name,
            rule.kind,
            project_id,
            reference,
            f"{project}: index {reference}, which calls retrieved from in the last "
            f"{rule.window}, holds {len(stale)} of {len(source_states(content))} sources that "
            "changed or went away since it was built: re-ingest it",
            value=float(len(stale)),
            evidence={
                "stale": [{"uri": s.uri, "state": s.state} for s in stale[:20]],
                "prompts": users,
            },
        )


def _drifts(
    db: Database, rule: AlertRule, project: str, project_id: int, start: datetime
) -> Iterable[Firing]:
    end = start + duration(rule.window)
    reference = (start - duration(rule.baseline), start)
    found = drift_report(db, project_id, reference, (start, end))
    for group in found.groups:
        if not group.drifted:
            continue
        record = group.as_record()
        grown = [t for t in record["topics"] if t["change"] > 0][:3]
        where = f"{group.prompt or '-'} / {group.use_case or '-'}"
        yield Firing(
            rule.name,
            rule.kind,
            project_id,
            f"{project} / {where}",
            f"{project}: the inputs of {where} drifted in the last {rule.window} against the "
            f"{rule.baseline} before (p {record['adjusted_p']:.4f}; "
            f"{record['topic_shift']:.0%} of calls moved between topics; grew: "
            + ("; ".join(", ".join(t["terms"]) or "-" for t in grown) or "-")
            + ")",
            value=record["mmd2"],
            evidence={"drift": record, "prompts": [group.prompt] if group.prompt else []},
        )


def _feedback_pattern(
    conn: Connection,
    rule: AlertRule,
    project: str,
    project_id: int,
    start: datetime,
) -> Iterable[Firing]:
    """The failure pattern most of the window's negative feedback falls on, if one does."""
    from seamline.providers import local_vectors  # loads the model only for this kind

    end = start + duration(rule.window)
    said = [
        f
        for f in failures(conn, project_id, start, end)
        if any(k.startswith("feedback:") for k in f.kinds)
    ]
    if len(said) < rule.min_calls:
        return
    try:
        found = patterns(said, local_vectors.embed, start, end)
    except local_vectors.LocalModelMissing:
        return
    top = found[0]
    if top.calls < rule.min_calls or top.calls * 2 < len(said):
        return
    ids = [e["request_id"] for e in top.examples]
    users = _prompts_using(
        conn, project_id, start, events.c.request_id.in_([f.request_id for f in said])
    )
    yield Firing(
        rule.name,
        rule.kind,
        project_id,
        f"{project} / {top.name}",
        f"{project}: {top.calls} of the {len(said)} calls users scored down in the last "
        f"{rule.window} ask about one thing ({top.name})",
        value=float(top.calls),
        threshold=float(rule.min_calls),
        evidence={"pattern": top.as_record(), "negative": len(said), "prompts": users},
        request_ids=ids,
    )


def _prompts_using(conn: Connection, project_id: int, start: datetime, condition: Any) -> list[str]:
    return sorted(
        conn.execute(
            select(events.c.prompt_name)
            .where(
                events.c.project_id == project_id,
                events.c.time >= start,
                events.c.prompt_name.is_not(None),
                condition,
            )
            .distinct()
        ).scalars()
    )


def _identities_before(
    conn: Connection, project_id: int, replica: str, start: datetime
) -> list[tuple[str | None, str | None]]:
    """The upstream identities a deployment answered with before ``start``, oldest first
    (from its last 1,000 answers)."""
    rows = conn.execute(
        select(events.c.upstream_model, events.c.system_fingerprint)
        .where(
            events.c.project_id == project_id,
            events.c.replica == replica,
            events.c.time < start,
            events.c.upstream_model.is_not(None) | events.c.system_fingerprint.is_not(None),
        )
        .order_by(events.c.time.desc())
        .limit(1000)
    ).all()
    return list(dict.fromkeys((row[0], row[1]) for row in reversed(rows)))


def _cooling(conn: Connection, firing: Firing, since: datetime) -> bool:
    found = conn.execute(
        select(alerts.c.id)
        .where(
            and_(
                alerts.c.rule == firing.rule,
                alerts.c.subject == firing.subject[:300],
                alerts.c.project_id.is_(None)
                if firing.project_id is None
                else alerts.c.project_id == firing.project_id,
                alerts.c.fired_at >= since,
            )
        )
        .limit(1)
    ).first()
    return found is not None


class AlertStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, firing: Firing, at: datetime, delivery: dict[str, Any]) -> bool:
        """Keep ``firing``; False when another worker kept the same alert (subject and
        slot) first: then it is theirs to post."""
        claim = f"{firing.rule}|{firing.project_id}|{firing.subject}|{firing.slot}"[:700]
        try:
            with self.db.write() as conn:
                conn.execute(
                    insert(alerts).values(
                        id=firing.id,
                        rule=firing.rule[:200],
                        kind=firing.kind,
                        project_id=firing.project_id,
                        subject=firing.subject[:300],
                        fired_at=at,
                        value=firing.value,
                        threshold=firing.threshold,
                        message=firing.message,
                        evidence=firing.evidence,
                        request_ids=firing.request_ids,
                        delivery=delivery,
                        claim=claim,
                    )
                )
        except IntegrityError:
            return False
        return True

    def project_name(self, project_id: int) -> str:
        with self.db.read() as conn:
            return str(
                conn.execute(
                    select(projects.c.name).where(projects.c.id == project_id)
                ).scalar_one()
            )

    def add_eval_run(self, alert_id: str, result: dict[str, Any]) -> None:
        """An eval run the alert started (or why it could not), kept in its evidence."""
        with self.db.write() as conn:
            evidence = conn.execute(
                select(alerts.c.evidence).where(alerts.c.id == alert_id)
            ).scalar_one()
            runs = [*evidence.get("eval_runs", []), result]
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id)
                .values(evidence={**evidence, "eval_runs": runs})
            )

    def delivered(self, alert_id: str, delivery: dict[str, Any]) -> None:
        with self.db.write() as conn:
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(delivery=delivery))

    def recent(
        self, project_id: int, since: datetime, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """The project's alerts since ``since``, newest first."""
        query = select(alerts).where(alerts.c.project_id == project_id, alerts.c.fired_at >= since)
        if kind is not None:
            query = query.where(alerts.c.kind == kind)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(alerts.c.fired_at.desc())).mappings().all()
        return [
            {
                "id": row["id"],
                "rule": row["rule"],
                "kind": row["kind"],
                "subject": row["subject"],
                "fired_at": isoformat(as_utc(row["fired_at"])),
                "message": row["message"],
                "value": row["value"],
                "threshold": row["threshold"],
                "evidence": row["evidence"],
                "request_ids": row["request_ids"],
                "delivery": row["delivery"],
            }
            for row in rows
        ]
