"""Output held to a JSON Schema, token by token, with llguidance.

Before every token llguidance computes the set of tokens that keep the output a valid
prefix of the grammar (a bitmask over the vocabulary); every other logit is set to -inf
and the answer is sampled as usual. The mask and its application cost ~0.5 ms per token,
against ~17 ms for the token itself (bench/local_chat_model.py, 2 shared AVX2 cores).
Grammars are llguidance's JSON form (a ``str``), made from a schema once per request on
the event loop (~1 ms); the vocabulary view llguidance needs is built once per model
(0.4-0.5 s) when the first constrained answer asks for it.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from llguidance import LLMatcher, LLTokenizer

from seamline.providers.smollm.tokenizer import GGUFTokenizer

# Compact JSON: no tokens spent on layout. With flexible whitespace SmolLM2 indents, and on
# the json_object request of tests/gateway/test_local_params.py gave both keys asked for at
# 0 of 6 seeds, against 4 of 6 compact.
_OPTIONS: Any = {"whitespace_flexible": False}
# SmolLM2 writes a digit per token and, asked for an integer, may write digits until the
# token limit ("population": 1112000000000...0, 80 tokens, seen at seeds 7 and 10 for the
# openai SDK's City example). llama.cpp's schema converter, used before, bounds integers to
# 16 digits; the same bound is set here where a schema sets none.
INTEGER_LIMIT = 10**16 - 1
# Keywords whose values are data, not schemas: an object there is left as it is.
_DATA = frozenset({"const", "enum", "default", "examples"})


class UnsupportedSchema(ValueError):
    """llguidance cannot enforce this schema (a keyword it does not implement, a regex with
    look-around, a remote ``$ref``, ...): the message says what."""


def schema_grammar(schema: Any) -> str:
    """The grammar of output valid under ``schema``. Raises :class:`UnsupportedSchema`
    rather than fall back to any JSON, which would let the schema go unmet."""
    try:
        bounded = json.dumps(_bounded(schema))
        grammar = LLMatcher.grammar_from_json_schema(bounded, defaults=_OPTIONS)
    except (TypeError, ValueError) as exc:
        raise UnsupportedSchema(str(exc)) from None
    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise UnsupportedSchema(error)
    return grammar


def _bounded(schema: Any) -> Any:
    """``schema`` with every integer given 16-digit bounds where it has none."""
    if isinstance(schema, list):
        return [_bounded(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {k: v if k in _DATA else _bounded(v) for k, v in schema.items()}
    kind = bounded.get("type")
    if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
        if "minimum" not in bounded and "exclusiveMinimum" not in bounded:
            bounded["minimum"] = -INTEGER_LIMIT
        if "maximum" not in bounded and "exclusiveMaximum" not in bounded:
            bounded["maximum"] = INTEGER_LIMIT
    return bounded


@cache
def any_object_grammar() -> str:
    """Any JSON object: ``response_format`` ``json_object``."""
    return schema_grammar({"type": "object"})


def vocabulary(tokenizer: GGUFTokenizer) -> LLTokenizer:
    """llguidance's view of the tokenizer, with the end-of-turn tokens as its EOS: allowed
    once the grammar accepts the output."""
    return LLTokenizer(
        tokenizer.hf.to_str(),
        n_vocab=len(tokenizer.tokens),
        eos_token=sorted(tokenizer.end_of_turn),
    )


class Constraint:
    """One answer's position in a grammar."""

    def __init__(self, vocabulary: LLTokenizer, grammar: str) -> None:
        self._matcher = LLMatcher(vocabulary, grammar, log_level=0)
        self._check()
        self._size = vocabulary.vocab_size
        self._mask = np.zeros((self._size + 31) // 32, dtype=np.int32)

    def restrict(self, logits: npt.NDArray[np.float32]) -> None:
        """Set the logits of the tokens the grammar forbids next to -inf, in place."""
        self._matcher.unsafe_compute_mask_ptr(self._mask.ctypes.data, self._mask.nbytes)
        allowed = np.unpackbits(self._mask.view(np.uint8), bitorder="little")[: logits.shape[0]]
        logits[allowed == 0] = -np.inf

    def accept(self, token: int) -> None:
        """Advance past ``token``, which :meth:`restrict` allowed."""
        self._matcher.consume_token(token)
        self._check()

    @property
    def complete(self) -> bool:
        """Nothing may follow: the output is a whole value of the grammar."""
        return self._matcher.is_stopped()

    def _check(self) -> None:
        if self._matcher.is_error():  # a bug, not the request's fault: the mask was applied
            raise RuntimeError(f"llguidance: {self._matcher.get_error()}")
