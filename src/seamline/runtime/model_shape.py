"""A model's shape as the KV-cache plan needs it, read from a Hugging Face ``config.json``:
layers, attention and KV heads, head dimension, sliding-window layers, MLA ranks and MoE
experts, and the parameter count the weights are estimated from (seamline.runtime.planner
says what is exact and what is estimated). Configs of an unknown or state-space
architecture, and fields of the wrong type, are refused with one clear message."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seamline.core.errors import InvalidInput

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "runtime"

BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}  # per value, weights or KV cache
_SPELLINGS = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "bf16",  # vLLM's dtype=auto serves float32 checkpoints in bf16
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8",
}


@dataclass(frozen=True)
class MLA:
    """Multi-head latent attention (DeepSeek-V2/V3): the cache holds one compressed latent."""

    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None


@dataclass(frozen=True)
class MoE:
    """Mixture of experts: routed experts of ``expert_intermediate`` each, shared experts of
    ``shared_intermediate`` in all, on every layer from ``first_moe_layer`` at ``layer_freq``."""

    routed_experts: int
    experts_per_token: int
    expert_intermediate: int
    shared_intermediate: int
    first_moe_layer: int
    layer_freq: int


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs from a Hugging Face ``config.json``."""

    name: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    torch_dtype: str
    quantization: str | None = None
    sliding_window: int | None = None
    sliding_layers: int = 0
    mla: MLA | None = None
    moe: MoE | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str = "") -> ModelShape:
        """Read a ``config.json`` (or its ``text_config`` for a multimodal wrapper).

        Raises ``InvalidInput`` naming the missing field, or the architecture when the config
        has no attention fields or describes state-space layers this planner cannot size.
        """
        try:
            return cls._read(config, name)
        except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            # A field of an unexpected type the checks below do not name: still one line.
            raise InvalidInput(
                f"config.json is not a model configuration seamline can read: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    @classmethod
    def _read(cls, config: dict[str, Any], name: str) -> ModelShape:
        if "text_config" in config and "num_hidden_layers" not in config:
            config = config["text_config"]
            if not isinstance(config, dict):
                raise InvalidInput("config.json's 'text_config' must be an object")
        model_type = str(config.get("model_type") or "unknown")
        _refuse_non_attention(config, model_type)
        layers = _int(config, "num_hidden_layers")
        hidden = _int(config, "hidden_size")
        heads = _int(config, "num_attention_heads")
        window, sliding = _sliding(config, model_type, layers)
        head_dim = _int(config, "head_dim", hidden // heads)
        if head_dim <= 0:
            raise InvalidInput("config.json's hidden_size is smaller than its attention heads")
        quantization = config.get("quantization_config") or {}
        if not isinstance(quantization, dict):
            raise InvalidInput("config.json's 'quantization_config' must be an object")
        return cls(
            name=name or str(config.get("_name_or_path") or model_type),
            model_type=model_type,
            num_layers=layers,
            hidden_size=hidden,
            num_attention_heads=heads,
            num_kv_heads=_int(config, "num_key_value_heads", heads),
            head_dim=head_dim,
            intermediate_size=_int(config, "intermediate_size"),
            vocab_size=_int(config, "vocab_size"),
            max_position_embeddings=_int(config, "max_position_embeddings"),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
            torch_dtype=dtype_named(
                str(config.get("torch_dtype") or config.get("dtype") or "bf16")
            ),
            quantization=quantization.get("quant_method"),
            sliding_window=window,
            sliding_layers=sliding,
            mla=_mla(config),
            moe=_moe(config),
        )

    @property
    def attention(self) -> str:
        """A short name of the attention kind, for reports."""
        if self.mla:
            return "MLA"
        kind = "GQA" if self.num_kv_heads < self.num_attention_heads else "MHA"
        if self.sliding_layers == self.num_layers:
            return f"{kind}, sliding window {self.sliding_window}"
        if self.sliding_layers:
            return f"{kind}, {self.sliding_layers} of {self.num_layers} layers sliding"
        return kind


_ATTENTION_FIELDS = ("num_attention_heads", "hidden_size")
_STATE_SPACE_MARKERS = ("mamba", "ssm", "attn_layer_period", "layers_block_type", "linear_attn")


def _refuse_non_attention(config: dict[str, Any], model_type: str) -> None:
    state_space = [k for k in config if any(m in k for m in _STATE_SPACE_MARKERS)]
    if state_space:
        raise InvalidInput(
            f"unsupported architecture {model_type!r}: state-space or linear-attention layers "
            f"({state_space[0]}) keep no per-token KV cache this planner can size"
        )
    if not all(field in config for field in _ATTENTION_FIELDS):
        raise InvalidInput(
            f"unsupported architecture {model_type!r}: the config has no attention fields "
            f"({', '.join(_ATTENTION_FIELDS)}); give a decoder-only transformer's config.json"
        )


def _int(config: dict[str, Any], field: str, default: int | None = None) -> int:
    value = config.get(field)
    if value is None:
        if default is None:
            raise InvalidInput(f"config.json has no {field!r}, which the KV-cache plan needs")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(f"config.json's {field!r} must be a positive integer, got {value!r}")
    return value


def dtype_named(text: str) -> str:
    """bf16, fp16 or fp8, from any of the spellings configs and users write."""
    name = _SPELLINGS.get(text.lower(), text.lower())
    if name not in BYTES:
        raise InvalidInput(f"unknown dtype {text!r}: use bf16, fp16 or fp8")
    return name


def _sliding(config: dict[str, Any], model_type: str, layers: int) -> tuple[int | None, int]:
    """The window and how many layers use it. ``layer_types`` (newer configs) is read as
    given; Gemma-2 slides on even layers (``not layer_idx % 2`` in its modelling code);
    ``sliding_window_pattern`` N (Gemma-3) makes every Nth layer full; otherwise a window
    applies to every layer unless ``use_sliding_window`` is false (Qwen2 publishes a window
    but disables it)."""
    window = config.get("sliding_window")
    if window is None or config.get("use_sliding_window") is False:
        return None, 0
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InvalidInput(
            f"config.json's 'sliding_window' must be a positive integer, got {window!r}"
        )
    if isinstance(config.get("layer_types"), list):
        kinds = config["layer_types"]
        if len(kinds) != layers:
            raise InvalidInput(
                f"config.json's 'layer_types' names {len(kinds)} layers, "
                f"'num_hidden_layers' {layers}"
            )
        return window, sum(kind == "sliding_attention" for kind in kinds)
    if model_type == "gemma2":
        return window, math.ceil(layers / 2)
    pattern = config.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 1:
        return window, layers - layers // pattern
    return window, layers


def _mla(config: dict[str, Any]) -> MLA | None:
    if config.get("kv_lora_rank") is None:
        return None
    return MLA(
        kv_lora_rank=_int(config, "kv_lora_rank"),
        qk_rope_head_dim=_int(config, "qk_rope_head_dim"),
        qk_nope_head_dim=_int(config, "qk_nope_head_dim"),
        v_head_dim=_int(config, "v_head_dim"),
        q_lora_rank=config.get("q_lora_rank"),
    )


def _moe(config: dict[str, Any]) -> MoE | None:
    """DeepSeek (``n_routed_experts``, shared experts of ``moe_intermediate_size`` each, the
    first ``first_k_dense_replace`` layers dense), Qwen-MoE (``num_experts``,
    ``shared_expert_intermediate_size``) and Mixtral (``num_local_experts`` of
    ``intermediate_size``)."""
    routed = config.get("n_routed_experts") or config.get("num_experts")
    if routed:
        expert = _int(config, "moe_intermediate_size")
        shared = config.get("shared_expert_intermediate_size") or expert * int(
            config.get("n_shared_experts") or 0
        )
    elif config.get("num_local_experts"):
        routed, expert, shared = config["num_local_experts"], _int(config, "intermediate_size"), 0
    else:
        return None
    return MoE(
        routed_experts=int(routed),
        experts_per_token=_int(config, "num_experts_per_tok"),
        expert_intermediate=expert,
        shared_intermediate=int(shared),
        first_moe_layer=int(config.get("first_k_dense_replace") or 0),
        layer_freq=int(config.get("moe_layer_freq") or 1),
    )


def load_model_config(path_or_example: str) -> ModelShape:
    """Read a ``config.json`` from a path, or a shipped example by name
    (``llama-3.1-8b-instruct``; see ``seamline/examples/runtime``).

    Raises ``InvalidInput`` for a missing file, a file that is not a JSON object, or a
    config the planner cannot read.
    """
    path = Path(path_or_example).expanduser()
    if not path.is_file():
        example = EXAMPLES / f"{path_or_example.removesuffix('.json')}.json"
        if not example.is_file():
            known = ", ".join(sorted(p.stem for p in EXAMPLES.glob("*.json")))
            raise InvalidInput(
                f"no such file {path_or_example!r}, nor a shipped example of that name ({known})"
            )
        path = example
    try:
        config = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InvalidInput(f"{path} is not a config.json: expected a JSON object")
    return ModelShape.from_config(
        config, name=path.parent.name if path.stem == "config" else path.stem
    )


def parameter_count(shape: ModelShape) -> int:
    """Parameters from the config: embeddings (and an untied head), attention, MLP or
    experts, norms. Biases are left out (under 0.01% where a model has them)."""
    embeddings = embedding_params(shape)
    per_layer = _attention_params(shape) + 2 * shape.hidden_size
    mlp = sum(_mlp_params(shape, layer) for layer in range(shape.num_layers))
    return embeddings + shape.num_layers * per_layer + mlp + shape.hidden_size


def embedding_params(shape: ModelShape) -> int:
    """The embeddings and an untied head: kept in 16 bits when the rest is FP8."""
    return shape.vocab_size * shape.hidden_size * (1 if shape.tie_word_embeddings else 2)


def _attention_params(shape: ModelShape) -> int:
    hidden, heads = shape.hidden_size, shape.num_attention_heads
    if shape.mla is None:
        q_and_o = 2 * hidden * heads * shape.head_dim
        return q_and_o + 2 * hidden * shape.num_kv_heads * shape.head_dim
    mla = shape.mla
    q_head = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    q = (
        hidden * heads * q_head
        if mla.q_lora_rank is None
        else mla.q_lora_rank * (hidden + heads * q_head + 1)
    )
    kv_down = hidden * (mla.kv_lora_rank + mla.qk_rope_head_dim) + mla.kv_lora_rank
    kv_up = mla.kv_lora_rank * heads * (mla.qk_nope_head_dim + mla.v_head_dim)
    return q + kv_down + kv_up + heads * mla.v_head_dim * hidden


def _is_moe_layer(moe: MoE, layer: int) -> bool:
    return layer >= moe.first_moe_layer and layer % moe.layer_freq == 0


def _mlp_params(shape: ModelShape, layer: int) -> int:
    """Gated MLP (gate, up, down: three matrices), or routed and shared experts plus the
    router on an MoE layer."""
    moe = shape.moe
    if moe is None or not _is_moe_layer(moe, layer):
        return 3 * shape.hidden_size * shape.intermediate_size
    experts = moe.routed_experts * moe.expert_intermediate + moe.shared_intermediate
    return 3 * shape.hidden_size * experts + moe.routed_experts * shape.hidden_size
