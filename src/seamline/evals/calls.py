"""How an eval run calls models: one asynchronous function, given by whoever runs it.

The CLI gives the gateway's own path (router, fallbacks, budgets, one event per call, so an
eval run's spend shows in ``seamline cost`` under the ``eval`` use case); a test gives the
gateway in front of a stub upstream; a library user can give anything that answers. The
runner never builds an HTTP client of its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

# The use cases a run's calls are recorded under.
MODEL_USE_CASE = "eval"
JUDGE_USE_CASE = "eval.judge"
PROBE_USE_CASE = "eval.probe"  # ``seamline evals watch`` asking whether an upstream changed
# Calls that evals make, never production's: left out of traces sampled into cases.
EVAL_USE_CASES = (MODEL_USE_CASE, JUDGE_USE_CASE, PROBE_USE_CASE)


@dataclass(frozen=True)
class Completion:
    """One model answer, with what it cost and which model really gave it."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    model_used: str | None = None  # the gateway's model (a fallback's, when one answered)
    # What the upstream says answered (``model`` in its response, e.g. gpt-4o-2024-08-06)
    # and its build (``system_fingerprint``): a change under the same name shows in these.
    upstream_model: str | None = None
    system_fingerprint: str | None = None
    kept: bool = False  # read back from a run's kept answers, not asked now

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        del record["kept"]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Completion:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in record.items() if k in known})


@dataclass(frozen=True)
class CallBound:
    """A call's prompt tokens, its cap on answer tokens, and its cost if it used them all
    (at the dearest price among the model's deployments and fallbacks)."""

    prompt_tokens: int
    completion_tokens: int
    most_usd: float


class ModelCall(Protocol):
    """Ask ``model`` with a chat ``body`` (OpenAI's format, without ``model``); raise on
    failure with a message fit for a report."""

    async def __call__(
        self, model: str, body: dict[str, Any], *, use_case: str
    ) -> Completion: ...  # pragma: no cover

    async def bound(self, model: str, body: dict[str, Any]) -> CallBound:
        """What the call can cost at most, for the estimate before a run and for
        ``--max-cost``."""
        ...  # pragma: no cover
