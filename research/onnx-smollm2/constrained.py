"""JSON-Schema-constrained decoding with llguidance over the GGUF-built tokenizer.

llguidance (PyPI wheels, abi3, ~3 MB) computes, before every token, the set of tokens that
keep the output a valid prefix of the grammar; we set every other logit to -inf and
sample as usual.  This replaces llama.cpp's GBNF grammars (response_format json_schema,
tool arguments) in the product.

    python constrained.py
"""

from __future__ import annotations

import json
import time
from typing import Any

import llguidance
import numpy as np
from llguidance import LLMatcher, LLTokenizer

from runtime import SmolLM, sample


def ll_tokenizer(lm: SmolLM) -> LLTokenizer:
    """llguidance's view of our tokenizer (built once: ~1 s)."""
    return LLTokenizer(lm.tok.tk.to_str(), n_vocab=lm.hp.n_vocab,
                       eos_token=sorted(lm.tok.eog_ids))


def schema_grammar(schema: dict[str, Any]) -> str:
    grammar = LLMatcher.grammar_from_json_schema(
        json.dumps(schema), defaults={"whitespace_flexible": False})
    err = LLMatcher.validate_grammar(grammar)
    if err:
        raise ValueError(f"schema not supported: {err}")
    return grammar


def generate_constrained(lm: SmolLM, lltok: LLTokenizer, prompt: list[int], grammar: str,
                         max_tokens: int = 256, temperature: float = 0.0,
                         seed: int | None = None) -> tuple[list[int], dict[str, float]]:
    """Tokens that follow ``grammar``; stops when the grammar is complete (EOS allowed and
    chosen, or no further bytes possible)."""
    matcher = LLMatcher(lltok, grammar, log_level=1)
    rng = np.random.default_rng(seed)
    nwords = (lm.hp.n_vocab + 31) // 32
    mask = np.zeros(nwords, dtype=np.int32)
    lm.reset()
    logits = lm.prefill(prompt)
    out: list[int] = []
    t_mask = 0.0
    for _ in range(max_tokens):
        t = time.perf_counter()
        matcher.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes)
        allowed = np.unpackbits(mask.view(np.uint8), bitorder="little")[: lm.hp.n_vocab]
        t_mask += time.perf_counter() - t
        logits = np.where(allowed.astype(bool), logits, -np.inf)
        tok = sample(logits, temperature, 1.0, rng)
        if tok in lm.tok.eog_ids:
            break
        if not matcher.consume_token(tok):
            raise RuntimeError(matcher.get_error())
        out.append(tok)
        if matcher.is_stopped():  # grammar complete: nothing else may follow
            break
        logits = lm.forward([tok])
    if matcher.is_error():
        raise RuntimeError(matcher.get_error())
    return out, {"mask_ms_per_token": 1000 * t_mask / max(len(out), 1)}


if __name__ == "__main__":
    from compare import model_path

    lm = SmolLM(model_path())
    t = time.perf_counter()
    lltok = ll_tokenizer(lm)
    print(f"llguidance tokenizer built in {time.perf_counter() - t:.2f}s")
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 30},
                        "maxItems": 3},
        },
        "required": ["name", "age", "hobbies"],
        "additionalProperties": False,
    }
    msgs = [{"role": "user", "content":
             "Describe a fictional person as JSON with name, age and hobbies."}]
    prompt = lm.tok.encode(lm.tok.apply_chat_template(msgs))
    t = time.perf_counter()
    ids, stats = generate_constrained(lm, lltok, prompt, schema_grammar(schema))
    dt = time.perf_counter() - t
    text = lm.tok.decode(ids)
    print(repr(text))
    obj = json.loads(text)
    try:
        import jsonschema

        jsonschema.validate(obj, schema)
        print("parses and validates against the schema:", obj)
    except ImportError:
        print("parses:", obj)
    print(f"{len(ids)} tokens in {dt:.2f}s; mask {stats['mask_ms_per_token']:.2f} ms/token;"
          f" llguidance {llguidance.__version__ if hasattr(llguidance, '__version__') else ''}")
