"""SmolLM2's tokenizer and chat template, rebuilt from the GGUF's metadata alone.

The GGUF holds everything a byte-level BPE needs (``tokenizer.ggml.tokens``, ``.merges``,
``.token_type``) and names llama.cpp's pre-tokenizer (``tokenizer.ggml.pre`` = ``smollm``),
which splits text with two regexes one after the other: ``\\p{N}`` (every digit a piece of
its own), then GPT-2's. That is exactly HF ``tokenizers``' ``Digits(individual_digits=True)``
followed by ``ByteLevel(use_regex=True)``. Control tokens (``<|im_start|>``, ``<|im_end|>``,
...) are registered as special tokens so that they are recognised inside the rendered chat,
as llama.cpp does with ``special=True``. The prototype checked the result against llama.cpp:
22 of 22 varied strings (code, digits, CJK, emoji, CRLF, ChatML) give the same ids.

No network and no ``transformers``: ``tokenizers`` and ``jinja2`` only.
"""

from __future__ import annotations

from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

CONTROL = 3  # tokenizer.ggml.token_type of a control token (llama.cpp's LLAMA_TOKEN_TYPE_CONTROL)
# Tokens that end a turn: llama.cpp's llama_vocab_is_eog counts both for this vocabulary.
END_OF_TURN = ("<|im_end|>", "<|endoftext|>")


class GGUFTokenizer:
    """Text <-> token ids, and chat messages -> prompt text."""

    def __init__(self, meta: dict[str, Any]) -> None:
        if (meta.get("tokenizer.ggml.model"), meta.get("tokenizer.ggml.pre")) != ("gpt2", "smollm"):
            raise ValueError("only SmolLM2's tokenizer (byte-level BPE, 'smollm') is supported")
        self.tokens: list[str] = meta["tokenizer.ggml.tokens"]
        vocab = {token: i for i, token in enumerate(self.tokens)}
        merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
        tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
        tokenizer.decoder = decoders.ByteLevel()
        types: list[int] = meta["tokenizer.ggml.token_type"]
        self.control = frozenset(i for i, kind in enumerate(types) if kind == CONTROL)
        tokenizer.add_special_tokens(
            [AddedToken(self.tokens[i], special=True, normalized=False) for i in self.control]
        )
        self.hf = tokenizer
        self.end_of_turn = frozenset(vocab[t] for t in END_OF_TURN if t in vocab) | {
            int(meta["tokenizer.ggml.eos_token_id"])
        }
        self._bos = self.tokens[int(meta["tokenizer.ggml.bos_token_id"])]
        self._eos = self.tokens[int(meta["tokenizer.ggml.eos_token_id"])]
        # SmolLM2's template starts with <|im_start|> itself: the GGUF says add_bos_token false.
        if meta.get("tokenizer.ggml.add_bos_token"):
            raise ValueError("a tokenizer that adds a BOS token is not supported")
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        environment.globals["raise_exception"] = _raise
        self._template = environment.from_string(meta["tokenizer.chat_template"])

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def token_bytes(self, token: int) -> bytes:
        """The bytes a token stands for; a control token's are its spelling."""
        if token in self.control:
            return self.tokens[token].encode()
        return bytes(_BYTE_OF_CHAR[c] for c in self.tokens[token])

    def chat(self, messages: list[dict[str, str]]) -> str:
        """The prompt of ``messages`` (ChatML for SmolLM2), ready for the answer: the GGUF's
        own Jinja template, run in jinja2's sandbox because it is data from a package."""
        return self._template.render(
            messages=messages, add_generation_prompt=True, bos_token=self._bos, eos_token=self._eos
        )


def _raise(message: str) -> None:
    raise ValueError(message)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map, which byte-level BPE vocabularies
    are spelled in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars = printable[:]
    shifted = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + shifted)
            shifted += 1
    return dict(zip(printable, map(chr, chars), strict=True))


_BYTE_OF_CHAR = {c: b for b, c in _bytes_to_unicode().items()}
