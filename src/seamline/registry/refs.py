"""Version references: ``3``, ``"v3"``, an alias name, or ``latest``.

One parser for every face (registry API, gateway, SDK, CLI), so that a reference means the
same thing everywhere and a bad one is the same 400 everywhere.
"""

from __future__ import annotations

import re

from seamline.core.errors import InvalidInput

# ASCII digits only: ``\d`` also matches digits of other scripts ("٣"), which int() accepts.
_VERSION_REF = re.compile(r"v?([0-9]+)")
LATEST = "latest"  # a reserved reference, never an alias name
MAX_VERSION = 2**31 - 1  # the INTEGER column's range on PostgreSQL


def is_version_number(ref: str) -> bool:
    return _VERSION_REF.fullmatch(ref) is not None


def parse_ref(ref: str | int | None) -> int | str | None:
    """``3``, ``"3"`` and ``"v3"`` name version 3, ``"latest"`` the newest; any other
    string names an alias."""
    if ref is None:
        return None
    if isinstance(ref, int):
        number = ref
    elif ref == LATEST:
        return None
    else:
        match = _VERSION_REF.fullmatch(ref)
        if match is None:
            return ref
        digits = match.group(1).lstrip("0") or "0"
        # Checked before int(): Python refuses to parse over 4,300 digits (a ValueError).
        if len(digits) > len(str(MAX_VERSION)):
            raise InvalidInput(f"version {ref[:20]}… is out of range", code="invalid_version")
        number = int(digits)
    if not 0 < number <= MAX_VERSION:
        raise InvalidInput(f"version {number} is out of range", code="invalid_version")
    return number


def canonical_ref(ref: str | int | None) -> str:
    """One spelling per version reference: ``3``, ``"03"`` and ``"v3"`` are all ``"3"``, so
    caches keyed by a reference cannot be grown by respelling it."""
    parsed = parse_ref(ref)
    return LATEST if parsed is None else str(parsed)
