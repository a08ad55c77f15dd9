"""Mask PII and secrets in a streamed model output, chunk by chunk.

A secret or an email can arrive cut across chunks ("AKIA" in one, the rest in the next), so
an output guard cannot scan each chunk alone. ``StreamScanner`` keeps a bounded look-ahead and
emits only text it has seen enough of to know is safe.

Hold-back, precisely:

* Text is emitted only once ``window`` more characters have arrived after it (default 256),
  so every span shorter than the window is seen whole, with the context after it, before any
  of it leaves. The window is at least ``MIN_WINDOW`` (128): longer than every fixed-length
  key format (a fine-grained GitHub token is 93 characters, an Azure account key 99 with its
  ``AccountKey=``) and than the reach at which an AWS secret key is paired with its key id
  (100 characters between them, plus the id's 20).
* The cut never falls inside a token (a run without whitespace) shorter than ``max_token``
  (default 4096): a long JWT is held whole until whitespace follows it. While such a token
  streams, the delay grows to at most ``window + max_token`` characters.
* A span still open where text must be emitted (longer than both bounds: a PEM block, an
  over-long token) is masked from its start, and the rest of it is dropped as it arrives: up
  to and including the END line for a private key (to the end of the stream if none comes),
  up to the next whitespace otherwise. Masking from BEGIN onward is what keeps a key's body
  out even when the END line never comes.
* The last ``window`` characters already emitted are kept as context for the next scan, so a
  value whose evidence came before it (``aws_secret_access_key = ...``) is still recognised.
* The held text is scanned once ``stride`` more characters (default 32, about 8 tokens) have
  arrived, not on every chunk: output leaves in pieces of at least that size, and the
  hold-back is between ``window`` and ``window + stride`` characters.

``flush()`` scans and returns what is held when the stream ends. Without more, the first
character of output is delayed until ``window + stride`` characters have arrived (or the
stream ends): about 40 tokens of English at the gateway's window of 128, most of a second at
50 tokens/s, on every streamed call.

**Quiet words leave at once** (``early=True``, when every detector says it finds only loud
text: ``finds_only_loud_text``). What the built-in PII, secret, exfiltration and canary
detectors find always holds a digit, a symbol (``@ : / [ < ( = _``), a run of more than 15
letters, mixed case inside a word, or one of the keywords a secret is recognised by
(``password``, ``token``, ``bearer``...). A *quiet word* has none of these: plain words of
up to 15 ASCII letters, with hyphens, apostrophes and trailing punctuation. While the held
text starts with whole quiet words (each followed by whitespace), they are sent at once, all
but the last (a NINO starts with a word of letters); the first loud word, and everything
after it, waits for the window as before, and nothing leaves early while one of the keywords
is in the recent text (a quoted password may be quiet words). So an answer that
opens in prose starts streaming after its first word, and a key, an email or a link is still
seen whole before any of it leaves.

CPU: a 2,000-character answer streamed in 4-character chunks costs 4-8 ms with the PII and
secrets detectors (26 ms when scanning on every chunk; measured on 2 shared, loaded
cores).

Example::

    >>> from seamline.guards.pii import PiiDetector
    >>> scanner = StreamScanner([PiiDetector()])
    >>> scanner.feed("Write to bob@exa") + scanner.feed("mple.com today") + scanner.flush()
    'Write to [EMAIL] today'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from seamline.guards.findings import Detector, Finding
from seamline.guards.redact import mask_token, merge_overlapping, span
from seamline.guards.secrets import PEM_END

WINDOW = 256
MIN_WINDOW = 128
MAX_TOKEN = 4096
# Scan once per this many new characters rather than once per chunk: a chunk is about one
# token (4 characters), and a scan of the held text costs about 50 us (both detectors).
STRIDE = 32
_WHITESPACE = " \t\r\n"
_TOKEN_END = re.compile(r"(?=[ \t\r\n])")  # drop up to, not including, the whitespace
# An END line is under 80 characters: this much of the dropped text is kept, so an END line
# cut across chunks is still found.
_END_LINE_TAIL = 100
# A quiet word (see the module docstring): ASCII letters in parts of at most 15, each part
# lower case after its first letter or all capitals, joined by hyphens or apostrophes, with
# an opening quote and closing punctuation allowed; whole only when whitespace follows it.
# The two kinds of part cannot match the same letters (two or more capitals, or one letter
# then lower case), so a failed match is linear: "S-U-P-E-R..." split two ways per letter
# took seconds of the event loop.
_PART = r"(?:[A-Z]{2,15}|[A-Za-z][a-z]{0,14})"
_QUIET_WORD = rf"[\"'\u201c\u2018]?{_PART}(?:['\u2019-]{_PART})*[.,;:?!\"'\u201d\u2019)]*"
_QUIET_HEAD = re.compile(rf"(?:[ \t\r\n]*{_QUIET_WORD}(?=[ \t\r\n]))+[ \t\r\n]*")


class StreamScanner:
    """Masks what ``detectors`` find in a stream of text chunks (see the module docstring).

    ``feed(chunk)`` returns the text that is now safe to send (often ``""``), ``flush()`` the
    rest at the end of the stream; joined, they equal ``mask`` over the whole text for spans
    shorter than the window. ``findings`` lists what was masked, with spans in the original
    stream. Holds original text: never log it (its ``repr`` shows sizes only).
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        *,
        window: int = WINDOW,
        max_token: int = MAX_TOKEN,
        stride: int = STRIDE,
        early: bool = False,
        loud_words: Sequence[str] = (),
    ) -> None:
        if window < MIN_WINDOW:
            raise ValueError(f"window must be at least {MIN_WINDOW} characters, got {window}")
        if max_token < 0 or stride < 1:
            raise ValueError(f"need max_token >= 0 and stride >= 1, got {max_token}, {stride}")
        self._detectors = tuple(detectors)
        self._window = window
        self._max_token = max_token
        self._stride = stride
        # Quiet words leave at once; ``loud_words``: substrings (lower case) that make a
        # word loud whatever its letters (the keywords a secret is recognised by).
        self._early = early
        self._loud_words = tuple(loud_words)
        self._pending = ""  # received, not yet emitted
        self._context = ""  # the last emitted characters, as received
        self._offset = 0  # stream position of _pending[0]
        self._skip: re.Pattern[str] | None = None  # while dropping an open span: what ends it
        self._skip_tail = ""
        self._findings: list[Finding] = []
        self._finished = False

    @property
    def findings(self) -> list[Finding]:
        """What was masked so far, with ``start``/``end`` in the stream as received."""
        return list(self._findings)

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the text now safe to emit."""
        if self._finished:
            raise RuntimeError("feed() after flush()")
        if self._skip is not None:
            chunk = self._skip_through(chunk)
            if self._skip is not None:
                return ""
        self._pending += chunk
        if len(self._pending) < self._window + self._stride:
            return self._emit_quiet() if self._early else ""
        return self._emit(final=False)

    def _emit_quiet(self) -> str:
        """The whole quiet words at the head of the held text, sent without waiting, but
        the last of them: a few entities start with a word of letters ("AB 12 34 56 C", a UK
        National Insurance number; "X 1234567 L", a Spanish NIE), so a quiet word leaves
        only once a quiet word follows it. Nothing leaves while a secret's keyword is in the
        recent text (``password = "correct horse battery"``: its value may be quiet words)."""
        context = self._context.lower()
        if any(word in context for word in self._loud_words):
            return ""
        head = _QUIET_HEAD.match(self._pending)
        if head is None:
            return ""
        out = head[0]
        lowered = out.lower()
        loud = min((i for w in self._loud_words if (i := lowered.find(w)) != -1), default=-1)
        if loud != -1:  # up to the word holding the keyword
            out = out[:loud]
        # keep the last word back (and whatever of a word ``out`` may end inside)
        words = out.rstrip(_WHITESPACE)
        out = out[: max(words.rfind(c) for c in _WHITESPACE) + 1]
        if out:
            self._context = (self._context + out)[-self._window :]
            self._pending = self._pending[len(out) :]
            self._offset += len(out)
        return out

    def flush(self) -> str:
        """End of stream: return everything still held, masked."""
        self._finished = True
        if self._skip is not None:  # the stream ended inside a masked span
            self._close_open_finding()
            self._skip = None
            return ""
        return self._emit(final=True)

    def _skip_through(self, chunk: str) -> str:
        """Drop the continuation of an open span; return what follows its end, if it came."""
        assert self._skip is not None
        text = self._skip_tail + chunk
        # The tail was searched before: only an end reaching into this chunk counts (an earlier
        # block's END line may sit in the tail).
        tail = len(self._skip_tail)
        end = next((m for m in self._skip.finditer(text) if m.end() > tail or not tail), None)
        if end is None:
            self._offset += len(chunk)
            self._skip_tail = text[-_END_LINE_TAIL:] if self._skip is PEM_END else ""
            return ""
        dropped = end.end() - tail
        self._offset += dropped
        self._close_open_finding()
        self._skip, self._skip_tail, self._context = None, "", ""
        return chunk[dropped:]

    def _close_open_finding(self) -> None:
        """The masked span ends where dropping stopped: record its true end."""
        self._findings[-1] = replace(self._findings[-1], end=self._offset)

    def _safe_cut(self, pending: str) -> int:
        """How much of ``pending`` may be emitted: all but the window, not inside a token."""
        cut = len(pending) - self._window
        if pending[cut - 1] in _WHITESPACE or pending[cut] in _WHITESPACE:
            return cut
        lowest = max(0, cut - self._max_token)
        space = max(pending.rfind(char, lowest, cut) for char in _WHITESPACE)
        if space != -1:
            return space + 1
        if lowest == 0 and (not self._context or self._context[-1] in _WHITESPACE):
            return 0  # the token starts the held text: hold it whole
        return cut  # a token longer than max_token: cut through it

    def _emit(self, *, final: bool) -> str:
        pending = self._pending
        cut = len(pending) if final else self._safe_cut(pending)
        if cut <= 0:
            return ""
        text = self._context + pending
        base = len(self._context)
        limit = base + cut
        pieces: list[str] = []
        position = base
        open_label: str | None = None
        found = merge_overlapping(f for detector in self._detectors for f in detector.scan(text))
        for finding in found:
            start, end = span(finding)
            if end <= base:
                continue  # already emitted, masked, in an earlier call
            if start >= limit:
                break
            start = max(start, base)
            if end > limit:
                if self._may_grow(finding, text, final):
                    limit, open_label = len(text), finding.label
                else:
                    limit = end  # the whole span is visible: emit it, masked
            pieces += (text[position:start], mask_token(finding.label))
            shift = self._offset - base
            self._findings.append(replace(finding, start=start + shift, end=end + shift))
            position = end
            if open_label is not None:
                break
        pieces.append(text[position:limit])
        emitted = limit - base
        self._context = (self._context + pending[:emitted])[-self._window :]
        self._pending = pending[emitted:]
        self._offset += emitted
        if open_label is not None:
            self._skip = PEM_END if open_label == "private_key" else _TOKEN_END
            self._skip_tail = text[-_END_LINE_TAIL:] if self._skip is PEM_END else ""
        return "".join(pieces)

    @staticmethod
    def _may_grow(finding: Finding, text: str, final: bool) -> bool:
        """Whether more text could extend the span: it touches the end of what arrived, and
        is not a private key already closed by its END line."""
        start, end = span(finding)
        if final or end < len(text):
            return False
        return finding.label != "private_key" or PEM_END.search(text, start) is None

    def __repr__(self) -> str:
        return (
            f"StreamScanner(window={self._window}, max_token={self._max_token}, "
            f"holding {len(self._pending)} chars)"
        )
