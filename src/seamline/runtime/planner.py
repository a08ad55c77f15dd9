"""The KV-cache capacity planner: how many KV blocks vLLM would allocate for a model on a GPU,
and what that means for concurrency and context length.

What is exact (vLLM v1's own arithmetic, ``vllm/v1/kv_cache_interface.py`` and
``vllm/v1/core/kv_cache_utils.py``):

- bytes per token per layer: ``2 x kv_heads_per_gpu x head_dim x bytes`` (K and V), with
  ``kv_heads_per_gpu = max(1, kv_heads // tp)``, so KV heads are replicated when TP exceeds
  them; MLA (DeepSeek-V2/V3) keeps one latent of ``kv_lora_rank + qk_rope_head_dim`` values
  per token and layer (no factor 2), and every TP rank holds all of it. FP8 is one byte per
  value; its scales are per-layer scalars, not per-token storage, so they cost nothing here;
- the page: ``block_size x`` bytes per token per layer;
- the block count given usable memory: ``usable // page // layers_per_group``, where a model
  whose layers are all alike is one group of every layer, and a hybrid (sliding and full
  layers interleaved, Gemma-2) is split by ``_get_kv_cache_groups_uniform_page_size`` into
  groups of equal size that share each block's memory;
- the blocks one request needs (``max_memory_usage_bytes``): ``ceil(context / block)`` for a
  full-attention group and ``ceil(min(window - 1 + max_num_batched_tokens, context) / block)
  + 1`` for a sliding-window group, so a sliding model's concurrency at long context is far
  higher; the maximum concurrency is blocks over blocks per request, as vLLM logs it.

What is estimated (vLLM measures these by profiling at start-up; pass ``overhead_bytes`` to
use the figures from its log instead):

- the weights: a parameter count from the config (embeddings, untied head, attention incl.
  MLA's projections, MLP, MoE experts, shared experts and router; norms), times the bytes
  per parameter, divided by TP. Dividing everything by TP is an approximation: vLLM
  replicates MLA's down-projections and KV heads beyond TP, and pads the vocabulary;
- activations: the larger of the forward pass over ``max_num_batched_tokens`` tokens and the
  sampler's warm-up over ``max_num_seqs`` rows of logits (which dominates for most models);
- non-torch memory (NCCL, cuBLAS workspaces) and CUDA graphs: fixed figures.

Checked against vLLM 0.11's published log for Llama-3.1-8B on an H100 (79.18 GiB, weights
14.99 GiB, activations 4.76 GiB at max_num_seqs 1024, non-torch 0.13 GiB, 51.38 GiB of KV
cache), the plan's KV memory is 0.7% under vLLM's. vLLM 0.10+ defaults to max_num_seqs 1024 on
GPUs of 70 GiB and more; this planner's default is 256, so pass the engine's value.

Not verified against a running engine: the hybrid grouping for Gemma-2 (read from vLLM's code,
which enables the hybrid allocator by default) and the MLA figures. A sliding-window request's
blocks are vLLM's worst case, during chunked prefill; in steady decode it holds fewer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from seamline.core.errors import InvalidInput
from seamline.runtime.gpus import GIB
from seamline.runtime.model_shape import (
    BYTES,
    ModelShape,
    dtype_named,
    embedding_params,
    parameter_count,
)

BLOCK_SIZE = 16  # vLLM's default on CUDA; FlashMLA forces 64 and CUTLASS MLA 128 for MLA models

# Sampler warm-up per (sequence x vocabulary entry): fp32 logits, a sorted copy with int64
# indices for top-k/top-p, probabilities and masks. Fitted to vLLM 0.11.0's "torch peak memory
# increase" on an H100 at max_num_seqs 1024: Llama-3.1-8B 4.76 GiB, Qwen3-0.6B 5.56 GiB,
# Qwen3-32B 5.64 GiB, gpt-oss-20b 7.38 GiB give 38.4-38.9 bytes per entry.
SAMPLER_BYTES_PER_LOGIT = 38
# Live tensors per token in a layer besides the MLP's: residual, normed input, attention
# output and the QKV projection, about four hidden-sized vectors.
FORWARD_HIDDEN_COPIES = 4
# vLLM 0.11 logged 0.13 GiB of non-torch memory at TP 1 and 0.55 GiB at TP 2 (NCCL buffers,
# the custom all-reduce), on the same H100s.
NON_TORCH_BYTES = {False: int(0.15 * GIB), True: int(0.6 * GIB)}
# CUDA graphs: recent vLLM subtracts a profiled estimate (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS);
# measured captures range from about -0.9 to +1 GiB, so a middle figure.
CUDA_GRAPH_BYTES = int(0.5 * GIB)


def kv_heads_per_gpu(shape: ModelShape, tp: int = 1) -> int:
    """KV heads each GPU holds: MLA's latent is one head every rank keeps whole; otherwise
    heads split over TP and are replicated once TP exceeds them."""
    return 1 if shape.mla else max(1, shape.num_kv_heads // tp)


def _layer_bytes_per_token(shape: ModelShape, tp: int, kv_dtype: str) -> int:
    width = BYTES[_kv_dtype(shape, kv_dtype)]
    if shape.mla:
        return (shape.mla.kv_lora_rank + shape.mla.qk_rope_head_dim) * width
    return 2 * kv_heads_per_gpu(shape, tp) * shape.head_dim * width


def _kv_dtype(shape: ModelShape, kv_dtype: str) -> str:
    return shape.torch_dtype if kv_dtype == "auto" else dtype_named(kv_dtype)


def kv_bytes_per_token(shape: ModelShape, *, tp: int = 1, kv_dtype: str = "bf16") -> int:
    """KV-cache bytes one token takes on one GPU, summed over the layers. Multiply by ``tp``
    for the whole tensor-parallel group (replicated heads and MLA latents counted per GPU).

    >>> kv_bytes_per_token(load_model_config("llama-3.1-70b-instruct"))  # 2 x 80 x 8 x 128 x 2
    327680
    """
    return shape.num_layers * _layer_bytes_per_token(shape, tp, kv_dtype)


def page_bytes(
    shape: ModelShape, *, tp: int = 1, kv_dtype: str = "bf16", block_size: int = BLOCK_SIZE
) -> int:
    """vLLM's ``page_size_bytes``: one block of tokens in one layer."""
    return block_size * _layer_bytes_per_token(shape, tp, kv_dtype)


@dataclass(frozen=True)
class KVGroups:
    """vLLM's KV-cache groups: ``layers_per_group`` layers share each block's memory, and a
    request takes blocks in each of ``full_groups`` and ``sliding_groups``."""

    layers_per_group: int
    full_groups: int
    sliding_groups: int


def kv_cache_groups(shape: ModelShape) -> KVGroups:
    """Group layers as vLLM v1 does: one group when all layers are alike (all full, or all
    sliding with one window), else groups of the smaller type's layer count, or of the larger
    when it is under 1.5 times the smaller (``_get_kv_cache_groups_uniform_page_size``)."""
    sliding = shape.sliding_layers
    full = shape.num_layers - sliding
    if not sliding or not full:
        return KVGroups(shape.num_layers, int(full > 0), int(sliding > 0))
    size = min(full, sliding)
    if max(full, sliding) < size * 1.5:
        size = max(full, sliding)
    return KVGroups(size, math.ceil(full / size), math.ceil(sliding / size))


def blocks_for(
    usable_bytes: int,
    shape: ModelShape,
    *,
    tp: int = 1,
    kv_dtype: str = "bf16",
    block_size: int = BLOCK_SIZE,
) -> int:
    """The KV blocks vLLM allocates from ``usable_bytes`` per GPU (``get_num_blocks``):
    ``usable // page_size // layers_per_group``."""
    page = page_bytes(shape, tp=tp, kv_dtype=kv_dtype, block_size=block_size)
    return max(0, usable_bytes // page // kv_cache_groups(shape).layers_per_group)


def blocks_per_request(
    shape: ModelShape,
    context: int,
    *,
    block_size: int = BLOCK_SIZE,
    max_num_batched_tokens: int = 8192,
) -> int:
    """Blocks one request of ``context`` tokens may hold at most (``max_memory_usage_bytes``
    over the groups): a sliding group keeps the window plus one prefill chunk, and one more
    block because the window need not start on a block boundary."""
    groups = kv_cache_groups(shape)
    full = math.ceil(context / block_size)
    sliding = 0
    if shape.sliding_window:
        kept = min(shape.sliding_window - 1 + max_num_batched_tokens, context)
        sliding = math.ceil(kept / block_size) + 1
    return groups.full_groups * full + groups.sliding_groups * sliding


@dataclass(frozen=True)
class KVPlan:
    """A plan for one model on one GPU type. Byte figures are per GPU."""

    model: str
    attention: str
    gpu_bytes: int
    tp: int
    dtype: str
    kv_dtype: str
    block_size: int
    gpu_memory_utilization: float
    kv_heads_per_gpu: int
    kv_bytes_per_token: int
    kv_bytes_per_token_all_gpus: int
    page_bytes: int
    layers_per_group: int
    weights_bytes: int
    activation_bytes: int
    other_bytes: int
    overhead_estimated: bool
    usable_bytes: int
    num_gpu_blocks: int
    tokens_in_cache: int
    context: int
    blocks_per_request: int
    max_concurrency: int
    concurrency: int
    max_context: int
    context_limit: int
    max_num_seqs: int
    max_num_batched_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def weights_bytes(shape: ModelShape, *, dtype: str = "auto", tp: int = 1) -> int:
    """Weight bytes per GPU (``dtype`` as in ``plan``). With FP8 the embeddings and head stay
    in 16 bits (vLLM quantises linear layers only); everything is divided by TP (an
    approximation, see the module)."""
    weights = _weights_dtype(shape, dtype)
    compute = BYTES[_compute_dtype(shape, weights)]
    embeddings = embedding_params(shape)
    rest = parameter_count(shape) - embeddings
    return math.ceil((embeddings * compute + rest * BYTES[weights]) / tp)


def _compute_dtype(shape: ModelShape, dtype: str) -> str:
    """The activation dtype: the weights' when 16-bit, else the checkpoint's. vLLM's
    ``kv_cache_dtype=auto`` is this one, not the weights' quantisation."""
    return dtype if dtype in ("bf16", "fp16") else shape.torch_dtype


def _weights_dtype(shape: ModelShape, dtype: str) -> str:
    if dtype != "auto":
        return dtype_named(dtype)
    if shape.quantization == "fp8":
        return "fp8"
    if shape.quantization:
        raise InvalidInput(
            f"{shape.name}'s weights are quantised with {shape.quantization!r}: "
            "give the dtype to plan with (bf16, fp16 or fp8)"
        )
    return shape.torch_dtype


def activation_bytes(
    shape: ModelShape,
    *,
    tp: int = 1,
    dtype: str = "bf16",
    max_num_seqs: int = 256,
    max_num_batched_tokens: int = 8192,
) -> int:
    """Estimated peak of vLLM's profile run: the larger of the forward pass over
    ``max_num_batched_tokens`` tokens (hidden-sized copies plus the MLP's or the fused MoE's
    intermediates) and the sampler over ``min(max_num_seqs, max_num_batched_tokens)`` rows of
    logits (see ``SAMPLER_BYTES_PER_LOGIT``)."""
    mlp = 3 * shape.intermediate_size // tp
    if shape.moe:
        moe = shape.moe
        fused = moe.experts_per_token * (3 * moe.expert_intermediate // tp + shape.hidden_size)
        mlp = max(mlp, fused)
    width = FORWARD_HIDDEN_COPIES * shape.hidden_size + mlp
    forward = max_num_batched_tokens * width * BYTES[_compute_dtype(shape, dtype)]
    rows = min(max_num_seqs, max_num_batched_tokens)
    return max(forward, SAMPLER_BYTES_PER_LOGIT * rows * shape.vocab_size)


def other_bytes(*, tp: int = 1) -> int:
    """Non-torch memory (NCCL and the custom all-reduce when TP > 1, cuBLAS workspaces) and
    CUDA graphs: fixed estimates, see the constants."""
    return NON_TORCH_BYTES[tp > 1] + CUDA_GRAPH_BYTES


def _check_tp(shape: ModelShape, tp: int) -> None:
    """vLLM's own constraints: attention heads divide evenly, and KV heads either divide by
    TP or divide TP (so each rank holds whole, possibly replicated, heads)."""
    if tp < 1:
        raise InvalidInput(f"tensor parallel size must be at least 1, got {tp}")
    if shape.num_attention_heads % tp:
        raise InvalidInput(
            f"{shape.name} has {shape.num_attention_heads} attention heads, "
            f"which tensor parallel size {tp} does not divide"
        )
    kv = shape.num_kv_heads
    if not shape.mla and kv % tp and tp % kv:
        raise InvalidInput(f"{shape.name}'s {kv} KV heads cannot be split over {tp} GPUs")


def _check_sizes(utilization: float, context: int | None, concurrency: int | None) -> None:
    if not 0 < utilization <= 1:
        raise InvalidInput(f"gpu_memory_utilization must be in (0, 1], got {utilization}")
    for name, value in (("context", context), ("concurrency", concurrency)):
        if value is not None and value < 1:
            raise InvalidInput(f"{name} must be at least 1, got {value}")


def max_context_at(
    shape: ModelShape,
    num_blocks: int,
    concurrency: int,
    *,
    block_size: int = BLOCK_SIZE,
    max_num_batched_tokens: int = 8192,
) -> int:
    """The longest context (up to the model's limit) at which ``concurrency`` requests fit in
    ``num_blocks``; 0 when not even one token each does. A binary search, as vLLM's
    ``estimate_max_model_len``: the blocks a request needs grow with its context."""
    sizes = {"block_size": block_size, "max_num_batched_tokens": max_num_batched_tokens}
    low, high = 0, shape.max_position_embeddings
    while low < high:
        middle = (low + high + 1) // 2
        if concurrency * blocks_per_request(shape, middle, **sizes) <= num_blocks:
            low = middle
        else:
            high = middle - 1
    return low


def plan(
    shape: ModelShape,
    gpu_bytes: int,
    *,
    tp: int = 1,
    dtype: str = "auto",
    kv_dtype: str = "auto",
    context: int | None = None,
    concurrency: int | None = None,
    gpu_memory_utilization: float = 0.9,
    block_size: int = BLOCK_SIZE,
    max_num_seqs: int = 256,
    max_num_batched_tokens: int = 8192,
    overhead_bytes: int | None = None,
) -> KVPlan:
    """Plan ``shape`` on GPUs of ``gpu_bytes`` each, ``tp`` of them.

    ``dtype`` is the weights' (``auto``: fp8 for an fp8 checkpoint, else its ``torch_dtype``);
    ``kv_dtype`` ``auto`` is the model's activation dtype, as vLLM's, so fp8 weights still
    get a 16-bit cache. ``context`` defaults to the model's ``max_position_embeddings`` (vLLM's
    default ``max_model_len``), ``concurrency`` to 1. ``overhead_bytes`` replaces the
    estimated activations, non-torch memory and CUDA graphs with one figure per GPU.

    Raises ``InvalidInput`` when the weights do not fit, or nothing is left for the cache.
    """
    _check_tp(shape, tp)
    _check_sizes(gpu_memory_utilization, context, concurrency)
    weights_dtype = _weights_dtype(shape, dtype)
    cache_dtype = (
        _compute_dtype(shape, weights_dtype) if kv_dtype == "auto" else dtype_named(kv_dtype)
    )
    budget = int(gpu_bytes * gpu_memory_utilization)
    weights = weights_bytes(shape, dtype=weights_dtype, tp=tp)
    if weights >= budget:
        raise InvalidInput(
            f"{shape.name} needs {weights / GIB:.1f} GiB of {weights_dtype} weights per GPU at "
            f"tp {tp}, but a GPU gives {budget / GIB:.1f} GiB at gpu_memory_utilization "
            f"{gpu_memory_utilization}: raise --tp or use fp8 weights"
        )
    if overhead_bytes is None:
        activations = activation_bytes(
            shape,
            tp=tp,
            dtype=weights_dtype,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
        )
        other = other_bytes(tp=tp)
    else:
        activations, other = 0, overhead_bytes
    usable = budget - weights - activations - other
    if usable <= 0:
        raise InvalidInput(
            f"no memory left for the KV cache: {budget / GIB:.1f} GiB less {weights / GIB:.1f} "
            f"GiB of weights and {(activations + other) / GIB:.1f} GiB of overheads"
        )
    sizes = {"block_size": block_size, "max_num_batched_tokens": max_num_batched_tokens}
    blocks = blocks_for(usable, shape, tp=tp, kv_dtype=cache_dtype, block_size=block_size)
    groups = kv_cache_groups(shape)
    context = context or shape.max_position_embeddings
    concurrency = concurrency or 1
    per_request = blocks_per_request(shape, context, **sizes)
    per_token = kv_bytes_per_token(shape, tp=tp, kv_dtype=cache_dtype)
    return KVPlan(
        model=shape.name,
        attention=shape.attention,
        gpu_bytes=gpu_bytes,
        tp=tp,
        dtype=weights_dtype,
        kv_dtype=cache_dtype,
        block_size=block_size,
        gpu_memory_utilization=gpu_memory_utilization,
        kv_heads_per_gpu=kv_heads_per_gpu(shape, tp),
        kv_bytes_per_token=per_token,
        kv_bytes_per_token_all_gpus=per_token * tp,
        page_bytes=page_bytes(shape, tp=tp, kv_dtype=cache_dtype, block_size=block_size),
        layers_per_group=groups.layers_per_group,
        weights_bytes=weights,
        activation_bytes=activations,
        other_bytes=other,
        overhead_estimated=overhead_bytes is None,
        usable_bytes=usable,
        num_gpu_blocks=blocks,
        # As vLLM logs "GPU KV cache size": a token needs a block in every group.
        tokens_in_cache=blocks // (groups.full_groups + groups.sliding_groups) * block_size,
        context=context,
        blocks_per_request=per_request,
        max_concurrency=blocks // per_request,
        concurrency=concurrency,
        max_context=max_context_at(shape, blocks, concurrency, **sizes),
        context_limit=shape.max_position_embeddings,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
    )
