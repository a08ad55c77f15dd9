"""Feedback on calls: a user's thumbs, a 1-5 rating, or a named metric with a value, with a
comment and tags, attached to a call (by its request id) or a whole session.

Feedback is idempotent per (call or session, user, metric): sending it again replaces what
that user said of that call on that metric (a changed mind is an update, not a second
vote). It is kept under the caller's project and only ever attached to that project's
calls: a request id of another project is as unknown as one that never existed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from seamline.core.clock import as_utc, isoformat, utcnow
from seamline.core.errors import InvalidInput, NotFound
from seamline.evals.stats import mean_interval
from seamline.store.database import Database
from seamline.store.schema import events, feedback

THUMBS, RATING = "thumbs", "rating"
MAX_COMMENT = 4000  # characters
MAX_TAGS, MAX_TAG = 20, 64
MAX_NAME = 100
_UP, _DOWN = ("up", "+1", "good", "yes"), ("down", "-1", "bad", "no")


@dataclass(frozen=True)
class Feedback:
    metric: str
    value: float
    request_id: str | None = None
    session_id: str | None = None
    comment: str | None = None
    tags: tuple[str, ...] = ()
    user: str | None = None

    @property
    def target(self) -> str:
        return f"request:{self.request_id}" if self.request_id else f"session:{self.session_id}"


def parse_feedback(body: Mapping[str, Any]) -> Feedback:
    """A feedback body, checked: ``request_id`` or ``session_id``; ``score`` (``"up"`` or
    ``"down"``, or a rating 1-5) or ``metric`` with a numeric ``value``; optional
    ``comment``, ``tags`` and ``user``."""
    request_id, session_id = _text(body, "request_id", 40), _text(body, "session_id", 200)
    if (request_id is None) == (session_id is None):
        raise InvalidInput(
            "give a 'request_id' or a 'session_id' (one of them)", param="request_id"
        )
    metric, value = _score(body)
    comment = _text(body, "comment", MAX_COMMENT)
    raw_tags = body.get("tags") or []
    if not isinstance(raw_tags, list) or len(raw_tags) > MAX_TAGS:
        raise InvalidInput(f"'tags' must be an array of at most {MAX_TAGS} tags", param="tags")
    for tag in raw_tags:
        if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG:
            raise InvalidInput(f"each tag must be a string of 1-{MAX_TAG} characters", param="tags")
    return Feedback(
        metric,
        value,
        request_id,
        session_id,
        comment,
        tuple(dict.fromkeys(raw_tags)),
        _text(body, "user", 200),
    )


def _score(body: Mapping[str, Any]) -> tuple[str, float]:
    score, metric, value = body.get("score"), body.get("metric"), body.get("value")
    if score is not None and (metric is not None or value is not None):
        raise InvalidInput("give a 'score', or a 'metric' with a 'value', not both", param="score")
    if isinstance(score, str):
        if score.lower() in _UP:
            return THUMBS, 1.0
        if score.lower() in _DOWN:
            return THUMBS, 0.0
        raise InvalidInput("a 'score' text must be 'up' or 'down'", param="score")
    if isinstance(score, bool):
        return THUMBS, float(score)
    if isinstance(score, int | float):
        if score not in (1, 2, 3, 4, 5):
            raise InvalidInput("a numeric 'score' is a rating: 1, 2, 3, 4 or 5", param="score")
        return RATING, float(score)
    if score is not None:
        raise InvalidInput("'score' must be 'up', 'down' or a rating 1-5", param="score")
    if not isinstance(metric, str) or not 0 < len(metric) <= MAX_NAME:
        raise InvalidInput(
            "give a 'score' ('up', 'down', 1-5), or a 'metric' name with a 'value'", param="metric"
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"'value' of metric {metric!r} must be a finite number", param="value")
    if metric == RATING and value not in (1, 2, 3, 4, 5):
        raise InvalidInput("a rating is 1, 2, 3, 4 or 5", param="value")
    if metric == THUMBS and value not in (0, 1):
        raise InvalidInput("thumbs are 1 (up) or 0 (down)", param="value")
    return metric, float(value)


def _text(body: Mapping[str, Any], name: str, longest: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        raise InvalidInput(f"'{name}' must be a string of 1-{longest} characters", param=name)
    return value


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def known(self, project_id: int, given: Feedback) -> bool:
        """Whether the call (or session) is one of the project's."""
        column, value = (
            (events.c.request_id, given.request_id)
            if given.request_id
            else (events.c.session_id, given.session_id)
        )
        with self.db.read() as conn:
            found = conn.execute(
                select(events.c.id)
                .where(events.c.project_id == project_id, column == value)
                .limit(1)
            ).first()
        return found is not None

    def record(
        self, project_id: int, given: Feedback, *, source: str
    ) -> tuple[dict[str, Any], bool]:
        """Keep ``given`` (NotFound unless its call or session is the project's); the stored
        record and whether it is new (False: it replaced the same user's on that metric)."""
        if not self.known(project_id, given):
            what = (
                f"call {given.request_id!r}"
                if given.request_id
                else f"session {given.session_id!r}"
            )
            raise NotFound(f"no {what} in this project", code="feedback_target_not_found")
        now = utcnow()
        values = {
            "value": given.value,
            "comment": given.comment,
            "tags": list(given.tags),
            "source": source,
            "updated_at": now,
        }
        key = and_(
            feedback.c.project_id == project_id,
            feedback.c.target == given.target,
            feedback.c.user_key == (given.user or ""),
            feedback.c.metric == given.metric,
        )
        for _ in range(2):  # a concurrent first write of the same key: then it is an update
            try:
                with self.db.write() as conn:
                    if conn.execute(update(feedback).where(key).values(**values)).rowcount:
                        return self._one(conn, key), False
                    conn.execute(
                        insert(feedback).values(
                            project_id=project_id,
                            target=given.target,
                            request_id=given.request_id,
                            session_id=given.session_id,
                            user_key=given.user or "",
                            metric=given.metric,
                            created_at=now,
                            **values,
                        )
                    )
                    return self._one(conn, key), True
            except IntegrityError:
                continue
        raise InvalidInput("the feedback could not be stored; send it again")  # pragma: no cover

    def _one(self, conn: Connection, key: Any) -> dict[str, Any]:
        return _record(conn.execute(select(feedback).where(key)).mappings().one())

    def of_call(
        self, conn: Connection, project_id: int, request_id: str, session_id: str | None
    ) -> list[dict[str, Any]]:
        """What users said of a call, and of its session."""
        targets = [f"request:{request_id}"] + ([f"session:{session_id}"] if session_id else [])
        rows = conn.execute(
            select(feedback)
            .where(feedback.c.project_id == project_id, feedback.c.target.in_(targets))
            .order_by(feedback.c.created_at)
        ).mappings()
        return [_record(row) for row in rows]

    def summary(
        self, project_id: int, since: datetime, prompt: str | None = None
    ) -> list[VersionFeedback]:
        """Feedback on calls since ``since``, per prompt version (calls without a prompt
        under ``-``): each metric's mean with its interval, and the comments."""
        query = (
            select(
                events.c.prompt_name,
                events.c.prompt_version,
                feedback.c.metric,
                feedback.c.value,
                feedback.c.comment,
                feedback.c.request_id,
            )
            .join(
                events,
                and_(
                    events.c.project_id == feedback.c.project_id,
                    events.c.request_id == feedback.c.request_id,
                ),
            )
            .where(feedback.c.project_id == project_id, events.c.time >= since)
        )
        if prompt is not None:
            name, _, version = prompt.partition("@")
            query = query.where(events.c.prompt_name == name)
            if version and not version.isdigit():
                raise InvalidInput(f"give the prompt as NAME or NAME@VERSION, not {prompt!r}")
            if version:
                query = query.where(events.c.prompt_version == int(version))
        groups: dict[str, VersionFeedback] = {}
        with self.db.read() as conn:
            for row in conn.execute(query):
                ref = f"{row.prompt_name}@{row.prompt_version}" if row.prompt_name else "-"
                group = groups.setdefault(ref, VersionFeedback(ref))
                group.values[row.metric].append(float(row.value))
                group.calls.add(row.request_id)
                if row.comment and len(group.comments) < COMMENTS_SHOWN:
                    group.comments.append({"request_id": row.request_id, "comment": row.comment})
        return sorted(groups.values(), key=lambda g: g.prompt)


COMMENTS_SHOWN = 5


@dataclass
class VersionFeedback:
    prompt: str  # NAME@VERSION, or "-"
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    calls: set[str] = field(default_factory=set)
    comments: list[dict[str, str]] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        metrics = {}
        for metric, values in sorted(self.values.items()):
            metrics[metric] = mean_interval(values).as_record()
        return {
            "prompt": self.prompt,
            "calls": len(self.calls),
            "metrics": metrics,
            "comments": self.comments,
        }


def _record(row: RowMapping) -> dict[str, Any]:
    return {
        "request_id": row["request_id"],
        "session_id": row["session_id"],
        "metric": row["metric"],
        "value": row["value"],
        "comment": row["comment"],
        "tags": row["tags"] or [],
        "user": row["user_key"] or None,
        "source": row["source"],
        "created_at": isoformat(as_utc(row["created_at"])),
        "updated_at": isoformat(as_utc(row["updated_at"])),
    }
