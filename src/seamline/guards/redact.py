"""Apply detector spans to text: masking, and reversible pseudonymisation.

``mask`` is one-way: each span becomes ``[LABEL]``. ``Pseudonymiser`` is for a call whose
upstream must not see the originals but whose caller should get them back: each distinct value
becomes a stable placeholder (``<EMAIL_1>``) on the way up, and ``restore`` (or a
``StreamRestorer``, for streamed responses) puts the originals back in what the model wrote.

A Pseudonymiser holds the originals in memory for one call and nowhere else: never log it,
store it or share it between calls. Its ``repr`` shows counts only, so a stray log line or a
traceback's locals do not carry the values.

Example::

    >>> from seamline.guards.pii import PiiDetector
    >>> text = "Write to bob@example.com"
    >>> mask(text, PiiDetector().scan(text))
    'Write to [EMAIL]'
    >>> pseudonymiser = Pseudonymiser()
    >>> pseudonymiser.pseudonymise(text, PiiDetector().scan(text))
    'Write to <EMAIL_1>'
    >>> pseudonymiser.restore("Sent to <EMAIL_1>.")
    'Sent to bob@example.com.'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace

from seamline.guards.findings import Finding


def merge_overlapping(findings: Iterable[Finding]) -> list[Finding]:
    """Findings with spans, ordered by start, overlapping ones merged into one.

    A merged finding covers the union of the spans and carries the detector, label and score
    of the most certain finding in it (highest score, then longest span): two detectors that
    saw the same value, or a phone-shaped run inside an IBAN, give one replacement, named after
    the better explanation. Findings without a span are dropped.
    """
    spans = sorted(
        (f for f in findings if f.start is not None and f.end is not None and f.end > f.start),
        key=lambda f: (f.start, -(f.end or 0)),
    )
    groups: list[tuple[Finding, int, int]] = []  # (best finding, start, end)
    for finding in spans:
        start, end = span(finding)
        if groups and start < groups[-1][2]:
            best, group_start, group_end = groups[-1]
            if _rank(finding) > _rank(best):
                best = finding
            groups[-1] = (best, group_start, max(group_end, end))
        else:
            groups.append((finding, start, end))
    return [
        best if (best.start, best.end) == (start, end) else replace(best, start=start, end=end)
        for best, start, end in groups
    ]


def span(finding: Finding) -> tuple[int, int]:
    """``(start, end)`` of a finding; ``ValueError`` for a finding about the whole text."""
    if finding.start is None or finding.end is None:
        raise ValueError("the finding has no span")
    return finding.start, finding.end


def _rank(finding: Finding) -> tuple[float, int]:
    start, end = span(finding)
    return finding.score, end - start


def mask_token(label: str) -> str:
    """The text a masked span becomes: ``[EMAIL]``, ``[AWS_ACCESS_KEY]``."""
    return f"[{_placeholder_name(label)}]"


def _placeholder_name(label: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", label.upper()).strip("_") or "REDACTED"


def mask(text: str, findings: Iterable[Finding]) -> str:
    """``text`` with each span replaced by its label in brackets; overlapping spans merge."""
    pieces: list[str] = []
    position = 0
    for finding in merge_overlapping(findings):
        start, end = span(finding)
        pieces += (text[position:start], mask_token(finding.label))
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


# Anything shaped like a placeholder this module writes (<LABEL_N>); only known ones change.
_PLACEHOLDER = re.compile(r"<[A-Z0-9_]+>")
# What a placeholder cut by a chunk boundary can look like: "<", "<EMA", "<EMAIL_1".
_PARTIAL_PLACEHOLDER = re.compile(r"<[A-Z0-9_]*")


class Pseudonymiser:
    """Reversible pseudonymisation for one call: same value, same placeholder.

    ``pseudonymise`` replaces each distinct value with ``<LABEL_N>`` (numbered per label in
    order of first appearance, across every text given to this object, so the messages of one
    request share placeholders); ``restore`` puts the originals back wherever the model echoed
    a placeholder, as many times as it did, and leaves unknown placeholders alone.
    """

    def __init__(self) -> None:
        self._placeholders: dict[str, str] = {}  # original -> placeholder
        self._originals: dict[str, str] = {}  # placeholder -> original
        self._counts: dict[str, int] = {}  # placeholder name -> last number used

    def pseudonymise(self, text: str, findings: Iterable[Finding]) -> str:
        """``text`` with each span replaced by its value's placeholder."""
        pieces: list[str] = []
        position = 0
        for finding in merge_overlapping(findings):
            start, end = span(finding)
            placeholder = self.placeholder(text[start:end], finding.label, avoid=text)
            pieces += (text[position:start], placeholder)
            position = end
        pieces.append(text[position:])
        return "".join(pieces)

    def placeholder(self, value: str, label: str, *, avoid: str = "") -> str:
        """The placeholder of ``value``: the one it already has, or a new ``<LABEL_N>``.

        A new number is skipped while its placeholder appears in ``avoid`` (the text being
        pseudonymised), so restoring never rewrites text the caller wrote.
        """
        placeholder = self._placeholders.get(value)
        if placeholder is None:
            name = _placeholder_name(label)
            number = self._counts.get(name, 0) + 1
            while f"<{name}_{number}>" in avoid:
                number += 1
            self._counts[name] = number
            placeholder = f"<{name}_{number}>"
            self._placeholders[value] = placeholder
            self._originals[placeholder] = value
        return placeholder

    @property
    def used(self) -> bool:
        """Whether any value was replaced (else there is nothing to restore)."""
        return bool(self._originals)

    def restore(self, text: str) -> str:
        """``text`` with every known placeholder replaced by its original."""
        if not self._originals or "<" not in text:
            return text
        return _PLACEHOLDER.sub(lambda match: self._originals.get(match[0], match[0]), text)

    @property
    def longest_placeholder(self) -> int:
        """Length of the longest placeholder handed out: a stream restorer's hold-back."""
        return max(map(len, self._originals), default=0)

    def restorer(self) -> StreamRestorer:
        """A restorer for one streamed response (chunks of the model's text)."""
        return StreamRestorer(self)

    def restore_stream(self, chunks: Iterable[str]) -> Iterator[str]:
        """Restored text for a stream of chunks; empty pieces are not yielded."""
        restorer = self.restorer()
        for chunk in chunks:
            if piece := restorer.feed(chunk):
                yield piece
        if piece := restorer.flush():
            yield piece

    def __repr__(self) -> str:
        return f"Pseudonymiser({len(self._originals)} values)"


class StreamRestorer:
    """Restores placeholders in a streamed response, chunk by chunk.

    ``feed`` returns at once all text that cannot be the start of a placeholder; it holds back
    only a trailing ``<`` followed by placeholder characters, shorter than the longest
    placeholder handed out (so at most that many characters, and nothing when the call
    pseudonymised nothing). A placeholder cut by a chunk boundary is restored when its end
    arrives. ``flush`` returns what is held at the end of the stream.
    """

    def __init__(self, pseudonymiser: Pseudonymiser) -> None:
        self._pseudonymiser = pseudonymiser
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        self._held = ""
        longest = self._pseudonymiser.longest_placeholder
        if longest:
            start = text.rfind("<", max(0, len(text) - longest + 1))
            if start != -1 and _PARTIAL_PLACEHOLDER.fullmatch(text, start) is not None:
                text, self._held = text[:start], text[start:]
        return self._pseudonymiser.restore(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self._pseudonymiser.restore(text)

    def __repr__(self) -> str:
        return f"StreamRestorer(holding {len(self._held)} chars)"


def mask_sensitive(text: str) -> str:
    """``text`` with the personal data and secrets the built-in detectors find masked: what
    a project's ``redacted`` content logging stores."""
    from seamline.guards.detectors import detector  # the registry imports this module's users

    found = [f for name in ("pii", "secrets") for f in detector(name).scan(text)]
    return mask(text, found) if found else text
