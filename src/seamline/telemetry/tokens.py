"""Token counts when the upstream reports none (or a stream is cut before its usage chunk).

OpenAI-family models are counted exactly with ``bpe-openai`` (tiktoken-compatible, tables
inside the package: plain ``tiktoken`` downloads its tables at run time, which seamline does
not allow). Other models fall back to a marked estimate of 4 characters per token, the
usual rule of thumb for English (OpenAI's tokenizer guide); the event says when a count is
an estimate.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, Protocol

import bpe_openai

CHARS_PER_TOKEN_ESTIMATE = 4
# OpenAI's chat format adds about 3 tokens per message and 3 to prime the reply
# (OpenAI cookbook, "How to count tokens with tiktoken").
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMER = 3


class Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


@cache
def encoder_for(model: str) -> Encoder | None:
    try:
        return bpe_openai.encoding_for_model(model)  # type: ignore[no-any-return]
    except Exception:  # an unknown model: no exact tokenizer
        return None


def count_text(model: str, text: str, *, upper_bound: bool = False) -> tuple[int, bool]:
    """(tokens, estimated). Without an exact tokenizer the estimate is 4 characters a token,
    or, with ``upper_bound`` (budgets reserving the most a call can cost), one a character:
    no tokenizer in use makes more tokens than characters of ordinary text."""
    encoder = encoder_for(model)
    if encoder is None:
        if not text:
            return 0, True
        return (len(text) if upper_bound else max(1, len(text) // CHARS_PER_TOKEN_ESTIMATE)), True
    return len(encoder.encode(text)), False


def count_messages(
    model: str, messages: Iterable[dict[str, Any]], *, upper_bound: bool = False
) -> tuple[int, bool]:
    total, estimated = TOKENS_REPLY_PRIMER, False
    for message in messages:
        total += TOKENS_PER_MESSAGE
        content = message.get("content")
        text = message_text(content)
        tokens, guessed = count_text(model, text, upper_bound=upper_bound)
        total += tokens
        estimated = estimated or guessed
    return total, estimated


def message_text(content: Any) -> str:
    """A chat message's text: its string content, or its parts' text joined."""
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)
