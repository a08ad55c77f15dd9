"""``seamline runtime plan``: the KV cache vLLM would allocate for a model on a GPU, and the
concurrency and context length it allows."""

from __future__ import annotations

from typing import Annotated

import typer

from seamline.cli.context import JsonOption
from seamline.cli.output import print_json
from seamline.runtime.gpus import GIB, gpu_memory_bytes
from seamline.runtime.model_shape import load_model_config
from seamline.runtime.planner import KVPlan, plan

ConfigOption = Annotated[
    str,
    typer.Option(
        "--model",
        metavar="CONFIG.json",
        help="a Hugging Face config.json, or a shipped example (llama-3.1-8b-instruct, "
        "llama-3.1-70b-instruct, mistral-7b-v0.1, qwen2.5-7b-instruct, gemma-2-9b-it, "
        "deepseek-v2-lite, deepseek-v3)",
    ),
]
GpuOption = Annotated[
    str,
    typer.Option("--gpu", metavar="NAME_OR_GB", help="a GPU (H100, A100-40GB, L4...) or GiB (80)"),
]
TpOption = Annotated[int, typer.Option("--tp", min=1, help="tensor-parallel GPUs")]
DtypeOption = Annotated[
    str, typer.Option("--dtype", help="weights: auto (the checkpoint's), bf16, fp16, fp8")
]
KvDtypeOption = Annotated[
    str,
    typer.Option("--kv-dtype", help="KV cache: auto (the model's, as vLLM), bf16, fp16, fp8"),
]
MaxNumSeqsOption = Annotated[
    int,
    typer.Option("--max-num-seqs", min=1, help="vLLM's (1024 on 70+ GiB GPUs since 0.10)"),
]
BatchedTokensOption = Annotated[
    int, typer.Option("--max-num-batched-tokens", min=1, help="vLLM's prefill chunk")
]


def plan_command(
    model: ConfigOption,
    gpu: GpuOption,
    tp: TpOption = 1,
    dtype: DtypeOption = "auto",
    kv_dtype: KvDtypeOption = "auto",
    context: Annotated[
        int | None,
        typer.Option("--context", help="tokens per request (default: the model's limit)"),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", help="requests at once (default 1)")
    ] = None,
    gpu_memory_utilization: Annotated[
        float, typer.Option("--gpu-memory-utilization", help="vLLM's share of each GPU")
    ] = 0.9,
    max_num_seqs: MaxNumSeqsOption = 256,
    max_num_batched_tokens: BatchedTokensOption = 8192,
    json_output: JsonOption = False,
) -> None:
    """Plan the KV cache: bytes per token, the blocks vLLM would allocate, the most requests
    at a context length and the longest context at a concurrency.

    Example: seamline runtime plan --model llama-3.1-70b-instruct --gpu H100 --tp 4 --context 32768
    """
    found = plan(
        load_model_config(model),
        gpu_memory_bytes(gpu),
        tp=tp,
        dtype=dtype,
        kv_dtype=kv_dtype,
        context=context,
        concurrency=concurrency,
        gpu_memory_utilization=gpu_memory_utilization,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
    )
    if json_output:
        print_json(found.as_dict())
        return
    for line in report_lines(found, gpu):
        typer.echo(line)


def report_lines(found: KVPlan, gpu: str) -> list[str]:
    """The plan as a short report, the estimated figures marked as such."""
    estimate = " (estimate)" if found.overhead_estimated else " (given)"
    gpus = f"{found.tp} GPUs" if found.tp > 1 else "1 GPU"
    block = found.page_bytes * found.layers_per_group
    rows = [
        (
            "KV per token",
            f"{found.kv_bytes_per_token:,} B per GPU ({found.kv_heads_per_gpu} KV heads per "
            f"GPU; {found.kv_bytes_per_token_all_gpus:,} B over {gpus})",
        ),
        (
            "KV block",
            f"{found.block_size} tokens x {found.layers_per_group} layers = {block:,} B "
            f"(page {found.page_bytes:,} B)",
        ),
        (
            "memory per GPU",
            f"{_gib(found.gpu_bytes * found.gpu_memory_utilization)} "
            f"(gpu_memory_utilization {found.gpu_memory_utilization})",
        ),
        ("  weights", f"{_gib(found.weights_bytes)} (estimate)"),
        ("  activations", f"{_gib(found.activation_bytes)}{estimate}"),
        ("  non-torch", f"{_gib(found.other_bytes)}{estimate}: NCCL, cuBLAS, CUDA graphs"),
        ("  KV cache", _gib(found.usable_bytes)),
        ("KV blocks", f"{found.num_gpu_blocks:,} = {found.tokens_in_cache:,} tokens"),
        ("concurrency", _concurrency(found)),
        ("context", _context(found)),
    ]
    where = "a GPU" if gpu[:1].isdigit() else gpu
    title = (
        f"{found.model} ({found.attention}) on {where} ({_gib(found.gpu_bytes)}) x {found.tp}: "
        f"weights {found.dtype}, KV cache {found.kv_dtype}"
    )
    return [title, *(f"  {label:<16}{value}" for label, value in rows)]


def _gib(value: float) -> str:
    return f"{value / GIB:.2f} GiB"


def _concurrency(found: KVPlan) -> str:
    text = (
        f"{found.max_concurrency:,} requests of {found.context:,} tokens "
        f"({found.blocks_per_request:,} blocks each)"
    )
    if found.max_concurrency == 0:
        return text + "; vLLM would refuse this max_model_len"
    if found.max_concurrency > found.max_num_seqs:
        return text + f"; the scheduler runs at most max_num_seqs={found.max_num_seqs}"
    return text


def _context(found: KVPlan) -> str:
    requests = "1 request" if found.concurrency == 1 else f"{found.concurrency:,} requests"
    text = f"{found.max_context:,} tokens for {requests}"
    return text + " (the model's limit)" if found.max_context == found.context_limit else text
