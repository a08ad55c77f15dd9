"""SmolLM2's tokenizer and chat template, rebuilt from the GGUF file alone.

The GGUF holds everything a byte-level BPE needs (``tokenizer.ggml.tokens``, ``.merges``,
``.token_type``) plus the name of llama.cpp's pre-tokenizer (``tokenizer.ggml.pre`` =
``"smollm"``).  llama.cpp's ``llama-vocab.cpp`` splits text for "smollm" with two regexes,
applied one after the other:

    1. ``\\p{N}``                       -- every digit is its own piece
    2. the GPT-2 regex                  -- 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+|
                                           ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)

which is exactly HF ``tokenizers``' ``Digits(individual_digits=True)`` followed by
``ByteLevel(use_regex=True)`` (whose regex is GPT-2's plus a trailing ``|\\s+``; text the
llama.cpp regex leaves unmatched becomes a piece of its own there too, so the splits agree).
Control tokens (token_type 3: ``<|im_start|>``, ``<|im_end|>``, ...) are registered as special
tokens, so they are recognised inside text -- as llama.cpp does with ``special=True``.

No network, no ``transformers``: only ``tokenizers`` and ``jinja2`` (+ the GGUF metadata,
read by gguf_lite.GGUFFile).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

# GGUF token types (llama.cpp's llama_token_type)
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 2, 3, 4


class GGUFTokenizer:
    """Byte-level BPE tokenizer + chat template, built from GGUF metadata (a dict)."""

    def __init__(self, meta: dict[str, Any]) -> None:
        model = meta.get("tokenizer.ggml.model")
        pre = meta.get("tokenizer.ggml.pre")
        if model != "gpt2" or pre not in ("smollm", "gpt2"):
            raise ValueError(f"unsupported tokenizer: model={model!r} pre={pre!r}")
        tokens: list[str] = meta.get("tokenizer.ggml.tokens")
        types: list[int] = meta.get("tokenizer.ggml.token_type")
        merges: list[str] = meta.get("tokenizer.ggml.merges")
        self.tokens = tokens
        self.vocab = {t: i for i, t in enumerate(tokens)}
        bpe = models.BPE(
            vocab=self.vocab,
            merges=[tuple(m.split(" ", 1)) for m in merges],
            fuse_unk=False,
            byte_fallback=False,
        )
        tok = Tokenizer(bpe)
        steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        if pre == "smollm":
            steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
        tok.decoder = decoders.ByteLevel()
        # Control / user-defined tokens are matched whole in the text (llama.cpp special=True).
        specials = [i for i, t in enumerate(types) if t in (TOKEN_CONTROL, TOKEN_USER_DEFINED)]
        tok.add_special_tokens(
            [AddedToken(tokens[i], special=True, normalized=False) for i in specials]
        )
        self.special_ids = set(specials)
        self.tk = tok

        self.bos_id = meta.get("tokenizer.ggml.bos_token_id")
        self.eos_id = meta.get("tokenizer.ggml.eos_token_id")
        self.add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False))
        self.chat_template: str | None = meta.get("tokenizer.chat_template")
        # End-of-generation ids: eos plus "<|im_end|>"/"<|endoftext|>" when present
        # (llama.cpp's llama_vocab_is_eog treats both as end of generation for this model).
        self.eog_ids = {self.eos_id} | {
            self.vocab[t] for t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>") if t in self.vocab
        }
        self._template = None

    # -- text <-> ids ---------------------------------------------------------------------

    def encode(self, text: str, *, add_bos: bool | None = None) -> list[int]:
        ids = self.tk.encode(text, add_special_tokens=False).ids
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            ids = [self.bos_id] + ids
        return ids

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        return self.tk.decode(list(ids), skip_special_tokens=skip_special)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (byte-level BPE: each char stands for one byte)."""
        if token_id in self.special_ids:
            return self.tokens[token_id].encode("utf-8")
        return bytes(_BYTE_DECODER[c] for c in self.tokens[token_id])

    # -- chat template --------------------------------------------------------------------

    def apply_chat_template(
        self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True
    ) -> str:
        """Render ``messages`` with the GGUF's Jinja template (ChatML for SmolLM2)."""
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = _raise
            self._template = env.from_string(self.chat_template or _CHATML)
        return self._template.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.tokens[self.bos_id],
            eos_token=self.tokens[self.eos_id],
        )


def _raise(msg: str) -> None:
    raise ValueError(msg)


_CHATML = (
    "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-char map used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}
