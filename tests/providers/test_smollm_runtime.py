"""The ONNX Runtime SmolLM2 (seamline.providers.smollm) on the real GGUF: tokenizer, decoder,
sampling, stop strings, limits, grammars and the KV cache reuse that ``n`` answers rely on.
The model is loaded once for the module (~1 s)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable

import jsonschema
import numpy as np
import pytest

from seamline.providers.local_models import smollm2_gguf

GGUF = smollm2_gguf()
pytestmark = pytest.mark.skipif(
    GGUF is None and not os.environ.get("CI"),
    reason="the embedded models need 'pip install -e .[local]'",
)
if GGUF is not None:
    from llguidance import LLMatcher

    from seamline.providers.smollm.call import Sampling, Stopped
    from seamline.providers.smollm.generate import Generation, Piece
    from seamline.providers.smollm.grammar import schema_grammar
    from seamline.providers.smollm.model import Model
    from seamline.providers.smollm.tokenizer import GGUFTokenizer

COUNTING = [{"role": "user", "content": "Write the numbers from 1 to 1000, one per line."}]
GREEDY = (0.0, 1.0, 0.0, 0.0, None)
# Strings whose llama.cpp token counts the prototype recorded (research/onnx-smollm2/
# compare_output.txt, tokens identical to llama.cpp's): digits, CJK, emoji, code, ChatML.
LLAMA_CPP_COUNTS = {
    "Numbers: 1234567890, 3.14159, -42, 1e-9, 0xFF, 2024-06-01": 49,
    "日本語のテキストと中文文本": 21,
    "Emoji 😀🎉👍🏽 and flags 🇫🇷": 21,
    "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n": 28,
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF": 15,
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n": 37,
    "Text with <|im_end|> in the middle and <|endoftext|> too": 11,
}


@pytest.fixture(scope="module")
def model() -> Model:
    assert GGUF is not None
    return Model(GGUF, context=8192, threads=2)


@pytest.fixture
def answer(model: Model) -> Callable[..., tuple[list[Piece], int]]:
    """Pieces and token count of one answer to ``messages`` (counting, by default)."""

    def run(
        *sampling: float | int | None,
        messages: list[dict[str, str]] = COUNTING,
        max_tokens: int = 24,
        stop: tuple[str, ...] = (),
        grammar: str | None = None,
        top_logprobs: int | None = None,
        stopped: threading.Event | None = None,
    ) -> tuple[list[Piece], int]:
        tokenizer, decoder = model.tokenizer, model.decoder
        prompt = tokenizer.encode(tokenizer.chat(messages))
        decoder.truncate(0)
        flag = stopped or threading.Event()
        logits = decoder.prefill(prompt, flag)
        generation = Generation(
            decoder,
            tokenizer,
            logits,
            Sampling(*(sampling or GREEDY)),  # type: ignore[arg-type]
            max_tokens=max_tokens,
            stop=list(stop),
            constraint=None if grammar is None else model.constraint(grammar),
            top_logprobs=top_logprobs,
            stopped=flag,
            answer=0,
        )
        pieces = list(generation)
        return pieces, generation.tokens

    return run


def _text(pieces: list[Piece]) -> str:
    return "".join(p.text for p in pieces)


@pytest.mark.parametrize("text", [*LLAMA_CPP_COUNTS, "   \n\n   \t  ", "x" * 50 + " " + "ab" * 30])
def test_the_tokenizer_round_trips_varied_text(model: Model, text: str) -> None:
    tokenizer = model.tokenizer
    ids = tokenizer.encode(text)
    assert b"".join(tokenizer.token_bytes(i) for i in ids).decode() == text
    if text in LLAMA_CPP_COUNTS:
        assert len(ids) == LLAMA_CPP_COUNTS[text]


def test_the_tokenizer_splits_digits_and_keeps_chatml_specials_whole(model: Model) -> None:
    tokenizer: GGUFTokenizer = model.tokenizer
    pieces = [tokenizer.token_bytes(i).decode() for i in tokenizer.encode("In 2024, 365 days")]
    assert [p for p in pieces if any(c.isdigit() for c in p)] == [*"2024", *"365"]
    im_start, im_end = tokenizer.encode("<|im_start|>"), tokenizer.encode("<|im_end|>")
    assert (im_start, im_end) == ([1], [2])
    assert 2 in tokenizer.end_of_turn
    prompt = tokenizer.chat([{"role": "user", "content": "Hi"}])
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")


def test_temperature_zero_is_deterministic_and_a_seed_reproduces_a_sample(
    answer: Callable[..., tuple[list[Piece], int]],
) -> None:
    ask = [{"role": "user", "content": "Tell me a short story about a cat."}]
    assert _text(answer(messages=ask)[0]) == _text(answer(messages=ask)[0])
    first = _text(answer(1.0, 1.0, 0.0, 0.0, 11, messages=ask)[0])
    assert first == _text(answer(1.0, 1.0, 0.0, 0.0, 11, messages=ask)[0])
    others = {_text(answer(1.0, 1.0, 0.0, 0.0, seed, messages=ask)[0]) for seed in (12, 13)}
    assert first not in others


def test_a_stop_string_ends_the_answer_without_being_emitted(
    answer: Callable[..., tuple[list[Piece], int]],
) -> None:
    full = _text(answer()[0])
    stop = full[3:7]  # spans tokens: the counting answer is one digit or newline a token
    assert len(stop) == 4 and stop in full
    pieces, _ = answer(stop=("never said", stop))
    assert _text(pieces) == full[: full.find(stop)]
    assert pieces[-1].finish == "stop"
    assert all(p.finish is None for p in pieces[:-1])


def test_max_tokens_ends_with_length_after_exactly_that_many_tokens(
    answer: Callable[..., tuple[list[Piece], int]],
) -> None:
    pieces, tokens = answer(max_tokens=7, top_logprobs=0)
    assert pieces[-1].finish == "length" and tokens == 7
    assert len([lp for p in pieces for lp in p.logprobs]) == 7


def test_logprobs_are_the_models_own_with_the_chosen_token_first_at_temperature_zero(
    answer: Callable[..., tuple[list[Piece], int]],
) -> None:
    pieces, tokens = answer(max_tokens=5, top_logprobs=3)
    logprobs = [lp for p in pieces for lp in p.logprobs]
    assert len(logprobs) == tokens == 5
    for lp in logprobs:
        assert len(lp.top) == 3 and lp.top[0] == (lp.token, lp.logprob)
        assert 0.0 >= lp.top[0][1] >= lp.top[1][1] >= lp.top[2][1]
        assert sum(np.exp(v) for _, v in lp.top) <= 1.0 + 1e-6


def test_a_json_schema_grammar_gives_json_that_validates(
    answer: Callable[..., tuple[list[Piece], int]],
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "hobbies": {
                "type": "array",
                "items": {"type": "string", "maxLength": 20},
                "minItems": 1,
                "maxItems": 3,
            },
        },
        "required": ["name", "age", "hobbies"],
        "additionalProperties": False,
    }
    ask = [{"role": "user", "content": "Describe a fictional person as JSON."}]
    pieces, _ = answer(
        0.7, 0.95, 0.0, 0.0, 3, messages=ask, max_tokens=120, grammar=schema_grammar(schema)
    )
    assert pieces[-1].finish == "stop"
    jsonschema.validate(json.loads(_text(pieces)), schema)


def test_characters_split_over_tokens_come_out_whole(
    model: Model, answer: Callable[..., tuple[list[Piece], int]]
) -> None:
    flags = "🇫🇷🇯🇵"  # 16 bytes, more than one token each
    assert len(model.tokenizer.encode(flags)) > 2
    grammar = LLMatcher.grammar_from_regex(flags)
    pieces, tokens = answer(max_tokens=40, grammar=grammar)
    assert _text(pieces) == flags and tokens > 2
    assert all("\ufffd" not in p.text for p in pieces)


def test_the_stop_flag_is_checked_before_every_token(
    answer: Callable[..., tuple[list[Piece], int]],
) -> None:
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(Stopped):
        answer(stopped=stopped)


def test_a_prompt_prefix_reused_after_truncate_gives_a_fresh_prefills_logits(
    model: Model,
) -> None:
    tokenizer, decoder, flag = model.tokenizer, model.decoder, threading.Event()
    prompt = tokenizer.encode(tokenizer.chat(COUNTING))
    first = prompt + tokenizer.encode("1\n2\n3\n4")
    second = prompt + tokenizer.encode("Sure, here they are: 1")
    decoder.truncate(0)
    fresh = decoder.prefill(second, flag)
    decoder.truncate(0)
    decoder.prefill(first, flag)
    decoder.forward([5, 6, 7])  # rows past the prompt that the next sequence overwrites
    decoder.truncate(len(prompt))
    reused = decoder.forward(second[len(prompt) :])
    assert decoder.length == len(second)
    np.testing.assert_allclose(reused, fresh, atol=1e-5)
    assert int(np.argmax(reused)) == int(np.argmax(fresh))


def test_the_kv_cache_grows_past_its_first_capacity_without_losing_rows(model: Model) -> None:
    tokenizer, decoder, flag = model.tokenizer, model.decoder, threading.Event()
    long = tokenizer.encode(tokenizer.chat([{"role": "user", "content": "word " * 600}]))
    assert len(long) > 600
    decoder.truncate(0)
    decoder.prefill(long[:500], flag)
    assert decoder.capacity < len(long)  # the short prompts before left it at its first size
    grown = decoder.prefill(long[500:], flag)  # copies the 500 rows into larger buffers
    assert decoder.capacity >= len(long)
    decoder.truncate(0)
    decoder.prefill(long[:500], flag)
    np.testing.assert_allclose(decoder.prefill(long[500:], flag), grown, atol=1e-5)


def test_integers_get_a_16_digit_bound_where_the_schema_sets_none(model: Model) -> None:
    digit = model.tokenizer.encode("7")[0]
    unbounded = model.constraint(schema_grammar({"type": "integer"}))
    for _ in range(16):
        unbounded.accept(digit)
    with pytest.raises(RuntimeError):
        unbounded.accept(digit)
    own_bound = model.constraint(schema_grammar({"type": "integer", "minimum": 0}))
    with pytest.raises(RuntimeError):
        own_bound.accept(model.tokenizer.encode("-")[0])
