"""``local-minilm``: an OpenAI embeddings request's options, honoured or refused.

* ``input`` as token ids (``[9906, 1917]`` or ``[[9906, 1917], ...]``, what LangChain's
  ``OpenAIEmbeddings`` sends by default) is decoded to text with OpenAI's ``cl100k_base``
  tokenizer, the one such clients encode with (tiktoken's fallback for a model it does not
  know), and then embedded as that text: MiniLM has its own vocabulary.
* ``dimensions`` below 384 keeps the first ``dimensions`` values and normalises them to unit
  length again, as OpenAI's text-embedding-3 models shorten theirs; above 384 is refused.
* ``encoding_format: "base64"`` answers each vector as base64 of its little-endian float32
  bytes, which the openai SDK decodes with ``numpy.frombuffer(..., dtype="float32")``.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from seamline.core.errors import InvalidInput
from seamline.providers.minilm import DIMENSIONS as MINILM_DIMENSIONS
from seamline.providers.minilm import normalised

TOKEN_ENCODING = "cl100k_base"


@cache
def _openai_tokenizer() -> Any:
    import bpe_openai

    return bpe_openai.get_encoding(TOKEN_ENCODING)


def embedding_texts(raw: Any) -> list[str]:
    """The texts to embed: strings as they are, token-id arrays decoded."""
    if isinstance(raw, str):
        return [raw]
    items = list(raw or [])
    if items and all(_is_token_id(t) for t in items):
        return [_decode(items, "input")]
    return [
        item if isinstance(item, str) else _decode(item, f"input[{index}]")
        for index, item in enumerate(items)
    ]


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode(ids: Any, where: str) -> str:
    if not isinstance(ids, list) or not all(_is_token_id(t) for t in ids):
        raise InvalidInput(f"'{where}' must be a string or an array of token ids", param="input")
    try:
        return str(_openai_tokenizer().decode(ids))
    except Exception as exc:  # an id outside the vocabulary
        raise InvalidInput(
            f"'{where}' holds token ids that {TOKEN_ENCODING} cannot decode: {exc}",
            param="input",
        ) from None


def embedding_options(body: dict[str, Any]) -> tuple[int | None, str]:
    """``dimensions`` (None: all of them) and ``encoding_format``, checked."""
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        not _is_token_id(dimensions) or not 0 < dimensions <= MINILM_DIMENSIONS
    ):
        raise InvalidInput(
            f"'dimensions' must be an integer from 1 to {MINILM_DIMENSIONS} for local-minilm",
            param="dimensions",
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidInput("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    return dimensions, encoding


def shaped(vectors: Any, dimensions: int | None, encoding: str) -> list[Any]:
    """Unit-length ``vectors`` (a numpy array, one row each) cut to ``dimensions`` and
    renormalised, as floats or base64."""

    if dimensions is not None and dimensions < vectors.shape[1]:
        vectors = normalised(vectors[:, :dimensions])
    if encoding == "base64":
        raw = vectors.astype("<f4")
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in raw]
    return [row.tolist() for row in vectors]
