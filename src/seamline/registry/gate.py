"""The release gate that alias moves consult.

The registry asks a :class:`ReleaseGate` whether a version has a passing eval run before it
moves a gated alias (``production`` by default). The eval harness provides the real gate;
until it is installed, :class:`NoEvalRunsGate` answers that no run is recorded, and a move
needs an audited override with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateSubject:
    """The version asking to be released."""

    project: str
    kind: str
    name: str
    version: int
    content_hash: str
    eval_set: str | None


class ReleaseGate(Protocol):
    def check(self, subject: GateSubject) -> GateVerdict: ...


class NoEvalRunsGate:
    """The gate while no eval harness is installed: nothing has passed."""

    def check(self, subject: GateSubject) -> GateVerdict:
        return GateVerdict(
            passed=False,
            reason=f"no eval run recorded for {subject.kind} {subject.name} v{subject.version}",
        )
