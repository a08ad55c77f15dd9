"""Prices in USD per million tokens, and the cost of a call.

The shipped table (``prices.toml`` beside this file) names its source and the date it was
read; configuration (``[[models]]`` ``prices``, or a ``model`` artefact) overrides it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PRICES_FILE = Path(__file__).with_name("prices.toml")
PER_TOKEN = 1 / 1_000_000


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached_input: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """Cached prompt tokens are billed at the cached rate (the input rate when none)."""
        cached_rate = self.input if self.cached_input is None else self.cached_input
        uncached = max(prompt_tokens - cached_tokens, 0)
        return (
            uncached * self.input + cached_tokens * cached_rate + completion_tokens * self.output
        ) * PER_TOKEN


FREE = Price(0.0, 0.0, 0.0)


@cache
def shipped_prices() -> dict[str, Price]:
    data = tomllib.loads(PRICES_FILE.read_text())
    return {
        name: Price(entry["input"], entry["output"], entry.get("cached_input"))
        for name, entry in data["models"].items()
    }


def shipped_price(upstream_model: str) -> Price | None:
    """The shipped price of a model, matching dated snapshots to their family
    (``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``)."""
    table = shipped_prices()
    if upstream_model in table:
        return table[upstream_model]
    family = max(
        (name for name in table if upstream_model.startswith(name + "-")), key=len, default=None
    )
    return table[family] if family else None
