"""Anchors: the audit chain's head, recorded outside the database.

A keyed chain (see :mod:`seamline.registry.audit`) cannot be rewritten without the
installation secret, but rows cut off its end leave a shorter chain that still verifies. An
anchor records how long the chain was and what its head was at a moment; kept where the
database's writers cannot reach it, it turns "the last rows are gone" into a detectable fact.

An anchor is one JSON object, MACed under a key derived from the installation secret, so an
anchor file edited by hand (a lower count, another hash) fails its check::

    {"v": 1, "project": "acme", "project_id": 1, "entries": 42, "head_hash": "…",
     "at": "2025-01-31T09:00:00.000000Z", "mac": "…"}

Destinations: a JSON-lines file (appended; the default is ``$SEAMLINE_HOME/audit-anchors.jsonl``)
or a webhook (the object POSTed as JSON). Object stores are not built in: a webhook in front
of a write-once bucket, or a file on a mounted one, does the same job.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from seamline.core.canonical import canonical_json
from seamline.core.clock import as_utc, isoformat
from seamline.core.errors import InvalidInput, Unavailable

ANCHOR_FORMAT = 1
DEFAULT_FILE_NAME = "audit-anchors.jsonl"
WEBHOOK_TIMEOUT_S = 10.0
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Anchor:
    """A project's chain had ``entries`` entries ending in ``head_hash`` at time ``at``.

    ``mac`` is empty until :func:`seamline.registry.audit.anchor` signs it."""

    project: str
    project_id: int
    entries: int
    head_hash: str
    at: datetime
    mac: str = ""

    def signed_text(self) -> str:
        """What the MAC covers: every field but the MAC, as canonical JSON."""
        body = self.to_dict()
        del body["mac"]
        return canonical_json(body)

    def with_mac(self, mac: str) -> Anchor:
        return replace(self, mac=mac)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": ANCHOR_FORMAT,
            "project": self.project,
            "project_id": self.project_id,
            "entries": self.entries,
            "head_hash": self.head_hash,
            "at": isoformat(self.at),
            "mac": self.mac,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Anchor:
        """Parse an anchor; anything malformed is :class:`InvalidInput` (the MAC is checked
        by verification, where the key is)."""
        if not isinstance(data, dict) or data.get("v") != ANCHOR_FORMAT:
            raise InvalidInput(f"not a seamline audit anchor (format {ANCHOR_FORMAT})")
        try:
            anchor = cls(
                project=data["project"],
                project_id=data["project_id"],
                entries=data["entries"],
                head_hash=data["head_hash"],
                at=as_utc(datetime.fromisoformat(data["at"])),
                mac=data["mac"],
            )
        except KeyError as exc:
            raise InvalidInput(f"malformed audit anchor: no {exc} field") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed audit anchor: {exc}") from exc
        digests = (anchor.head_hash, anchor.mac)
        numbers = (anchor.project_id, anchor.entries)
        if (
            not isinstance(anchor.project, str)
            or not all(isinstance(v, str) and _HEX_DIGEST.fullmatch(v) for v in digests)
            or not all(type(v) is int and v >= 0 for v in numbers)
        ):
            raise InvalidInput("malformed audit anchor: wrong field types")
        return anchor


def default_file(home: Path) -> Path:
    return home / DEFAULT_FILE_NAME


def file_destination(destination: str) -> Path | None:
    """The file a destination names (``file:PATH`` or a bare path), or ``None`` for an
    ``http(s)://`` webhook; :class:`InvalidInput` for any other scheme."""
    if destination.startswith(("http://", "https://")):
        return None
    if "://" in destination:
        raise InvalidInput(
            f"unsupported anchor destination {destination!r}: use file:PATH or an http(s) "
            "webhook (for an object store, a webhook in front of it or a mounted bucket)",
            param="to",
        )
    return Path(destination.removeprefix("file:")).expanduser()


def send(anchor: Anchor, destination: str) -> str:
    """Record ``anchor`` at ``destination`` (see :func:`file_destination`); returns where it
    went, for the user. :class:`Unavailable` when a webhook does not accept it."""
    path = file_destination(destination)
    if path is None:
        post_to_webhook(anchor, destination)
        return destination
    append_to_file(anchor, path)
    return str(path)


def append_to_file(anchor: Anchor, path: Path) -> None:
    """Append one line and fsync it: an anchor that may be lost in a crash anchors nothing.
    One short ``O_APPEND`` write, so concurrent writers never interleave within a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(anchor.to_dict(), ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def post_to_webhook(anchor: Anchor, url: str) -> None:
    """POST the anchor as JSON; any 2xx answer means the receiver has it."""
    try:
        answer = httpx.post(url, json=anchor.to_dict(), timeout=WEBHOOK_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise Unavailable(f"anchor webhook {url} unreachable: {exc}") from exc
    if not answer.is_success:
        raise Unavailable(f"anchor webhook {url} answered HTTP {answer.status_code}")


def read_file(path: Path, project: str) -> list[Anchor]:
    """The anchors of ``project`` in a JSON-lines file, oldest first. Anything unreadable
    raises :class:`InvalidInput` naming its line: a damaged anchor file is itself a finding,
    never skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInput(f"cannot read anchors from {path}: {why}") from exc
    found = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            anchor = Anchor.from_dict(json.loads(line))
        except (ValueError, InvalidInput) as exc:
            message = exc.message if isinstance(exc, InvalidInput) else "not JSON"
            raise InvalidInput(f"{path} line {number}: {message}") from exc
        if anchor.project == project:
            found.append(anchor)
    return found
