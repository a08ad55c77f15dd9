"""What every detector reports, and the one protocol a detector implements.

A finding names what was found, never the text it matched: findings go into events and
logs, and a detected secret must not travel with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from seamline.guards.embeddings import CallEmbeddings

# What a finding is about; a policy chooses its action per category.
INJECTION = "injection"
PII = "pii"
SECRET = "secret"
EXFILTRATION = "exfiltration"
LEAK = "leak"
MARKUP = "markup"
SCHEMA_MISMATCH = "schema"


@dataclass(frozen=True)
class Finding:
    detector: str  # the detector's name: "injection.rules", "pii", "secrets", ...
    category: str  # one of the categories above
    label: str  # what was found: a rule name or an entity type ("email", "aws_access_key")
    score: float  # 0-1: how sure the detector is (rules and validated patterns: 1.0)
    # The span in the text the detector was given, for redaction; None when the finding is
    # about the whole text (an injection found in its decoded or normalised form).
    start: int | None = None
    end: int | None = None


class Detector(Protocol):
    """A detector: pure, thread-safe, bounded in time for bounded input.

    ``untrusted`` says the text came from outside the conversation (a retrieved chunk, a tool
    result, anything the caller marks untrusted): a detector may be calibrated differently
    for it.
    """

    name: str

    def scan(self, text: str, *, untrusted: bool = False) -> list[Finding]: ...


class EmbeddingDetector(Protocol):
    """A detector that reads a text's MiniLM embeddings (``reads_embeddings`` is True): the
    engine hands it the call's :class:`~seamline.guards.embeddings.CallEmbeddings`, so that
    a text is embedded once per call whatever reads it."""

    name: str
    reads_embeddings: bool

    def scan(
        self, text: str, *, untrusted: bool = False, embeddings: CallEmbeddings | None = None
    ) -> list[Finding]: ...
