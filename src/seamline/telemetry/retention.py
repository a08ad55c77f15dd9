"""Retention: what calls said (messages, answers, prompt variables) is deleted from events
older than a limit, while the events themselves (tokens, cost, latency, status, ids) and the
hourly rollups stay: the numbers outlive the text.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import null, or_, update

from seamline.store.database import Database
from seamline.store.schema import events


def prune_content(db: Database, before: datetime) -> int:
    """Delete the content of events older than ``before``; how many events lost theirs."""
    with db.write() as conn:
        result = conn.execute(
            update(events)
            .where(
                events.c.time < before,
                or_(
                    events.c.request_content.is_not(None),
                    events.c.response_content.is_not(None),
                    events.c.prompt_variables.is_not(None),
                ),
            )
            .values(request_content=null(), response_content=null(), prompt_variables=null())
        )
    return int(result.rowcount or 0)
