"""The JSON object in a model's answer: judges asked for one sometimes wrap it in prose or a
markdown fence, and a model without JSON mode does more often."""

from __future__ import annotations

import json
from typing import Any


def json_object_in(answer: str) -> dict[str, Any] | None:
    """The text from the answer's first ``{`` to its last ``}`` as a JSON object, or None
    when there is none."""
    start, end = answer.find("{"), answer.rfind("}")
    try:
        found = json.loads(answer[start : end + 1]) if 0 <= start < end else None
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None
