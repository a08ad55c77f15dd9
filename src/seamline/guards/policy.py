"""Guard policies: which detectors run on which content, at what threshold, with what action.

A policy is a ``guard_policy`` artefact (YAML, pushed and released like a prompt); this
module is its schema, checked at push so that a typo (an unknown detector, a threshold of 8)
is refused before it can reach traffic. The registry imports it; it imports nothing of the
registry, so the guards stay a library below it.

```yaml
kind: guard_policy
name: default
mode: enforce            # or shadow: evaluate and record, enforce nothing
on_error: block          # content a detector could not inspect (too long, undecodable)
refusal: null            # text answered instead of a 400 when a call is blocked
rules:
  - detector: injection.rules
    content: [user, tool, untrusted]
    threshold: 0.8
    action: block
  - detector: secrets
    content: [user, tool, untrusted, output]
    action: redact
  - detector: injection.judge   # a model call per text: for teams that accept its latency
    model: gpt-4o-mini
    content: [untrusted]
    threshold: 0.8
    action: flag
```
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from seamline.guards.detectors import ACTIONS_BY_DETECTOR, JUDGE, known_detectors
from seamline.guards.judge import DEFAULT_TIMEOUT_S

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
# What a rule can look at. ``untrusted`` is text from outside the conversation: prompt
# variables declared ``untrusted: true`` (retrieved chunks, web pages, emails) and anything a
# caller marks so; ``tool`` is tool results; ``output`` is the model's answer.
ContentKind = Literal["system", "user", "assistant", "tool", "untrusted", "output"]
INPUT_KINDS = frozenset({"system", "user", "assistant", "tool", "untrusted"})
Action = Literal["block", "redact", "pseudonymise", "flag"]
# The most text a policy inspects per piece of content by default: beyond it, ``on_error``
# applies (a detector bounded in time needs bounded input).
DEFAULT_MAX_CHARS = 200_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardRule(_Strict):
    detector: str
    # What it looks at (not ``on``: YAML 1.1 reads an ``on`` key as the boolean true).
    content: Annotated[list[ContentKind], Field(min_length=1)]
    action: Action = "flag"
    # A finding at or above it triggers the action (rule detectors score 0.6-1.0).
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    labels: list[str] = Field(default_factory=list)  # only these labels; empty: all
    # For ``exfiltration``: hosts that links and images may point to.
    allowed_hosts: list[str] = Field(default_factory=list)
    # For ``schema``: ask the model once more, with the validation error, before acting.
    reask: bool = False
    # For ``injection.judge``: the model asked (any the gateway routes), and how long it has.
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=120)] = DEFAULT_TIMEOUT_S

    @model_validator(mode="after")
    def _known(self) -> GuardRule:
        known = known_detectors()
        if self.detector not in known:
            raise ValueError(
                f"unknown detector {self.detector!r} (known: {', '.join(sorted(known))})"
            )
        allowed = ACTIONS_BY_DETECTOR.get(self.detector)
        if allowed is not None and self.action not in allowed:
            raise ValueError(
                f"detector {self.detector!r} cannot {self.action} "
                f"(it can: {', '.join(sorted(allowed))})"
            )
        if self.reask and self.detector != "schema":
            raise ValueError("reask applies to the schema detector only")
        if (self.model is not None) != (self.detector == JUDGE):
            raise ValueError(f"{JUDGE} needs a 'model' to ask, and only it takes one")
        if self.detector == JUDGE and "output" in self.content:
            raise ValueError(f"{JUDGE} reads what goes upstream, not the answer")
        if self.action == "pseudonymise" and "output" in self.content:
            raise ValueError("pseudonymise applies to input: placeholders are restored in output")
        return self


class GuardPolicySpec(_Strict):
    kind: Literal["guard_policy"] = "guard_policy"
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    mode: Literal["enforce", "shadow"] = "enforce"
    on_error: Literal["block", "flag"] = "block"
    refusal: Annotated[str, Field(max_length=2000)] | None = None
    max_chars: Annotated[int, Field(gt=0, le=10_000_000)] = DEFAULT_MAX_CHARS
    rules: list[GuardRule] = Field(default_factory=list)
    changelog: str = ""


def default_policy() -> GuardPolicySpec:
    """The policy seamline ships (``default_policy.yaml``), for projects without their own."""
    text = resources.files("seamline.guards").joinpath("default_policy.yaml").read_text()
    return GuardPolicySpec.model_validate(yaml.safe_load(text))
