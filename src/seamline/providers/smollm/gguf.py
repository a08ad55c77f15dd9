"""A minimal GGUF (v2/v3) reader: metadata as Python values, tensors as zero-copy views.

Why not ``gguf.GGUFReader`` (the reference reader, from llama.cpp's repository): it builds a
numpy view per array element, which costs ~2.5 s on SmolLM2's file (49152 tokens and 48900
merges) on a 2-core machine, and it is one more dependency. This reader takes ~0.15 s and
needs only numpy; the file is memory-mapped read-only, so the weights are paged in as the
repack reads them and nothing is copied twice. Format:
https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# The ggml tensor types SmolLM2's Q4_1 file holds: id -> (name, elements per block, bytes per
# block). Another type is refused when the file is read rather than misread later.
TENSOR_TYPES = {0: ("F32", 1, 4), 3: ("Q4_1", 32, 20), 8: ("Q8_0", 32, 34)}
# Metadata value types: id -> struct format of a scalar, and numpy dtype of an array of them.
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class Tensor:
    """One tensor's raw blocks, as the file stores them."""

    name: str
    type: str  # "Q4_1", "Q8_0" or "F32"
    shape: tuple[int, ...]  # ggml order: shape[0] is the contiguous (input-feature) axis
    data: npt.NDArray[Any]  # uint8 [rows, bytes per row]; float32 [rows, shape[0]] for F32


class GGUFFile:
    """The metadata (``meta``) and tensors (``tensors``, by name) of one GGUF file."""

    def __init__(self, path: Path) -> None:
        self._buffer = np.memmap(path, dtype=np.uint8, mode="r")
        self._view = memoryview(self._buffer.data)
        self._pos = 0
        if bytes(self._view[:4]) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        self._pos = 4
        version = self._scalar("<I")
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version} is not supported")
        n_tensors, n_values = self._scalar("<Q"), self._scalar("<Q")
        self.meta: dict[str, Any] = {}
        for _ in range(n_values):
            key = self._string()
            self.meta[key] = self._value(self._scalar("<I"))
        entries = []
        for _ in range(n_tensors):
            name = self._string()
            shape = tuple(self._scalar("<Q") for _ in range(self._scalar("<I")))
            entries.append((name, shape, self._scalar("<I"), self._scalar("<Q")))
        alignment = int(self.meta.get("general.alignment", 32))
        start = (self._pos + alignment - 1) // alignment * alignment
        self.tensors = {
            name: self._tensor(name, shape, kind, start + offset)
            for name, shape, kind, offset in entries
        }
        del self._view  # the tensors keep views of the map; the parser's view is done

    def _tensor(self, name: str, shape: tuple[int, ...], kind: int, offset: int) -> Tensor:
        if kind not in TENSOR_TYPES:
            raise ValueError(f"{name}: ggml tensor type {kind} is not supported")
        type_name, block, block_bytes = TENSOR_TYPES[kind]
        row_bytes = shape[0] // block * block_bytes
        rows = int(np.prod(shape[1:], dtype=np.int64))
        raw = self._buffer[offset : offset + rows * row_bytes].reshape(rows, row_bytes)
        return Tensor(name, type_name, shape, raw.view(np.float32) if type_name == "F32" else raw)

    def _scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self._view, self._pos)
        self._pos += struct.calcsize(fmt)
        return value

    def _string(self) -> str:
        size = self._scalar("<Q")
        text = bytes(self._view[self._pos : self._pos + size]).decode("utf-8", errors="replace")
        self._pos += size
        return text

    def _value(self, kind: int) -> Any:
        if kind == _STRING:
            return self._string()
        if kind != _ARRAY:
            return self._scalar(_SCALARS[kind])
        item, count = self._scalar("<I"), self._scalar("<Q")
        if item in _SCALARS:  # a numeric array (token types: 49152 of them) in one read
            dtype = np.dtype(_SCALARS[item])
            values = np.frombuffer(self._view, dtype=dtype, count=count, offset=self._pos)
            self._pos += values.nbytes
            return values.tolist()
        return [self._value(item) for _ in range(count)]
