"""The one structured event every accepted gateway call leaves behind.

A :class:`CallEvent` is created when a request is accepted, filled in by each stage of the
request path, and emitted exactly once at the end, whatever happened. Field names follow
DESIGN.md; exporters map them to OpenTelemetry's GenAI attribute names.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from sqlalchemy import String

from seamline.store.schema import events

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_BLOCKED = "blocked"


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def new_trace_id() -> str:
    return secrets.token_hex(16)


@dataclass(slots=True)
class CallEvent:
    request_id: str = field(default_factory=new_request_id)
    trace_id: str = field(default_factory=new_trace_id)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    project_id: int | None = None
    project: str | None = None
    api_key_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    use_case: str | None = None
    route: str = ""
    prompt_name: str | None = None
    prompt_version: int | None = None
    prompt_alias: str | None = None
    arm: str | None = None  # control, canary or shadow
    parent_request_id: str | None = None  # a shadow call's live call
    model_requested: str | None = None
    model_used: str | None = None
    provider: str | None = None
    replica: str | None = None
    # What the upstream said answered (its ``model`` and ``system_fingerprint``): a change
    # under the same name is a silent model update (monitoring's model-change trigger).
    upstream_model: str | None = None
    system_fingerprint: str | None = None
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    tokens_estimated: bool = False
    cost_usd: float = 0.0
    ttft_ms: float | None = None
    latency_ms: float = 0.0
    retrieval_ms: float | None = None
    guard_ms: float | None = None
    upstream_ms: float | None = None
    index_version: str | None = None
    chunk_ids: list[str] | None = None
    chunk_scores: list[float] | None = None  # each retrieved chunk's score, as chunk_ids
    rag_chunks_used: int | None = None
    cache_hit: bool = False
    guard_actions: list[dict[str, Any]] | None = None  # guards.engine.GuardAction records
    # The highest score each guard detector gave the call, above its rules' thresholds or
    # not (a detector that found nothing is absent): what shadow policies are watched by.
    guard_scores: dict[str, float] | None = None
    safety_pass: bool | None = None
    status: str = STATUS_OK
    http_status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    finish_reason: str | None = None
    stream: bool = False
    request_content: Any = None
    response_content: Any = None
    # The variables a prompt was rendered with: what an eval case built from this call
    # needs (``seamline evals add-from-traces``); logged under the same policy as content.
    prompt_variables: dict[str, Any] | None = None
    started: float = field(default_factory=perf_counter)
    parent_span_id: str | None = None  # the caller's span, from its traceparent header

    def fail(self, status: str, http_status: int, error_type: str, message: str) -> None:
        self.status = status
        self.http_status = http_status
        self.error_type = error_type
        self.error_message = message[:500]

    def apply_content_policy(self, mode: str, redact: Callable[[str], str]) -> None:
        """The project's content logging: ``full`` keeps messages, ``redacted`` keeps them
        with what ``redact`` masks in the text (personal data and secrets: the gateway passes
        the guards' detectors), ``none`` keeps nothing."""
        if mode == "full":
            return
        if mode == "redacted":
            self.request_content = _redacted(self.request_content, redact)
            self.response_content = _redacted(self.response_content, redact)
            self.prompt_variables = _redacted(self.prompt_variables, redact, written=True)
        else:
            self.request_content = self.response_content = self.prompt_variables = None

    def finish(self) -> None:
        self.latency_ms = (perf_counter() - self.started) * 1000

    def to_row(self) -> dict[str, Any]:
        """The stored columns, each text cut to its column's width: a client's 300-character
        ``user`` or ``model`` must not cost an answered, billed call its row (PostgreSQL
        refuses an over-long ``varchar``; SQLite would keep it). Shallow on purpose (``asdict``
        deep-copies every message, and nothing changes an event once it is emitted)."""
        row = {name: getattr(self, name) for name in STORED_FIELDS}
        for name, width in _WIDTHS.items():
            value = row[name]
            if value is not None and len(value) > width:
                row[name] = value[:width]
        return row


# The fields of a message that hold what someone wrote; ids, roles and names are kept.
_WRITTEN = frozenset({"content", "text", "arguments", "refusal"})


def _redacted(content: Any, redact: Callable[[str], str], written: bool = False) -> Any:
    if isinstance(content, str):
        return redact(content) if written else content
    if isinstance(content, list):
        return [_redacted(item, redact, written) for item in content]
    if isinstance(content, dict):
        return {k: _redacted(v, redact, written or k in _WRITTEN) for k, v in content.items()}
    return content


def without_nul(value: Any) -> Any:
    """``value`` (text, or JSON-like lists and dicts of it) without NUL characters, which
    PostgreSQL text and json refuse (and SQLite keeps): stored the same on either."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {k: without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


# The fields stored in ``events``, in order: each is a column of the same name.
STORED_FIELDS = tuple(
    f.name for f in fields(CallEvent) if f.name not in ("started", "parent_span_id")
)
_WIDTHS = {
    column.name: column.type.length
    for column in events.columns
    if isinstance(column.type, String) and column.type.length and column.name in STORED_FIELDS
}
