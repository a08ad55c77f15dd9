"""Retention: what calls said (messages, answers, prompt variables) is deleted from events
older than a limit, while the events themselves (tokens, cost, latency, status, ids) and the
hourly rollups stay: the numbers outlive the text.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import null, or_, select, update

from seamline.store.database import Database
from seamline.store.schema import call_scores, events

BATCH = 1000  # events a transaction


def prune_content(db: Database, before: datetime, *, batch: int = BATCH) -> int:
    """Delete the content of events older than ``before`` (and the reasons online scorers
    gave, which may quote it), ``batch`` events a transaction: a first run over months of
    events must not hold the write lock the event writer needs. How many events lost it."""
    pruned = 0
    has_content = or_(
        events.c.request_content.is_not(None),
        events.c.response_content.is_not(None),
        events.c.prompt_variables.is_not(None),
    )
    while True:
        with db.write() as conn:
            ids = list(
                conn.execute(
                    select(events.c.id).where(events.c.time < before, has_content).limit(batch)
                ).scalars()
            )
            if not ids:
                break
            conn.execute(
                update(events)
                .where(events.c.id.in_(ids))
                .values(request_content=null(), response_content=null(), prompt_variables=null())
            )
        pruned += len(ids)
    with db.write() as conn:
        conn.execute(
            update(call_scores)
            .where(call_scores.c.time < before, call_scores.c.reason.is_not(None))
            .values(reason=None)
        )
    return pruned
