"""SmolLM2 loaded from its GGUF: tokenizer, decoder and, on first use, grammar vocabulary."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from llguidance import LLTokenizer

from seamline.providers.smollm.decoder import Decoder
from seamline.providers.smollm.gguf import GGUFFile
from seamline.providers.smollm.grammar import Constraint, vocabulary
from seamline.providers.smollm.graph import Config, build
from seamline.providers.smollm.tokenizer import GGUFTokenizer


class Model:
    """Loads with nothing downloaded or written, in 0.7 s on 2 cores with AVX-512 VNNI (the
    prototype: GGUF read 0.15 s, graph 0.3 s, session 0.27 s) and 1.2-1.7 s on 2 shared
    AVX2 cores (bench/local_chat_model.py). One sequence at a time."""

    def __init__(self, path: Path, *, context: int, threads: int) -> None:
        gguf = GGUFFile(path)
        self.config = Config.of(gguf.meta)
        self.tokenizer = GGUFTokenizer(gguf.meta)
        graph = build(gguf, self.config, context)
        # The graph holds repacked copies: unmap the file before the session makes its own
        # (peak RSS 485 MB rather than 582 MB, measured with seamline imported).
        del gguf
        self.decoder = Decoder(graph, self.config, context=context, threads=threads)

    @cached_property
    def vocabulary(self) -> LLTokenizer:
        """llguidance's view of the vocabulary (0.3-0.5 s to build): only constrained answers
        need it, so a model that never gets one never pays for it."""
        return vocabulary(self.tokenizer)

    def constraint(self, grammar: str) -> Constraint:
        """A fresh position at the start of ``grammar``, for one answer."""
        return Constraint(self.vocabulary, grammar)
