"""The KV-cache planner against worked numbers: vLLM's formula computed by hand for a dense
GQA model, sliding-window models (all layers and interleaved), MLA and tensor parallelism."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from seamline.core.errors import InvalidInput
from seamline.runtime.gpus import GIB, gpu_memory_bytes
from seamline.runtime.model_shape import (
    EXAMPLES,
    ModelShape,
    load_model_config,
    parameter_count,
)
from seamline.runtime.planner import (
    blocks_for,
    blocks_per_request,
    kv_bytes_per_token,
    kv_cache_groups,
    max_context_at,
    page_bytes,
    plan,
    weights_bytes,
)

LLAMA_8B = load_model_config("llama-3.1-8b-instruct")
LLAMA_70B = load_model_config("llama-3.1-70b-instruct")
MISTRAL_7B = load_model_config("mistral-7b-v0.1")
GEMMA_2_9B = load_model_config("gemma-2-9b-it")
DEEPSEEK_V2_LITE = load_model_config("deepseek-v2-lite")
DEEPSEEK_V3 = load_model_config("deepseek-v3")


def test_llama_3_1_70b_takes_327680_bytes_per_token_in_bf16() -> None:
    # 2 (K and V) x 80 layers x 8 KV heads x 128 head dim x 2 bytes
    assert kv_bytes_per_token(LLAMA_70B) == 2 * 80 * 8 * 128 * 2 == 327_680


def test_dense_gqa_blocks_follow_vllms_formula() -> None:
    per_token_per_layer = 2 * 8 * 128 * 2  # K and V x 8 KV heads x 128 x bf16
    assert kv_bytes_per_token(LLAMA_8B) == 32 * per_token_per_layer == 131_072
    assert page_bytes(LLAMA_8B) == 16 * per_token_per_layer == 65_536
    # usable // page_size // num_layers: 50 GiB over 2 MiB per block of all 32 layers
    assert blocks_for(50 * GIB, LLAMA_8B) == 50 * GIB // 65_536 // 32 == 25_600
    # a 32k request holds ceil(32768 / 16) blocks, so 25,600 blocks serve 12 of them
    assert blocks_per_request(LLAMA_8B, 32_768) == 2048
    assert blocks_for(50 * GIB, LLAMA_8B, kv_dtype="fp8") == 50 * GIB // (16 * 2 * 8 * 128) // 32


def test_plan_allocates_exactly_the_formulas_blocks_from_its_usable_memory() -> None:
    overhead = 2 * GIB
    found = plan(LLAMA_8B, gpu_memory_bytes("H100"), overhead_bytes=overhead, context=32_768)
    weights = (
        2 * 128_256 * 4096  # embeddings and the untied lm_head
        + 32 * (4096 * (4096 + 1024 + 1024 + 4096) + 3 * 4096 * 14_336 + 2 * 4096)
        + 4096  # the final norm
    ) * 2  # bf16
    usable = int(80 * GIB * 0.9) - weights - overhead
    assert (found.weights_bytes, found.usable_bytes) == (weights, usable)
    assert found.num_gpu_blocks == usable // (16 * 2 * 8 * 128 * 2 * 32) == 28_181
    assert found.tokens_in_cache == 28_181 * 16
    assert found.max_concurrency == 28_181 // 2048 == 13
    assert found.max_context == found.context_limit == 131_072


def test_plan_lands_within_5_percent_of_vllms_measured_kv_memory() -> None:
    # vLLM 0.11.0 on an H100 reporting 79.18 GiB, Llama-3.1-8B, gpu_memory_utilization 0.9,
    # max_num_seqs 1024: "Available KV cache memory: 51.38 GiB" (published profiling logs).
    found = plan(LLAMA_8B, int(79.18 * GIB), max_num_seqs=1024)
    measured_blocks = int(51.38 * GIB) // (65_536 * 32)
    assert found.usable_bytes == pytest.approx(51.38 * GIB, rel=0.05)
    assert found.num_gpu_blocks == pytest.approx(measured_blocks, rel=0.05)


@pytest.mark.parametrize(
    ("shape", "published"),
    [
        (LLAMA_8B, 8.03e9),
        (LLAMA_70B, 70.6e9),
        (MISTRAL_7B, 7.24e9),
        (GEMMA_2_9B, 9.24e9),
        (DEEPSEEK_V2_LITE, 15.7e9),
        (DEEPSEEK_V3, 671e9),
    ],
)
def test_parameter_count_is_within_2_percent_of_the_published_size(
    shape: ModelShape, published: float
) -> None:
    assert parameter_count(shape) == pytest.approx(published, rel=0.02)


def test_mixtral_experts_are_counted() -> None:
    config = {
        "model_type": "mixtral",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14_336,
        "vocab_size": 32_000,
        "max_position_embeddings": 32_768,
        "tie_word_embeddings": False,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    }
    assert parameter_count(ModelShape.from_config(config)) == pytest.approx(46.7e9, rel=0.02)


def test_every_layer_sliding_keeps_vllms_block_count_but_caps_what_a_request_holds() -> None:
    assert kv_cache_groups(MISTRAL_7B).layers_per_group == 32
    assert blocks_for(10 * GIB, MISTRAL_7B) == 10 * GIB // (16 * 2 * 8 * 128 * 2) // 32 == 5120
    # SlidingWindowSpec: ceil(min(window - 1 + max_num_batched_tokens, context) / 16) + 1
    assert blocks_per_request(MISTRAL_7B, 32_768) == math.ceil((4096 - 1 + 8192) / 16) + 1 == 769
    found = plan(MISTRAL_7B, 40 * GIB, overhead_bytes=0, context=32_768, concurrency=7)
    blocks = found.num_gpu_blocks
    assert found.max_concurrency == blocks // 769
    # full attention would hold ceil(32768 / 16) = 2048 blocks per request: 2.66 times fewer
    assert found.max_concurrency >= 2.5 * (blocks // 2048)
    # seven requests share blocks // 7 blocks each: the window's 769 fit, so no context limit
    assert found.max_context == 32_768


def test_sliding_window_context_is_bounded_when_the_window_no_longer_fits() -> None:
    # 5,120 blocks over 7 requests leave 731 each: (731 - 1) x 16 tokens
    assert max_context_at(MISTRAL_7B, 5120, 7) == (5120 // 7 - 1) * 16 == 11_680


def test_interleaved_sliding_layers_are_grouped_like_vllms_hybrid_allocator() -> None:
    groups = kv_cache_groups(GEMMA_2_9B)  # 21 sliding and 21 full layers of 42
    assert (groups.layers_per_group, groups.full_groups, groups.sliding_groups) == (21, 1, 1)
    page = 16 * 2 * 8 * 256 * 2  # 8 KV heads of 256
    assert blocks_for(20 * GIB, GEMMA_2_9B) == 20 * GIB // page // 21 == 7801
    # a request takes blocks in both groups: full ceil(8192/16), sliding ceil(8192/16) + 1
    assert blocks_per_request(GEMMA_2_9B, 8192) == 512 + 513
    # with a 512-token prefill chunk the sliding group keeps ceil((4095 + 512) / 16) + 1
    assert blocks_per_request(GEMMA_2_9B, 8192, max_num_batched_tokens=512) == 512 + 289
    found = plan(GEMMA_2_9B, 40 * GIB, overhead_bytes=GIB)
    assert found.tokens_in_cache == found.num_gpu_blocks // 2 * 16


def test_mla_caches_one_latent_that_tensor_parallelism_does_not_split() -> None:
    # no factor 2: kv_lora_rank 512 + qk_rope_head_dim 64 values per token and layer
    assert kv_bytes_per_token(DEEPSEEK_V2_LITE) == 27 * (512 + 64) * 2 == 31_104
    assert kv_bytes_per_token(DEEPSEEK_V2_LITE, tp=2) == 31_104
    assert blocks_for(40 * GIB, DEEPSEEK_V2_LITE) == 40 * GIB // (16 * 576 * 2) // 27 == 86_302
    assert kv_bytes_per_token(DEEPSEEK_V3) == 61 * 576 * 2 == 70_272
    assert kv_bytes_per_token(DEEPSEEK_V3, tp=8, kv_dtype="fp8") == 61 * 576


def test_fp8_checkpoint_plans_fp8_weights_with_a_16_bit_cache_by_default() -> None:
    found = plan(DEEPSEEK_V3, gpu_memory_bytes("H200"), tp=8)
    assert (found.dtype, found.kv_dtype) == ("fp8", "bf16")  # vLLM's kv_cache_dtype=auto
    embeddings = 2 * 129_280 * 7168
    rest = parameter_count(DEEPSEEK_V3) - embeddings
    assert found.weights_bytes == math.ceil((embeddings * 2 + rest) / 8)
    assert found.kv_bytes_per_token_all_gpus == 8 * 70_272  # every rank holds the latent


def test_tensor_parallel_splits_kv_heads_and_replicates_them_beyond_their_count() -> None:
    # TP 4: 8 KV heads / 4 = 2 per GPU
    assert kv_bytes_per_token(LLAMA_70B, tp=4) == 2 * 80 * 2 * 128 * 2 == 81_920
    assert blocks_for(30 * GIB, LLAMA_70B, tp=4) == 30 * GIB // (16 * 2 * 2 * 128 * 2) // 80
    # TP 16: max(1, 8 // 16) = 1 head per GPU, each head held by two GPUs
    assert kv_bytes_per_token(LLAMA_70B, tp=16) == 2 * 80 * 1 * 128 * 2 == 40_960
    assert blocks_for(30 * GIB, LLAMA_70B, tp=16) == 30 * GIB // (16 * 2 * 128 * 2) // 80
    found = plan(LLAMA_70B, gpu_memory_bytes("H100"), tp=16, overhead_bytes=GIB)
    assert found.kv_bytes_per_token_all_gpus == 2 * 327_680
    assert found.weights_bytes == math.ceil(weights_bytes(LLAMA_70B) / 16)
    assert found.num_gpu_blocks == found.usable_bytes // (16 * 2 * 128 * 2) // 80


def test_tensor_parallel_size_must_divide_the_heads() -> None:
    with pytest.raises(InvalidInput, match="64 attention heads"):
        plan(LLAMA_70B, gpu_memory_bytes("H100"), tp=3)


def test_weights_too_big_for_the_gpu_say_how_much_is_needed() -> None:
    with pytest.raises(InvalidInput) as raised:
        plan(LLAMA_70B, gpu_memory_bytes("L4"))
    # 70.55e9 parameters x 2 bytes = 131.4 GiB against 24 GiB x 0.9
    assert "131.4 GiB" in raised.value.message and "21.6 GiB" in raised.value.message


def test_a_config_without_num_hidden_layers_is_refused_by_name() -> None:
    config = json.loads((EXAMPLES / "llama-3.1-8b-instruct.json").read_text())
    del config["num_hidden_layers"]
    with pytest.raises(InvalidInput, match="'num_hidden_layers'"):
        ModelShape.from_config(config)


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "resnet", "num_channels": 3, "hidden_sizes": [256, 512]},
        {"model_type": "mamba", "num_hidden_layers": 64, "hidden_size": 2560, "ssm_cfg": {}},
    ],
)
def test_an_architecture_without_attention_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="unsupported architecture"):
        ModelShape.from_config(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"text_config": [1], "num_hidden_layers": None}, "text_config"),
        ({"quantization_config": "fp8"}, "quantization_config"),
        ({"hidden_size": 16, "head_dim": None}, "smaller than its attention heads"),
        ({"sliding_window": 0}, "sliding_window"),
        ({"sliding_window": 4096, "layer_types": ["sliding_attention"] * 40}, "layer_types"),
        ({"num_local_experts": 8, "num_experts_per_tok": 2, "moe_layer_freq": "x"}, "ValueError"),
    ],
)
def test_fields_of_the_wrong_type_or_size_are_one_clear_error(
    change: dict[str, object], message: str
) -> None:
    config = json.loads((EXAMPLES / "llama-3.1-8b-instruct.json").read_text())
    config.update(change)
    for field in [k for k, v in change.items() if v is None]:
        del config[field]
    with pytest.raises(InvalidInput, match=message):
        ModelShape.from_config(config)


def test_files_that_are_missing_or_not_json_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        load_model_config(str(tmp_path / "absent.json"))
    broken = tmp_path / "config.json"
    broken.write_text("{not json")
    with pytest.raises(InvalidInput, match="is not JSON"):
        load_model_config(str(broken))
    broken.write_text("[1, 2]")
    with pytest.raises(InvalidInput, match="JSON object"):
        load_model_config(str(broken))


def test_gpus_by_name_or_size() -> None:
    assert gpu_memory_bytes("H100") == gpu_memory_bytes("nvidia h100-80gb") == 80 * GIB
    assert gpu_memory_bytes("80GB") == gpu_memory_bytes("80") == 80 * GIB
    assert gpu_memory_bytes("24GiB") == gpu_memory_bytes("l4") == 24 * GIB
    assert gpu_memory_bytes("79.18GiB") == int(79.18 * GIB)
    with pytest.raises(InvalidInput, match=r"unknown GPU 'K80'.*H100-80GB"):
        gpu_memory_bytes("K80")
