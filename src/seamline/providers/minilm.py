"""The embedded all-MiniLM-L6-v2 as one class: an ONNX session and its tokenizer.

``local-minilm`` embeddings (one mean-pooled vector per text, truncated to MiniLM's 256
tokens) and the guards' learned injection detector (token states over windows of a text)
read the same model through it; the tokenizer's own truncation and padding are off, so each
caller decides how to cut a text into what the model reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seamline.providers.base import UpstreamError

# Tokens per sequence, [CLS] and [SEP] included: all-MiniLM-L6-v2's max_seq_length (its
# position embeddings were trained to it).
MAX_TOKENS = 256
DIMENSIONS = 384


class MiniLM:
    """One ONNX session and tokenizer; ``run`` and ``encode`` are safe to call from several
    threads at once (onnxruntime's and tokenizers' calls are)."""

    def __init__(self, model: Path, tokenizer: Path, threads: int) -> None:
        import numpy as np
        import onnxruntime
        from tokenizers import Tokenizer

        self.np = np
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        cls, sep = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")
        if cls is None or sep is None:
            raise UpstreamError(f"{tokenizer} has no [CLS] or [SEP] token", status=500)
        self.cls: int = cls
        self.sep: int = sep

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids, special tokens not added, nothing cut."""
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def states(self, sequences: list[list[int]]) -> Any:
        """The last layer's token states of ``sequences`` (each already framed by [CLS] and
        [SEP]), run as one zero-padded batch: an array (sequences, longest, 384)."""
        np = self.np
        longest = max(len(s) for s in sequences)
        ids = np.zeros((len(sequences), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, sequence in enumerate(sequences):
            ids[i, : len(sequence)] = sequence
            mask[i, : len(sequence)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self._session.run(None, feeds)[0]

    def embed(self, texts: list[str]) -> tuple[Any, int]:
        """``local-minilm``'s vectors: each text's first :data:`MAX_TOKENS` tokens,
        mean-pooled and L2-normalised (a numpy array, a row each), and the tokens read."""
        np = self.np
        width = MAX_TOKENS - 2
        sequences = [[self.cls, *ids[:width], self.sep] for ids in self.token_ids(texts)]
        hidden = self.states(sequences)
        lengths = np.array([len(s) for s in sequences])
        mask = np.arange(hidden.shape[1])[None, :] < lengths[:, None]
        vectors = (hidden * mask[..., None]).sum(axis=1) / lengths[:, None]
        return normalised(vectors), int(lengths.sum())


def normalised(vectors: Any) -> Any:
    """Rows scaled to unit length (a zero row stays zero)."""
    import numpy as np

    norms: Any = np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return vectors / norms
