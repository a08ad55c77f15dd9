"""SmolLM2-135M-Instruct on ONNX Runtime (CPU), straight from the shipped GGUF file.

No torch, no download, no file written: the GGUF is read (gguf_lite.py, numpy only), its
4-bit weights are *repacked* (not re-quantized) into ONNX Runtime's ``MatMulNBits`` layout,
a decoder graph is built in memory with the ``onnx`` helper API and handed to
``onnxruntime.InferenceSession``.

Weights (what llama.cpp's file holds, and how each is expressed here)
--------------------------------------------------------------------
* ``blk.N.attn_{q,k,v,output}``, ``blk.N.ffn_{gate,up,down}``: **Q4_1** -- per block of 32
  weights along K: fp16 scale ``d``, fp16 minimum ``m``, 32 4-bit codes ``q``; ``w = d*q + m``.
  ``MatMulNBits`` (com.microsoft, bits=4, block_size=32) dequantizes ``(q - zp) * scale``.
  Float zero points (``zp = -m/d``) would express Q4_1 directly, but ONNX Runtime's CPU
  kernel then dequantizes the whole matrix on every call (~50x slower).  So the default
  ("exact") mode keeps the codes and ``d``, uses the *integer* zero point
  ``z = round(-m/d)`` (fast int8 kernel) and adds the small remainder ``r = m + d*z`` back
  as ``blocksum(x) @ r.T`` (ReduceSum + a [nb x N] MatMul + Add): ``d*(q-z) + r == d*q + m``
  -- no re-quantization.  See q4_1_to_nbits.  Only the nibble order differs: ggml packs
  element j with element j+16 in a byte, MatMulNBits packs j with j+1.
  Q, K, V are concatenated into one projection (N = 576+192+192), gate and up into one
  (N = 2*1536), so a layer runs 4 matmuls.
  ``accuracy_level=4`` (default) lets MatMulNBits quantize the activations to int8 per
  32-block, as llama.cpp does (Q8_1); 0 keeps them fp32 (~30% slower generation).
* ``token_embd``: **Q8_0** -- per 32-block an fp16 scale and 32 int8 codes.  Expressed
  exactly as uint8 codes ``q+128`` with the default zero point 128: ``GatherBlockQuantized``
  (bits=8) for the embedding lookup, ``MatMulNBits`` (bits=8) for the output head, which is
  tied to the embeddings (the GGUF has no ``output.weight``).  Both share one buffer.
* norms: F32, used as is.

Layout of Q/K rows: llama.cpp's converter permutes the rows of every head of Q and K
(``LlamaModel.permute``: HF rows ``[x0..x31 | y0..y31]`` become ``x0 y0 x1 y1 ...``) so that
its "normal" RoPE can rotate *adjacent* pairs.  We keep the GGUF rows and rotate adjacent
pairs too: ``GroupQueryAttention(do_rotary=1, rotary_interleaved=1)``.  (HF's rotate_half on
un-permuted rows is the same computation.)

Graph (per layer), all fused contrib ops:
    SkipSimplifiedLayerNormalization (residual add + RMSNorm)
    -> MatMulNBits(QKV) -> GroupQueryAttention(RoPE, causal, GQA 9/3 heads, KV cache)
    -> MatMulNBits(O) -> SkipSimplifiedLayerNormalization
    -> MatMulNBits(gate|up) -> Split -> SiLU(gate) * up -> MatMulNBits(down)
then final RMSNorm, keep the last position only, tied Q8_0 lm_head.

Inputs : input_ids int64 [1, S]; past_key_i / past_value_i float [1, 3, P, 64] (BNSH);
         seqlens_k int32 [1] (= P + S - 1); total_sequence_length int32 scalar (= P + S).
Outputs: logits float [1, 1, vocab] (last position); present_key_i / present_value_i
         [1, 3, P+S, 64] -- or, with SmolLM's shared buffers, the same [1, 3, capacity, 64]
         buffers as the inputs, written in place.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from gguf_lite import GGUFFile
from tokenizer import GGUFTokenizer

MS = "com.microsoft"
BLOCK = 32


# ---------------------------------------------------------------------------------------
# GGUF -> hyper-parameters and repacked weights
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HParams:
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    rope_theta: float
    rms_eps: float
    head_dim: int
    rope_dim: int

    @classmethod
    def from_gguf(cls, meta: dict[str, Any]) -> HParams:
        arch = meta["general.architecture"]
        if arch != "llama":
            raise ValueError(f"only the llama architecture is supported, not {arch!r}")

        def f(key: str, default: Any = None) -> Any:
            return meta.get(f"{arch}.{key}", default)

        n_embd, n_head = f("embedding_length"), f("attention.head_count")
        head_dim = n_embd // n_head
        n_vocab = f("vocab_size") or len(meta["tokenizer.ggml.tokens"])
        if f("rope.scaling.type") not in (None, "none"):
            raise ValueError("RoPE scaling is not implemented")
        return cls(
            n_layer=f("block_count"), n_embd=n_embd, n_head=n_head,
            n_head_kv=f("attention.head_count_kv", n_head), n_ff=f("feed_forward_length"),
            n_vocab=n_vocab, n_ctx_train=f("context_length"),
            rope_theta=float(f("rope.freq_base", 10000.0)),
            rms_eps=float(f("attention.layer_norm_rms_epsilon")),
            head_dim=head_dim, rope_dim=f("rope.dimension_count", head_dim),
        )


@dataclass
class NBits:
    """One weight in MatMulNBits layout: B [N, K/32, 32*bits/8] uint8, scales [N, K/32]."""

    packed: np.ndarray
    scales: np.ndarray
    # None: the op's default zero point 2^(bits-1); uint8 [N, ceil(K/32*bits/8)]: packed
    # integer zero points; float32 [N, K/32]: float zero points.
    zero_points: np.ndarray | None
    bits: int
    n: int
    k: int
    # Q4_1 "exact" mode: per-block additive remainder r [N, K/32], added to the output as
    # blocksum(x) @ r.T (see q4_1_to_nbits).
    mins: np.ndarray | None = None


def _f16(col: np.ndarray) -> np.ndarray:
    """Two uint8 columns holding little-endian fp16 -> float32."""
    return np.ascontiguousarray(col).view(np.float16)[..., 0].astype(np.float32)


def _pack4(q: np.ndarray) -> np.ndarray:
    """[..., 2j] low nibble, [..., 2j+1] high nibble (MatMulNBits / ONNX int4 order)."""
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


# How a Q4_1 block (w = d*q + m) becomes MatMulNBits; see q4_1_to_nbits.
Q41_MODES = ("exact", "float_zp", "round_zp")


def q4_1_to_nbits(raw: np.ndarray, n: int, k: int, mode: str = "exact") -> NBits:
    """ggml Q4_1 rows -> MatMulNBits(bits=4).

    ggml block (20 bytes): d fp16 | m fp16 | qs[16], value j = d * q_j + m with
    q_j = qs[j] & 15 for j < 16 and qs[j-16] >> 4 for j >= 16.
    MatMulNBits: value j = (q_j - zp) * scale, q_j in byte j//2, low nibble for even j.

    mode "exact"    : scale d, integer zero point z = clip(round(-m/d), 0, 15) and the
                      remainder r = m + d*z kept aside: the graph adds ``blocksum(x) @ r.T``.
                      d*(q - z) + r == d*q + m, so this is exact; and since |r| <= d/2 the
                      int8-activation error of the fast kernel is weighted by ~w, as in
                      llama.cpp (zero point 0 with r = m works too, but multiplies that
                      error by the uncentred d*q and is ~5x noisier).
    mode "float_zp" : scale d, float zero point -m/d.  Exact up to one fp32 rounding, but
                      ONNX Runtime 1.32's CPU kernel takes a slow path (~50x) with float zps.
    mode "round_zp" : the "exact" layout without the remainder term: fast, *not* exact (every
                      weight of a block moves by up to d/2, a re-quantization).
    """
    nb = k // BLOCK
    b = raw.reshape(n, nb, 20)
    d, m = _f16(b[..., 0:2]), _f16(b[..., 2:4])
    qs = b[..., 4:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # [n, nb, 32] in element order
    if mode in ("exact", "round_zp"):
        z = np.clip(np.rint(-m / np.where(d == 0, 1, d)), 0, 15).astype(np.uint8)
        rem = (m + d * z).astype(np.float32)  # what d*(q - z) misses of d*q + m
        zp = _pack4(np.pad(z, ((0, 0), (0, nb % 2))))
        return NBits(_pack4(q), d, zp, 4, n, k, mins=rem if mode == "exact" else None)
    if mode != "float_zp":
        raise ValueError(mode)
    zero = d == 0  # d == 0: every weight of the block is m -> codes 0, scale m, zp -1
    if zero.any():
        q[zero] = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        zp = np.where(zero, -1.0, -m / np.where(zero, 1.0, d)).astype(np.float32)
    return NBits(_pack4(q), np.where(zero, m, d).astype(np.float32), zp, 4, n, k)


def q8_0_to_nbits(raw: np.ndarray, n: int, k: int) -> NBits:
    """ggml Q8_0 rows (34-byte blocks: d fp16 | int8[32]) -> bits=8, codes q+128, zp 128: exact."""
    nb = k // BLOCK
    b = raw.reshape(n, nb, 34)
    scales = _f16(b[..., 0:2])
    packed = np.ascontiguousarray(b[..., 2:]) ^ np.uint8(0x80)  # int8 two's complement -> q+128
    return NBits(packed, scales, None, 8, n, k)


def concat_nbits(parts: list[NBits]) -> NBits:
    """Stack weights along N (output features): one MatMulNBits for Q|K|V or gate|up."""
    cat = lambda xs: None if xs[0] is None else np.concatenate(xs)  # noqa: E731
    return NBits(
        cat([p.packed for p in parts]), cat([p.scales for p in parts]),
        cat([p.zero_points for p in parts]), parts[0].bits, sum(p.n for p in parts),
        parts[0].k, mins=cat([p.mins for p in parts]),
    )


class GGUFWeights:
    """Tensors of the GGUF by name, converted on demand."""

    def __init__(self, gguf: GGUFFile, q41_mode: str = "exact") -> None:
        self.t = gguf.tensors
        self.q41_mode = q41_mode

    def nbits(self, name: str) -> NBits:
        t = self.t[name]
        k, n = t.ne[0], t.ne[1]  # ggml: ne0 = K (input features), ne1 = N (output features)
        if t.type == "Q4_1":
            return q4_1_to_nbits(t.data, n, k, self.q41_mode)
        if t.type == "Q8_0":
            return q8_0_to_nbits(t.data, n, k)
        raise NotImplementedError(f"{name}: {t.type} not repacked (add a converter)")

    def f32(self, name: str) -> np.ndarray:
        t = self.t[name]
        if t.type != "F32":
            raise NotImplementedError(f"{name}: expected F32, got {t.type}")
        return np.array(t.data, dtype=np.float32).reshape(-1)

    def has(self, name: str) -> bool:
        return name in self.t


# ---------------------------------------------------------------------------------------
# ONNX graph
# ---------------------------------------------------------------------------------------


class GraphBuilder:
    """Tiny helper around onnx.helper: nodes, initializers kept as numpy arrays."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: dict[str, np.ndarray] = {}
        self._n = 0

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits[name] = np.ascontiguousarray(arr)
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, domain: str = "", **attrs: Any):
        self._n += 1
        outs = [f"{op}_{self._n}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, domain=domain or None, **attrs))
        return outs[0] if n_out == 1 else outs

    def matmul_nbits(self, x: str, w: NBits, name: str, accuracy_level: int) -> str:
        ins = [self.init(f"{name}.B", w.packed), self.init(f"{name}.scales", w.scales)]
        if w.zero_points is not None:
            ins.append(self.init(f"{name}.zp", w.zero_points))
        y = self.node(
            "MatMulNBits", [x] + ins, domain=MS, K=w.k, N=w.n, bits=w.bits,
            block_size=BLOCK, accuracy_level=accuracy_level,
        )
        if w.mins is None:
            return y
        # Q4_1's remainder term: y += blocksum(x) @ r.T, blocksum over each 32-wide block of K.
        nb = w.k // BLOCK
        shape = self.init(f"{name}.blk_shape", np.array([0, 0, nb, BLOCK], dtype=np.int64))
        bs = self.node("ReduceSum", [self.node("Reshape", [x, shape]),
                                     self.init("axis_-1", np.array([-1], dtype=np.int64))],
                       keepdims=0)
        corr = self.node("MatMul", [bs, self.init(f"{name}.mins_t", w.mins.T)])
        return self.node("Add", [y, corr])


def build_model(r: GGUFFile, hp: HParams, *, accuracy_level: int = 4,
                head_accuracy_level: int = 4, max_pos: int | None = None,
                q41_mode: str = "exact"):
    """The decoder as an onnx ModelProto (weights as initializers).  ``accuracy_level`` 4 lets
    MatMulNBits quantize activations to int8 per block (as llama.cpp does, Q8_1/Q8_0); 0 keeps
    them fp32 (dequantize + fp32 GEMM)."""
    W = GGUFWeights(r, q41_mode)
    g = GraphBuilder()
    L, D, H, KVH, hd = hp.n_layer, hp.n_embd, hp.n_head, hp.n_head_kv, hp.head_dim
    max_pos = max_pos or hp.n_ctx_train

    # RoPE tables: theta_i = pos * base^(-2i/rope_dim); GQA applies them to Q and K.
    inv = hp.rope_theta ** (-np.arange(0, hp.rope_dim, 2, dtype=np.float64) / hp.rope_dim)
    ang = np.outer(np.arange(max_pos, dtype=np.float64), inv)
    cos = g.init("rope.cos", np.cos(ang).astype(np.float32))
    sin = g.init("rope.sin", np.sin(ang).astype(np.float32))

    # Embeddings: Q8_0 table, gathered and dequantized in one op.
    emb = W.nbits("token_embd.weight")
    emb_rows = g.init("token_embd.q", emb.packed.reshape(hp.n_vocab, D))
    emb_scales = g.init("token_embd.scales", emb.scales)
    x = g.node("GatherBlockQuantized", [emb_rows, "input_ids", emb_scales], domain=MS,
               bits=8, block_size=BLOCK, gather_axis=0, quantize_axis=1)

    seqlens_k, total_len = "seqlens_k", "total_sequence_length"
    resid = None  # running residual stream (x before the add)
    delta = None  # what the previous sub-block adds to it
    for i in range(L):
        p = f"blk.{i}"
        # --- attention -------------------------------------------------------------
        gamma = g.init(f"{p}.attn_norm", W.f32(f"{p}.attn_norm.weight"))
        if delta is None:
            h = g.node("SimplifiedLayerNormalization", [x, gamma], axis=-1, epsilon=hp.rms_eps)
            resid = x
        else:
            h, _, _, resid = g.node("SkipSimplifiedLayerNormalization", [delta, resid, gamma],
                                    n_out=4, domain=MS, epsilon=hp.rms_eps)
        qkv_w = concat_nbits([W.nbits(f"{p}.attn_{t}.weight") for t in ("q", "k", "v")])
        qkv = g.matmul_nbits(h, qkv_w, f"{p}.attn_qkv", accuracy_level)
        attn, pk, pv = g.node(
            "GroupQueryAttention",
            [qkv, "", "", f"past_key_{i}", f"past_value_{i}", seqlens_k, total_len, cos, sin],
            n_out=3, domain=MS, num_heads=H, kv_num_heads=KVH, do_rotary=1,
            rotary_interleaved=1, scale=1.0 / np.sqrt(hd),
        )
        g.nodes[-1].output[1], g.nodes[-1].output[2] = f"present_key_{i}", f"present_value_{i}"
        delta = g.matmul_nbits(attn, W.nbits(f"{p}.attn_output.weight"), f"{p}.attn_output",
                               accuracy_level)
        # --- SwiGLU MLP ------------------------------------------------------------
        gamma = g.init(f"{p}.ffn_norm", W.f32(f"{p}.ffn_norm.weight"))
        h, _, _, resid = g.node("SkipSimplifiedLayerNormalization", [delta, resid, gamma],
                                n_out=4, domain=MS, epsilon=hp.rms_eps)
        gu_w = concat_nbits([W.nbits(f"{p}.ffn_gate.weight"), W.nbits(f"{p}.ffn_up.weight")])
        gu = g.matmul_nbits(h, gu_w, f"{p}.ffn_gate_up", accuracy_level)
        gate, up = g.node("Split", [gu], n_out=2, axis=-1, num_outputs=2)
        act = g.node("Mul", [g.node("Mul", [gate, g.node("Sigmoid", [gate])]), up])
        delta = g.matmul_nbits(act, W.nbits(f"{p}.ffn_down.weight"), f"{p}.ffn_down",
                               accuracy_level)

    gamma = g.init("output_norm", W.f32("output_norm.weight"))
    h = g.node("SkipSimplifiedLayerNormalization", [delta, resid, gamma], domain=MS,
               epsilon=hp.rms_eps)
    # logits of the last position only: [1, S, D] -> [1, 1, D]
    i64 = lambda v: np.array([v], dtype=np.int64)  # noqa: E731
    last = g.node("Slice", [h, g.init("last.start", i64(-1)), g.init("last.end", i64(2**62)),
                            g.init("last.axis", i64(1))])
    head = W.nbits("output.weight") if W.has("output.weight") else emb  # tied embeddings
    if head is emb:  # same bytes as the embedding table: a second name, no copy
        head = NBits(emb.packed, emb.scales, None, 8, hp.n_vocab, D)
    g.matmul_nbits(last, head, "lm_head", head_accuracy_level)
    g.nodes[-1].output[0] = "logits"  # (head has no "+m" term: its MatMulNBits is last)

    kv_shape = lambda n: ["batch", KVH, n, hd]  # noqa: E731
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, hp.n_vocab])]
    for i in range(L):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}_{i}", TensorProto.FLOAT,
                                                        kv_shape("past")))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}_{i}", TensorProto.FLOAT,
                                                         kv_shape("total")))
    inputs += [
        helper.make_tensor_value_info(seqlens_k, TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info(total_len, TensorProto.INT32, []),
    ]
    graph = helper.make_graph(g.nodes, "smollm2", inputs, outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(MS, 1)],
        ir_version=10,
    )
    return model, g.inits


# ---------------------------------------------------------------------------------------
# Session + decoding
# ---------------------------------------------------------------------------------------


class SmolLM:
    """Load once, then ``forward``/``prefill`` on one sequence (or ``greedy``/``generate``).

    KV cache: with ``kv_share`` (default) every layer's K and V live in numpy buffers of a
    fixed capacity that are bound as *both* past_* input and present_* output (ORT's
    past-present buffer sharing): GroupQueryAttention writes the new rows in place and reads
    ``seqlens_k + 1`` rows, so a step costs no copy of the cache.  The capacity doubles
    (one copy) when a sequence outgrows it.  ``kv_share=False`` lets ORT concatenate
    past + new into fresh present tensors every step (a copy of the whole cache per token).
    ``truncate(n)`` rewinds the sequence to its first n tokens (reuse of a prompt: the
    rows after n are simply overwritten).
    """

    def __init__(self, path: str, *, threads: int = 2, accuracy_level: int = 4,
                 head_accuracy_level: int = 4, max_pos: int = 8192, q41_mode: str = "exact",
                 kv_share: bool = True, kv_capacity: int = 512, spin: bool = False,
                 external_weights: bool = True) -> None:
        t0 = time.perf_counter()
        reader = GGUFFile(path)
        self.hp = HParams.from_gguf(reader.meta)
        self.tok = GGUFTokenizer(reader.meta)
        self.max_pos = max_pos
        t1 = time.perf_counter()
        model, inits = build_model(reader, self.hp, accuracy_level=accuracy_level,
                                   head_accuracy_level=head_accuracy_level, max_pos=max_pos,
                                   q41_mode=q41_mode)
        t2 = time.perf_counter()
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        # Big weights go in as OrtValues over our numpy buffers (no 100 MB protobuf copy):
        # the graph names them, the session option supplies them.  Small constants stay
        # inline (shape inference needs to read them).
        if external_weights:
            self._keep = inits  # the OrtValues borrow these buffers: keep them alive
            big = [n for n, a in inits.items() if a.nbytes > 4096]
        else:  # everything in the protobuf: ORT owns (and may free after prepacking) it
            big = []
        for n, a in inits.items():
            model.graph.initializer.append(
                _external_stub(n, a) if n in big else numpy_helper.from_array(a, n))
        so.add_external_initializers(big, [ort.OrtValue.ortvalue_from_numpy(inits[n])
                                           for n in big])
        blob = model.SerializeToString()
        del model, inits, reader
        self.sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        del blob
        t3 = time.perf_counter()
        self.timings = {"gguf_read_s": t1 - t0, "graph_build_s": t2 - t1, "session_s": t3 - t2}
        self._out_names = [o.name for o in self.sess.get_outputs()]
        self._kv_names = [f"{k}_{i}" for i in range(self.hp.n_layer) for k in ("key", "value")]
        self.kv_share = kv_share
        self._capacity0 = kv_capacity
        self._logits = np.empty((1, 1, self.hp.n_vocab), dtype=np.float32)
        self.reset()

    # -- KV cache -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the sequence (the cache buffers are kept)."""
        self.n_past = 0
        if not self.kv_share:
            hp = self.hp
            empty = np.zeros((1, hp.n_head_kv, 0, hp.head_dim), dtype=np.float32)
            self.past = {f"past_{n}": ort.OrtValue.ortvalue_from_numpy(empty)
                         for n in self._kv_names}
        elif not hasattr(self, "_kv"):
            self._bind(self._capacity0)

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` tokens of the sequence (shared-buffer mode)."""
        if not self.kv_share:
            raise NotImplementedError("truncate needs kv_share=True")
        self.n_past = min(self.n_past, n)

    def _bind(self, capacity: int) -> None:
        """(Re)allocate the shared K/V buffers with ``capacity`` rows and bind them."""
        hp = self.hp
        old = getattr(self, "_kv", None)
        self._kv = {n: np.zeros((1, hp.n_head_kv, capacity, hp.head_dim), np.float32)
                    for n in self._kv_names}
        if old is not None and self.n_past:
            for n, a in old.items():
                self._kv[n][:, :, : self.n_past] = a[:, :, : self.n_past]
        self.capacity = capacity
        b = self.sess.io_binding()
        for n, a in self._kv.items():
            v = ort.OrtValue.ortvalue_from_numpy(a)
            b.bind_ortvalue_input(f"past_{n}", v)
            b.bind_ortvalue_output(f"present_{n}", v)
        b.bind_output("logits", "cpu", 0, np.float32, list(self._logits.shape),
                      self._logits.ctypes.data)
        self._binding = b

    def forward(self, ids: list[int]) -> np.ndarray:
        """Append ``ids`` to the sequence; the logits [vocab] after the last of them."""
        total = self.n_past + len(ids)
        if total > self.max_pos:
            raise ValueError(f"sequence of {total} tokens exceeds the context ({self.max_pos})")
        input_ids = np.array([ids], dtype=np.int64)
        seqlens_k = np.array([total - 1], np.int32)
        total_len = np.array(total, dtype=np.int32)
        if self.kv_share:
            if total > self.capacity:
                cap = self.capacity
                while cap < total:
                    cap *= 2
                self._bind(min(cap, self.max_pos))
            b = self._binding
            b.bind_cpu_input("input_ids", input_ids)
            b.bind_cpu_input("seqlens_k", seqlens_k)
            b.bind_cpu_input("total_sequence_length", total_len)
            self.sess.run_with_iobinding(b)
            self.n_past = total
            return self._logits.reshape(-1).copy()
        feeds = dict(self.past)
        feeds["input_ids"] = ort.OrtValue.ortvalue_from_numpy(input_ids)
        feeds["seqlens_k"] = ort.OrtValue.ortvalue_from_numpy(seqlens_k)
        feeds["total_sequence_length"] = ort.OrtValue.ortvalue_from_numpy(total_len)
        outs = self.sess.run_with_ort_values(self._out_names, feeds)
        # present_* become the next past_* without leaving ORT's memory
        for name, val in zip(self._out_names[1:], outs[1:]):
            self.past["past_" + name[len("present_"):]] = val
        self.n_past = total
        return outs[0].numpy().reshape(-1)

    def prefill(self, ids: list[int], chunk: int = 512) -> np.ndarray:
        """Evaluate a prompt in chunks of ``chunk`` tokens; the logits after its last token."""
        logits = None
        for s in range(0, len(ids), chunk):
            logits = self.forward(ids[s:s + chunk])
        return logits

    def greedy(self, prompt: list[int], n: int) -> tuple[list[int], list[np.ndarray]]:
        """``n`` argmax tokens after ``prompt`` (no early stop), and the logits of each step."""
        self.reset()
        logits = self.prefill(prompt)
        out, all_logits = [], []
        for _ in range(n):
            tok = int(np.argmax(logits))
            out.append(tok)
            all_logits.append(logits)
            logits = self.forward([tok])
        return out, all_logits

    def generate(self, prompt: list[int], max_tokens: int = 256, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = None) -> Iterator[int]:
        """Stream token ids until an end-of-generation token or ``max_tokens``."""
        rng = np.random.default_rng(seed)
        self.reset()
        logits = self.prefill(prompt)
        for _ in range(max_tokens):
            tok = sample(logits, temperature, top_p, rng)
            if tok in self.tok.eog_ids:
                return
            yield tok
            logits = self.forward([tok])


def sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator,
           top_k: int = 0) -> int:
    """One token id: argmax at temperature 0, else softmax(logits / T) cut to top_k / top_p."""
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    if top_k > 0:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p)
        keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return int(rng.choice(len(p), p=p))


def stream_text(lm: SmolLM, prompt: list[int], *, max_tokens: int = 256,
                temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                stop: list[str] = (), presence_penalty: float = 0.0,
                frequency_penalty: float = 0.0, cancelled: Any = None,
                ) -> Iterator[tuple[str, str | None]]:
    """Stream ``(text, finish_reason)`` pieces of one answer, OpenAI style.

    * text is decoded incrementally (a UTF-8 character split over tokens waits for its
      last byte); text that may be the start of a stop string is held back until it is
      not, and a stop string ends the answer without being emitted;
    * presence/frequency penalties as OpenAI defines them (on generated tokens);
    * ``cancelled`` (e.g. a threading.Event) is checked before every token;
    * finish_reason is "stop" (end-of-turn token or stop string), "length" or
      "cancelled" on the last piece, None before.
    """
    import codecs

    rng = np.random.default_rng(seed)
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    counts: dict[int, int] = {}
    held = ""
    lm.reset()
    logits = lm.prefill(prompt)
    for _ in range(max_tokens):
        if cancelled is not None and cancelled.is_set():
            yield held, "cancelled"
            return
        if counts and (presence_penalty or frequency_penalty):
            ids = np.fromiter(counts, dtype=np.int64)
            n = np.fromiter(counts.values(), dtype=np.float32)
            logits = logits.copy()
            logits[ids] -= presence_penalty + frequency_penalty * n
        tok = sample(logits, temperature, top_p, rng)
        if tok in lm.tok.eog_ids:
            yield held + dec.decode(b"", final=True), "stop"
            return
        counts[tok] = counts.get(tok, 0) + 1
        held += dec.decode(lm.tok.token_bytes(tok))
        cut = min((i for i in (held.find(s) for s in stop if s) if i >= 0), default=-1)
        if cut >= 0:
            yield held[:cut], "stop"
            return
        # emit all but the longest suffix that could still begin a stop string
        keep = max((k for s in stop for k in range(min(len(s) - 1, len(held)), 0, -1)
                    if held.endswith(s[:k])), default=0)
        if len(held) > keep:
            yield held[: len(held) - keep], None
            held = held[len(held) - keep:]
        logits = lm.forward([tok])
    yield held + dec.decode(b"", final=True), "length"


def _external_stub(name: str, arr: np.ndarray) -> Any:
    """An initializer entry without data: its bytes come from add_external_initializers."""
    t = TensorProto()
    t.name = name
    t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
    t.dims.extend(arr.shape)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "__ort_user_provided__"), ("offset", "0"),
                 ("length", str(arr.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


if __name__ == "__main__":
    import sys

    from compare import model_path

    lm = SmolLM(model_path())
    print(lm.hp)
    print(lm.timings)
    question = sys.argv[1] if len(sys.argv) > 1 else "What is the capital of France?"
    prompt = lm.tok.encode(lm.tok.apply_chat_template([{"role": "user", "content": question}]))
    t0 = time.perf_counter()
    finish = None
    for piece, reason in stream_text(lm, prompt, max_tokens=128, temperature=0.2, seed=0):
        print(piece, end="", flush=True)
        finish = reason
    print(f"\n[{finish}] {time.perf_counter() - t0:.2f}s")
