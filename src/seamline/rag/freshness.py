"""How fresh an index version is: each source (shard) against what it is now, the index's
age against its sources, how often the index is rebuilt, and how old the documents are that
answer today's queries.

A source is ``fresh`` when its bytes are what the version embedded, ``changed`` when they
differ (the version answers from an outdated text: a freshness failure waiting to happen),
``touched`` when only its modification time moved, ``missing`` when it is gone, and
``unknown`` for a source this process cannot read back (not a local file).
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sqlalchemy import Connection, select

from seamline.core.clock import as_utc, isoformat
from seamline.rag.online import RagSample
from seamline.rag.store import ChunkStore
from seamline.registry.records import VersionRecord
from seamline.store.schema import events

FRESH, CHANGED, TOUCHED, MISSING, UNKNOWN = "fresh", "changed", "touched", "missing", "unknown"
# Ages of the documents that answered queries, in buckets a dashboard can draw.
AGE_BUCKETS: tuple[tuple[str, timedelta], ...] = (
    ("1d", timedelta(days=1)),
    ("7d", timedelta(days=7)),
    ("30d", timedelta(days=30)),
    ("90d", timedelta(days=90)),
    ("365d", timedelta(days=365)),
)
OLDER = "older"


@dataclass(frozen=True)
class SourceState:
    uri: str
    state: str
    recorded_modified: str
    current_modified: str | None


@dataclass
class Freshness:
    index: str  # NAME@VERSION
    built_at: str
    sources: list[SourceState] = field(default_factory=list)
    rebuild_interval_days: float | None = None  # median time between the index's versions
    answering_ages: dict[str, int] = field(default_factory=dict)  # bucket: chunks used

    @property
    def stale(self) -> list[SourceState]:
        return [s for s in self.sources if s.state in (CHANGED, MISSING)]

    def as_record(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "built_at": self.built_at,
            "stale": [s.uri for s in self.stale],
            "sources": [s.__dict__ for s in self.sources],
            "rebuild_interval_days": self.rebuild_interval_days,
            "answering_ages": self.answering_ages,
        }


def version_freshness(
    record: VersionRecord, created: list[datetime], ages: dict[str, int] | None = None
) -> Freshness:
    """An index version's freshness: its sources against what they are now, its age, how
    often the index is rebuilt (from every version's ``created`` time), and ``ages`` of the
    documents that answered calls, where they were read (:func:`answering_ages`)."""
    return Freshness(
        f"{record.name}@{record.number}",
        isoformat(record.created_at),
        source_states(record.content),
        rebuild_interval_days(created),
        ages or {},
    )


def source_states(content: dict[str, Any]) -> list[SourceState]:
    return [_state(source) for source in content.get("sources") or []]


def _state(source: dict[str, Any]) -> SourceState:
    uri, recorded = str(source["uri"]), str(source["modified"])
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return SourceState(uri, UNKNOWN, recorded, None)
    path = Path(unquote(parsed.path))
    try:
        data = path.read_bytes()
        modified = isoformat(datetime.fromtimestamp(path.stat().st_mtime, UTC))
    except FileNotFoundError:
        return SourceState(uri, MISSING, recorded, None)
    except OSError:
        return SourceState(uri, UNKNOWN, recorded, None)
    if hashlib.sha256(data).hexdigest() != source["sha256"]:
        return SourceState(uri, CHANGED, recorded, modified)
    return SourceState(uri, TOUCHED if modified != recorded else FRESH, recorded, modified)


def rebuild_interval_days(created: list[datetime]) -> float | None:
    ordered = sorted(as_utc(c) for c in created)
    gaps = [(b - a).total_seconds() / 86400 for a, b in itertools.pairwise(ordered)]
    return round(statistics.median(gaps), 3) if gaps else None


def answering_ages(
    conn: Connection, store: ChunkStore, project_id: int, index: str, since: datetime
) -> dict[str, int]:
    """How old (at the time of the call) the sources were of the chunks that calls using
    ``index`` retrieved since ``since``, by bucket."""
    rows = conn.execute(
        select(events.c.time, events.c.chunk_ids).where(
            events.c.project_id == project_id,
            events.c.time >= since,
            events.c.index_version.startswith(f"{index}@", autoescape=True),
        )
    ).all()
    used = [(as_utc(row.time), chunk) for row in rows for chunk in row.chunk_ids or []]
    stored = store.chunks_by_id(project_id, sorted({chunk for _, chunk in used}))
    ages: Counter[str] = Counter()
    for at, chunk in used:
        if chunk in stored:
            modified = datetime.fromisoformat(stored[chunk].source_modified)
            ages[_bucket(at - as_utc(modified))] += 1
    return {name: ages.get(name, 0) for name, _ in AGE_BUCKETS} | {OLDER: ages.get(OLDER, 0)}


def _bucket(age: timedelta) -> str:
    return next((name for name, limit in AGE_BUCKETS if age <= limit), OLDER)


def with_sources(sample: RagSample, store: ChunkStore) -> RagSample:
    """``sample`` with each chunk completed from the embedded store where it is there (its
    text, source and when that changed: an application reporting ids of a seamline index
    need not send the text), and marked stale when its source file no longer holds what was
    embedded. Reads files: call it off the request path."""
    known = store.chunks_by_id(sample.project_id, [c.chunk_id for c in sample.chunks])
    states: dict[tuple[str, str], str] = {}
    chunks = []
    for chunk in sample.chunks:
        stored = known.get(chunk.chunk_id)
        if stored is None:
            chunks.append(chunk)
            continue
        key = (stored.source_uri, stored.source_sha256)
        if key not in states:
            source = {"uri": key[0], "sha256": key[1], "modified": stored.source_modified}
            states[key] = _state(source).state
        chunks.append(
            replace(
                chunk,
                text=chunk.text or stored.text,
                source=chunk.source or stored.source_uri,
                source_modified=chunk.source_modified or stored.source_modified,
                source_stale=chunk.source_stale or states[key] in (CHANGED, MISSING),
            )
        )
    return replace(sample, chunks=tuple(chunks))


@dataclass(frozen=True)
class IndexFigures:
    """One index version's freshness, as ``/metrics`` shows it."""

    project: str
    index: str  # NAME@VERSION
    built_at: datetime
    sources: int
    stale: int  # changed or missing since the version was built
    newest_source: datetime | None  # the latest modification among its sources, as indexed


class FreshnessTracker:
    """The index versions a gateway worker has retrieved from, and how fresh each is, with
    source states read at most once per ``ttl_s`` (a scrape must not hash a corpus each
    time; files change on the scale of minutes, not seconds)."""

    def __init__(self, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._used: dict[tuple[str, str], VersionRecord] = {}
        self._figures: dict[tuple[str, str, int], tuple[float, IndexFigures]] = {}
        self._lock = threading.Lock()

    def used(self, project: str, record: VersionRecord) -> None:
        with self._lock:
            self._used[(project, record.name)] = record

    def figures(self) -> list[IndexFigures]:
        with self._lock:
            used = list(self._used.items())
        found = []
        for (project, _), record in used:
            key = (project, record.name, record.number)
            cached = self._figures.get(key)
            if cached is None or self._clock() - cached[0] > self.ttl_s:
                cached = (self._clock(), _figures(project, record))
                self._figures[key] = cached
            found.append(cached[1])
        return found


def _figures(project: str, record: VersionRecord) -> IndexFigures:
    states = source_states(record.content)
    modified = [as_utc(datetime.fromisoformat(s.recorded_modified)) for s in states]
    return IndexFigures(
        project,
        f"{record.name}@{record.number}",
        as_utc(record.created_at),
        len(states),
        sum(1 for s in states if s.state in (CHANGED, MISSING)),
        max(modified, default=None),
    )
