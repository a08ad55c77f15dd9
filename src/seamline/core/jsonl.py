"""JSON Lines files (eval cases, scored runs, labelled guard data): one object per line, blank
lines skipped, and a bad line named by its number, so that a file is read whole or refused,
never read in part."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seamline.core.errors import InvalidInput, NotFound


def json_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each non-blank line's object with where it is (``PATH line N``, for messages).
    :class:`NotFound` for a missing file; :class:`InvalidInput` for an unreadable one and
    for the first line that is not a JSON object (invalid UTF-8 included)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"{where}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"{where}: expected an object")
        yield where, row
