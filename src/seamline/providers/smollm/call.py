"""What one call asks of the runtime, in plain Python.

Kept apart from the modules that import numpy, onnxruntime and llguidance (the ``[local]``
extra), so that the gateway can read a request into these without them installed.
"""

from __future__ import annotations

from dataclasses import dataclass


class Stopped(Exception):
    """The generation was stopped: its caller went away, or the provider is closing."""


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen, as OpenAI defines the parameters."""

    temperature: float  # 0: always the most likely token
    top_p: float
    presence_penalty: float
    frequency_penalty: float
    seed: int | None  # None: a fresh random answer each time
