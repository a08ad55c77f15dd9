"""GGUF weights repacked, not re-quantized, into ONNX Runtime's ``MatMulNBits`` layout.

``MatMulNBits`` (com.microsoft) multiplies by a block-quantized matrix without expanding
it: per block of 32 weights along K, ``w_j = (q_j - zero_point) * scale``. ggml's blocks map
onto it as follows.

* **Q4_1** (every projection of SmolLM2's file): per block an fp16 scale ``d``, an fp16
  minimum ``m`` and 32 4-bit codes; ``w_j = d * q_j + m``. A float zero point ``-m/d``
  would express that directly, but ONNX Runtime's CPU kernel then dequantizes the whole
  matrix on every call (~50x slower with ONNX Runtime 1.32:
  research/onnx-smollm2/bench_matmulnbits.py). So the codes and ``d`` are kept, with the
  *integer* zero point ``z = round(-m/d)`` (the fast int8 kernel), and the small remainder
  ``r = m + d*z`` is added back by the graph as ``blocksum(x) @ r.T``: ``d*(q - z) + r ==
  d*q + m``, exactly. Because ``|r| <= d/2``, the error of the kernel's int8 activations is
  weighted by about ``w``, as in llama.cpp; a zero point of 0 with ``r = m`` is exact too
  but multiplies that error by the uncentred ``d*q`` (~5x noisier in the prototype,
  research/onnx-smollm2).
  Only the nibble order differs: ggml packs element j with element j+16 in a byte,
  MatMulNBits packs j with j+1.
* **Q8_0** (the token embeddings, tied to the output head): per block an fp16 scale and 32
  int8 codes, stored as ``q + 128`` with MatMulNBits' default zero point 128: exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from seamline.providers.smollm.gguf import Tensor

BLOCK = 32  # weights per quantization block, in ggml and in MatMulNBits as used here

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Quantized:
    """One weight matrix [N, K] in MatMulNBits layout."""

    packed: U8  # [N, K/32, 32*bits/8]
    scales: F32  # [N, K/32]
    zero_points: U8 | None  # packed 4-bit zero points [N, ceil(K/64)]; None: the default
    remainder: F32 | None  # Q4_1's r [N, K/32], added as blocksum(x) @ r.T; None: none
    bits: int
    n: int  # output features
    k: int  # input features


def repack(tensor: Tensor) -> Quantized:
    """A Q4_1 or Q8_0 matrix of the GGUF as MatMulNBits takes it."""
    k, n = tensor.shape[0], tensor.shape[1]  # ggml: shape[0] is K, shape[1] is N
    if tensor.type == "Q4_1":
        return _q4_1(tensor.data, n, k)
    if tensor.type == "Q8_0":
        return _q8_0(tensor.data, n, k)
    raise ValueError(f"{tensor.name}: a {tensor.type} tensor is not a quantized matrix")


def stacked(parts: list[Quantized]) -> Quantized:
    """Matrices stacked along N, so that one MatMulNBits computes them all: Q|K|V and
    gate|up, which makes a layer four matrix products instead of seven."""

    def joined(arrays: list[Any]) -> Any:
        return None if arrays[0] is None else np.concatenate(arrays)

    return Quantized(
        packed=joined([p.packed for p in parts]),
        scales=joined([p.scales for p in parts]),
        zero_points=joined([p.zero_points for p in parts]),
        remainder=joined([p.remainder for p in parts]),
        bits=parts[0].bits,
        n=sum(p.n for p in parts),
        k=parts[0].k,
    )


def float32(tensor: Tensor) -> F32:
    """An F32 tensor (the RMSNorm weights), flattened and copied out of the memory map."""
    if tensor.type != "F32":
        raise ValueError(f"{tensor.name}: expected F32, found {tensor.type}")
    return np.array(tensor.data, dtype=np.float32).reshape(-1)


def _q4_1(raw: U8, n: int, k: int) -> Quantized:
    """ggml block (20 bytes): d fp16 | m fp16 | 16 bytes of codes, element j < 16 in the low
    nibble of byte j and element j + 16 in its high nibble."""
    blocks = raw.reshape(n, k // BLOCK, 20)
    d, m = _fp16(blocks[..., 0:2]), _fp16(blocks[..., 2:4])
    codes = blocks[..., 4:]
    q = np.concatenate([codes & 0x0F, codes >> 4], axis=-1)  # [n, blocks, 32], element order
    z = np.clip(np.rint(-m / np.where(d == 0, 1, d)), 0, 15).astype(np.uint8)
    remainder = (m + d * z).astype(np.float32)  # what d*(q - z) misses of d*q + m
    # Zero points are packed two per byte along the blocks; an odd count gets a pad nibble.
    zero_points = _pack4(np.pad(z, ((0, 0), (0, z.shape[1] % 2))))
    return Quantized(_pack4(q), d, zero_points, remainder, 4, n, k)


def _q8_0(raw: U8, n: int, k: int) -> Quantized:
    """ggml block (34 bytes): d fp16 | 32 int8 codes. Flipping the sign bit turns a two's
    complement int8 into ``q + 128``, which zero point 128 undoes."""
    blocks = raw.reshape(n, k // BLOCK, 34)
    codes = np.ascontiguousarray(blocks[..., 2:]) ^ np.uint8(0x80)
    return Quantized(codes, _fp16(blocks[..., 0:2]), None, None, 8, n, k)


def _fp16(pairs: U8) -> F32:
    """Two uint8 columns holding a little-endian fp16 -> float32."""
    halves = np.ascontiguousarray(pairs).view(np.float16)[..., 0]
    return halves.astype(np.float32)


def _pack4(q: U8) -> U8:
    """Element 2j in the low nibble, 2j+1 in the high nibble (MatMulNBits' order)."""
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
