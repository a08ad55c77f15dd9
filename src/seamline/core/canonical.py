"""Canonical JSON and content hashes.

A version's identity is the sha256 of its canonical JSON, so two pushes of the same content
hash the same whatever the key order or whitespace of the YAML they came from.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace (RFC 8785 in spirit)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(value: Any) -> str:
    """The sha256 of ``value``'s canonical JSON."""
    return sha256_hex(canonical_json(value))
