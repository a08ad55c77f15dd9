"""Cutting a source into chunks the embedding model reads whole: windows of ``tokens``
tokens of its tokenizer, each starting ``tokens - overlap`` after the last, so a sentence cut
by one window boundary is whole in the next. A chunk's text is the exact span of the
source its tokens cover (the tokenizer's offsets), so a citation can be found in the
source as it is.

A chunk's id is derived from what it is (the source's URI and content hash, the chunker
settings, its position): the same file chunked the same way gives the same ids in every
index version, which is what lets a re-ingest reuse vectors and lets reports follow a chunk
across versions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ChunkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: int = Field(200, ge=16, le=254)  # MiniLM reads 256, [CLS] and [SEP] included
    overlap: int = Field(40, ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkerConfig:
        if self.overlap >= self.tokens:
            raise ValueError("overlap must be smaller than tokens")
        return self


@dataclass(frozen=True)
class Chunk:
    id: str
    position: int  # 0, 1, 2, ... in its source
    text: str
    start: int  # character offsets in the source's text
    end: int


def chunk_text(
    text: str, source: tuple[str, str], config: ChunkerConfig, tokenizer: Any
) -> list[Chunk]:
    """``text`` of ``source`` (its URI and content hash) in chunks."""
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    if not offsets:
        return []
    step = config.tokens - config.overlap
    chunks: list[Chunk] = []
    for position, first in enumerate(range(0, len(offsets), step)):
        window = offsets[first : first + config.tokens]
        start, end = window[0][0], window[-1][1]
        chunks.append(
            Chunk(chunk_id(source, config, position), position, text[start:end], start, end)
        )
        if first + config.tokens >= len(offsets):
            break
    return chunks


def chunk_id(source: tuple[str, str], config: ChunkerConfig, position: int) -> str:
    uri, sha256 = source
    key = f"{uri}\n{sha256}:{config.tokens}:{config.overlap}:{position}"
    return "ch_" + hashlib.sha256(key.encode()).hexdigest()[:20]
