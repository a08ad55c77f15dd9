"""The one clock. Times are timezone-aware UTC everywhere; the database may hand back naive
values (SQLite), which :func:`as_utc` repairs before any comparison or hashing."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Treat a naive datetime as UTC (how it was written) and convert an aware one."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def isoformat(value: datetime) -> str:
    """A fixed-width UTC rendering with microseconds: stable input for hash chains."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
