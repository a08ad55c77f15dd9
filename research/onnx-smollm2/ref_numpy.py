"""Plain numpy fp32 reference: the llama forward pass on weights dequantized with
``gguf.quants.dequantize`` -- no quantized arithmetic at all, so it is the "exact" model the
GGUF describes.  Used to tell whether a difference comes from the ONNX graph or from
llama.cpp's own arithmetic (int8 activations, fp16 KV cache)."""

from __future__ import annotations

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


class NumpyLlama:
    def __init__(self, path: str, hp) -> None:
        r = GGUFReader(path)
        self.W = {t.name: dequantize(t.data, t.tensor_type).reshape([int(x) for x in t.shape[::-1]])
                  .astype(np.float32) for t in r.tensors}
        self.hp = hp
        hd = hp.head_dim
        self.inv = hp.rope_theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        self.reset()

    def reset(self) -> None:
        self.k = [None] * self.hp.n_layer
        self.v = [None] * self.hp.n_layer
        self.n = 0

    @staticmethod
    def _rms(x, w, eps):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def _rope(self, t, pos):  # t [S, H, hd]; llama.cpp "normal" mode: adjacent pairs
        ang = np.outer(pos, self.inv)
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = t[..., 0::2], t[..., 1::2]
        out = np.empty_like(t)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = a * s + b * c
        return out

    def forward(self, ids: list[int]) -> np.ndarray:
        W, hp = self.W, self.hp
        S, hd, P = len(ids), hp.head_dim, self.n
        pos = np.arange(P, P + S)
        x = W["token_embd.weight"][ids]
        rep = hp.n_head // hp.n_head_kv
        mask = np.triu(np.full((S, P + S), -np.inf), P + 1)
        for i in range(hp.n_layer):
            p = f"blk.{i}"
            h = self._rms(x, W[f"{p}.attn_norm.weight"], hp.rms_eps)
            q = self._rope((h @ W[f"{p}.attn_q.weight"].T).reshape(S, hp.n_head, hd), pos)
            k = self._rope((h @ W[f"{p}.attn_k.weight"].T).reshape(S, hp.n_head_kv, hd), pos)
            v = (h @ W[f"{p}.attn_v.weight"].T).reshape(S, hp.n_head_kv, hd)
            self.k[i] = k if self.k[i] is None else np.concatenate([self.k[i], k])
            self.v[i] = v if self.v[i] is None else np.concatenate([self.v[i], v])
            K, V = np.repeat(self.k[i], rep, axis=1), np.repeat(self.v[i], rep, axis=1)
            att = np.einsum("shd,thd->hst", q, K) / np.sqrt(hd) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hst,thd->shd", att, V).reshape(S, -1)
            x = x + o @ W[f"{p}.attn_output.weight"].T
            h = self._rms(x, W[f"{p}.ffn_norm.weight"], hp.rms_eps)
            g = h @ W[f"{p}.ffn_gate.weight"].T
            act = g / (1 + np.exp(-g)) * (h @ W[f"{p}.ffn_up.weight"].T)
            x = x + act @ W[f"{p}.ffn_down.weight"].T
        self.n += S
        h = self._rms(x[-1], W["output_norm.weight"], hp.rms_eps)
        return h @ W["token_embd.weight"].T

    def greedy(self, prompt: list[int], n: int):
        self.reset()
        logits = self.forward(prompt)
        out, all_logits = [], []
        for _ in range(n):
            tok = int(np.argmax(logits))
            out.append(tok)
            all_logits.append(logits)
            logits = self.forward([tok])
        return out, all_logits
