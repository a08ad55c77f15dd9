"""The decoder graph in an ONNX Runtime session, and the KV cache of one sequence.

The cache lives in numpy buffers of a fixed capacity, one key and one value buffer per
layer, each bound as *both* the ``past_*`` input and the ``present_*`` output
(GroupQueryAttention's past-present buffer sharing): the op writes the new rows in place and
reads ``seqlens_k + 1`` rows, so a step copies nothing. Letting ONNX Runtime concatenate past
and new rows into fresh tensors instead copies the whole cache on every token. The capacity
starts at 512 tokens and doubles (one copy) when a sequence outgrows it: a full 8192-token
cache takes 377 MB, which a short chat should not pay.

:meth:`Decoder.truncate` rewinds the sequence to a prefix (the rows after it are simply
overwritten later): the ``n`` answers of one request share the prompt's rows, so each
further answer costs only its own tokens.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from seamline.providers.smollm.call import Stopped
from seamline.providers.smollm.graph import Config, Graph

F32 = npt.NDArray[np.float32]
FIRST_CAPACITY = 512
# A prompt is evaluated in chunks of this many tokens: GroupQueryAttention's scores take
# heads x chunk x total floats, 150 MB for a chunk at the end of an 8192-token context
# against 2.4 GB for the whole context at once.
PREFILL_CHUNK = 512


class Decoder:
    """``forward`` appends tokens to the sequence and returns the next token's logits.
    Not thread-safe: one generation at a time (the provider's worker thread)."""

    def __init__(self, graph: Graph, config: Config, *, context: int, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        # Spinning threads wait for work on a busy core: 40 tok/s against 77 without, on 2
        # shared cores (research/onnx-smollm2/bench_output.txt, ort_spin).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        names = list(graph.weights)
        # The session reads the large weights from our arrays (OrtValues borrow them: they
        # must outlive the session) instead of a ~100 MB protobuf copy of them.
        options.add_external_initializers(
            names, [ort.OrtValue.ortvalue_from_numpy(graph.weights[n]) for n in names]
        )
        self._weights = graph.weights
        self.session = ort.InferenceSession(
            graph.model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.config = config
        self.context = context
        self.length = 0  # tokens in the cache
        self._logits = np.empty((1, 1, config.n_vocab), dtype=np.float32)
        self._caches: dict[str, F32] = {}
        self._binding: Any = None
        self._allocate(FIRST_CAPACITY)

    @property
    def capacity(self) -> int:
        return int(next(iter(self._caches.values())).shape[2])

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` tokens of the sequence."""
        self.length = min(self.length, length)

    def prefill(self, ids: list[int], stopped: threading.Event) -> F32:
        """Append a prompt, chunk by chunk; the logits after its last token. Raises
        :class:`Stopped` when ``stopped`` is set between two chunks: a full context takes
        ~20 s, too long to finish for a caller that went away."""
        chunks = [ids[start : start + PREFILL_CHUNK] for start in range(0, len(ids), PREFILL_CHUNK)]
        for chunk in chunks[:-1]:
            self.forward(chunk)
            if stopped.is_set():
                raise Stopped
        return self.forward(chunks[-1])

    def forward(self, ids: list[int]) -> F32:
        """Append ``ids``; the logits [vocab] after the last of them (a copy)."""
        total = self.length + len(ids)
        if total > self.context:
            raise ValueError(f"{total} tokens exceed the context of {self.context}")
        if total > self.capacity:
            self._allocate(min(self.context, max(total, 2 * self.capacity)))
        binding = self._binding
        binding.bind_cpu_input("input_ids", np.array([ids], dtype=np.int64))
        binding.bind_cpu_input("seqlens_k", np.array([total - 1], dtype=np.int32))
        binding.bind_cpu_input("total_sequence_length", np.array(total, dtype=np.int32))
        self.session.run_with_iobinding(binding)
        self.length = total
        return self._logits.reshape(-1).copy()

    def _allocate(self, capacity: int) -> None:
        """(Re)allocate the KV buffers with ``capacity`` rows, keep the cached rows, and bind
        the buffers as both inputs and outputs."""
        shape = (1, self.config.n_head_kv, capacity, self.config.head_dim)
        previous = self._caches
        self._caches = {}
        binding = self.session.io_binding()
        for i in range(self.config.n_layer):
            for kind in ("key", "value"):
                name = f"{kind}_{i}"
                cache = np.zeros(shape, dtype=np.float32)
                if name in previous:
                    cache[:, :, : self.length] = previous[name][:, :, : self.length]
                self._caches[name] = cache
                value = ort.OrtValue.ortvalue_from_numpy(cache)
                binding.bind_ortvalue_input(f"past_{name}", value)
                binding.bind_ortvalue_output(f"present_{name}", value)
        binding.bind_output(
            "logits", "cpu", 0, np.float32, list(self._logits.shape), self._logits.ctypes.data
        )
        self._binding = binding
