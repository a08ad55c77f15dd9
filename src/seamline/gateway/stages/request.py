"""Reading an OpenAI chat request: the checks a gateway must make before spending money.

Deliberately not a pydantic model of the whole OpenAI schema: upstreams accept fields that
move faster than any copy of their schema, so unknown fields pass through untouched, and
only what the gateway itself relies on is checked here, with OpenAI-style errors.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from seamline.core.clock import as_utc, isoformat
from seamline.core.errors import InvalidInput
from seamline.gateway.stages.params import check_parameters
from seamline.rag.online import RetrievedChunk

PROMPT_PREFIX = "prompt:"
DEFAULT_PROMPT_ALIAS = "production"
# Gateway-only fields: read here, never forwarded upstream.
LOCAL_FIELDS = ("seamline", "metadata")


MAX_REPORTED_CHUNKS = 100


@dataclass
class ChatRequest:
    body: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool
    prompt_name: str | None = None
    prompt_ref: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    session_id: str | None = None
    use_case: str | None = None
    use_cache: bool = True
    # What the caller marked untrusted (``seamline.untrusted``): indices into its own
    # ``messages`` (a pasted document, a web page in a user turn) and prompt variable names.
    untrusted_messages: frozenset[int] = frozenset()
    untrusted_variables: frozenset[str] = frozenset()
    # Retrieval the application did itself and reports (``seamline.retrieval``).
    reported_retrieval: ReportedRetrieval | None = None
    # What the gateway's own retrieval searched for and found (the ``retrieve`` stage).
    retrieval_query: str | None = None
    retrieved: tuple[RetrievedChunk, ...] = ()


@dataclass(frozen=True)
class ReportedRetrieval:
    """What an application that retrieves on its own says it retrieved for this call: the
    index (its name and version, in any store), each chunk's id and score (and, for online
    scoring, its text, source and when that source last changed), the time taken. Recorded
    on the event and scored like the gateway's own retrieval."""

    index: str
    chunks: list[RetrievedChunk]
    retrieval_ms: float | None
    query: str | None = None  # what was searched for, when not the last user message

    @property
    def chunk_ids(self) -> list[str]:
        return [chunk.chunk_id for chunk in self.chunks]

    @property
    def scores(self) -> list[float] | None:
        known = [chunk.score for chunk in self.chunks if chunk.score is not None]
        return known if len(known) == len(self.chunks) else None


def _expect(body: dict[str, Any], name: str, types: tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    # JSON true is a Python int: refuse it where a number is expected.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise InvalidInput(f"'{name}' must be {what}", param=name, code="invalid_type")
    return value


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput(
            "'model' is required and must be a string",
            param="model",
            code="missing_model" if model is None else "invalid_type",
        )
    messages = body.get("messages")
    is_prompt = model.startswith(PROMPT_PREFIX)
    if messages is None and not is_prompt:
        raise InvalidInput("'messages' is required", param="messages", code="missing_messages")
    if messages is not None:
        if not isinstance(messages, list) or (not messages and not is_prompt):
            raise InvalidInput(
                "'messages' must be a non-empty array", param="messages", code="invalid_type"
            )
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidInput(
                    f"messages[{index}] must be an object with a 'role'",
                    param=f"messages[{index}]",
                    code="invalid_message",
                )
            content = message.get("content")
            if (
                content is not None
                and not isinstance(content, str)
                and not (isinstance(content, list) and all(_is_part(p) for p in content))
            ):
                raise InvalidInput(
                    f"messages[{index}].content must be a string or an array of parts "
                    "(a part's 'text', when it has one, a string)",
                    param=f"messages[{index}].content",
                    code="invalid_message",
                )
    stream = _expect(body, "stream", (bool,), "a boolean") or False
    options = _expect(body, "stream_options", (dict,), "an object") or {}
    tools = _expect(body, "tools", (list,), "an array") or []
    if not all(isinstance(t, dict) for t in tools):
        raise InvalidInput(
            "'tools' must be an array of tool objects", param="tools", code="invalid_type"
        )
    _expect(body, "user", (str,), "a string")
    check_parameters(body)
    metadata = _expect(body, "metadata", (dict,), "an object") or {}
    extension = _expect(body, "seamline", (dict,), "an object") or {}
    variables = extension.get("variables") or {}
    if not isinstance(variables, dict):
        raise InvalidInput("'seamline.variables' must be an object", param="seamline.variables")
    untrusted_messages, untrusted_variables = _untrusted(extension, messages or [])
    reported = _reported_retrieval(extension.get("retrieval"))
    request = ChatRequest(
        body=body,
        model=model,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        variables=variables,
        user_id=_text(metadata.get("user_id") or body.get("user")),
        session_id=_text(metadata.get("session_id")),
        use_case=_text(metadata.get("use_case")),
        use_cache=extension.get("cache", True) is not False,
        untrusted_messages=untrusted_messages,
        untrusted_variables=untrusted_variables,
        reported_retrieval=reported,
    )
    if is_prompt:
        reference = model[len(PROMPT_PREFIX) :]
        name, _, ref = reference.partition("@")
        if not name:
            raise InvalidInput(
                "use model 'prompt:NAME@ALIAS' or 'prompt:NAME@VERSION'",
                param="model",
                code="invalid_prompt_reference",
            )
        request.prompt_name, request.prompt_ref = name, ref or DEFAULT_PROMPT_ALIAS
    return request


def _reported_retrieval(value: Any) -> ReportedRetrieval | None:
    """``seamline.retrieval``: ``{"index": "kb@7", "chunks": [{"id", "score"?, "text"?,
    "source"?, "updated_at"?}], "query"?, "built_at"?, "retrieval_ms"?}``, checked."""
    if value is None:
        return None
    where = "seamline.retrieval"
    if not isinstance(value, dict):
        raise InvalidInput(f"'{where}' must be an object", param=where)
    index, chunks = value.get("index"), value.get("chunks")
    if not isinstance(index, str) or not 0 < len(index) <= 200:
        raise InvalidInput(f"'{where}.index' must be a name of 1-200 characters", param=where)
    if not isinstance(chunks, list) or len(chunks) > MAX_REPORTED_CHUNKS:
        raise InvalidInput(
            f"'{where}.chunks' must be an array of at most {MAX_REPORTED_CHUNKS} chunks",
            param=f"{where}.chunks",
        )
    took = value.get("retrieval_ms")
    if took is not None and (
        isinstance(took, bool) or not isinstance(took, int | float) or took < 0
    ):
        raise InvalidInput(f"'{where}.retrieval_ms' must be a number >= 0", param=where)
    query = value.get("query")
    if query is not None and not isinstance(query, str):
        raise InvalidInput(f"'{where}.query' must be a string", param=f"{where}.query")
    built_at = _timestamp(value.get("built_at"), f"{where}.built_at")
    parsed = [
        _reported_chunk(chunk, f"{where}.chunks[{number}]", built_at)
        for number, chunk in enumerate(chunks)
    ]
    return ReportedRetrieval(index, parsed, None if took is None else float(took), query or None)


def _reported_chunk(chunk: Any, where: str, built_at: datetime | None) -> RetrievedChunk:
    if not isinstance(chunk, dict):
        raise InvalidInput(f"'{where}' must be an object with an 'id'", param=where)
    chunk_id, score = chunk.get("id"), chunk.get("score")
    if not isinstance(chunk_id, str) or not 0 < len(chunk_id) <= 200:
        raise InvalidInput(f"'{where}.id' must be a string of 1-200 characters", param=where)
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise InvalidInput(f"'{where}.score' must be a number", param=where)
    text, source = chunk.get("text"), chunk.get("source")
    if text is not None and not isinstance(text, str):
        raise InvalidInput(f"'{where}.text' must be a string", param=where)
    if source is not None and (not isinstance(source, str) or len(source) > 2000):
        raise InvalidInput(f"'{where}.source' must be a string of at most 2000", param=where)
    updated = _timestamp(chunk.get("updated_at"), f"{where}.updated_at")
    return RetrievedChunk(
        chunk_id,
        text or "",
        None if score is None else float(score),
        source,
        None if updated is None else isoformat(updated),
        # The document changed after the application's index was built from it.
        source_stale=updated is not None and built_at is not None and updated > built_at,
    )


def _timestamp(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return as_utc(datetime.fromisoformat(value))
    raise InvalidInput(f"'{where}' must be an ISO 8601 time", param=where)


def _untrusted(
    extension: dict[str, Any], messages: list[Any]
) -> tuple[frozenset[int], frozenset[str]]:
    """``seamline.untrusted``: message indices and variable names, checked."""
    marked = extension.get("untrusted") or []
    if not isinstance(marked, list):
        raise InvalidInput(
            "'seamline.untrusted' must be an array of message indices and variable names",
            param="seamline.untrusted",
        )
    indices, names = set(), set()
    for item in marked:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(messages):
            indices.add(item)
        else:
            raise InvalidInput(
                f"'seamline.untrusted' holds {str(item)[:40]!r}: each item must be the index "
                f"of one of the {len(messages)} messages or a variable's name",
                param="seamline.untrusted",
            )
    return frozenset(indices), frozenset(names)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:200]


def upstream_body(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The body to forward: gateway-only fields removed, ``changes`` applied."""
    forwarded = {k: v for k, v in body.items() if k not in LOCAL_FIELDS}
    forwarded.update(changes)
    return forwarded


def _is_part(part: Any) -> bool:
    """A content part: an object whose ``text``, if any, is a string (token counting, the
    guards and prefix routing read it as one)."""
    return isinstance(part, dict) and isinstance(part.get("text", ""), str)
