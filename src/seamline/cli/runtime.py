"""``seamline runtime``: the serving engines behind the gateway (live figures, the KV-cache
plan, and the plan checked against what an engine reports)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from seamline.cli.context import JsonOption, settings
from seamline.cli.output import print_json, print_table
from seamline.cli.runtime_plan import (
    BatchedTokensOption,
    ConfigOption,
    DtypeOption,
    GpuOption,
    KvDtypeOption,
    MaxNumSeqsOption,
    TpOption,
    plan_command,
)
from seamline.cli.runtime_simulate import simulate_command
from seamline.core.errors import InvalidInput
from seamline.gateway.catalog import ModelCatalog
from seamline.runtime.gpus import gpu_memory_bytes
from seamline.runtime.model_shape import load_model_config
from seamline.runtime.planner import plan
from seamline.runtime.scraper import EngineScraper, ScrapeState, targets_of

runtime_app = typer.Typer(
    help="Serving engines: live load, KV-cache planning, a simulated engine.",
    no_args_is_help=True,
)
runtime_app.command("plan")(plan_command)
runtime_app.command("simulate")(simulate_command)
ModelOption = Annotated[str | None, typer.Option("--model", help="one model name's replicas")]


def scraped(model: str | None, rates_over_s: float) -> list[ScrapeState]:
    """Every configured replica that names an engine, read twice ``rates_over_s`` apart (the
    token rates and the prefix hit rate need two readings), as the gateway reads them."""
    current = settings()
    catalog = ModelCatalog(current.models)
    deployments = [
        d
        for entry in catalog.entries.values()
        if model is None or entry.name == model
        for d in entry.deployments
    ]
    targets = targets_of(deployments)
    if not targets:
        raise InvalidInput(
            'no deployment names its serving engine: add engine = "vllm" (or sglang, tgi, '
            "llama.cpp) to its [[models]] table in seamline.toml"
            + (f" for model {model}" if model else "")
        )
    runtime = current.gateway.runtime
    scraper = EngineScraper(targets, timeout_s=runtime.scrape_timeout_s)

    async def read() -> None:
        await scraper.scrape_once()
        if rates_over_s > 0:
            await asyncio.sleep(rates_over_s)
            await scraper.scrape_once()
        await scraper.stop()

    asyncio.run(read())
    return list(scraper.states.values())


@runtime_app.command()
def status(
    model: ModelOption = None,
    rates_over: Annotated[
        float, typer.Option("--rates-over", min=0, help="seconds between two readings")
    ] = 1.0,
    json_output: JsonOption = False,
) -> None:
    """Every replica's live figures from its engine's /metrics: requests running and
    waiting, KV-cache usage, prefix-cache hit rate, token rates, preemptions.

    Example: seamline runtime status --model llama-3.1-8b
    """
    rows = [_row(state) for state in scraped(model, rates_over)]
    if json_output:
        print_json(rows)
        return
    print_table(
        [
            {
                **row,
                "kv_cache": _percent(row["kv_cache_usage"]),
                "prefix_hits": _percent(row["prefix_cache_hit_rate"]),
                "prompt_tok_s": _rounded(row["prompt_tokens_per_s"]),
                "gen_tok_s": _rounded(row["generation_tokens_per_s"]),
            }
            for row in rows
        ],
        [
            "replica",
            "model",
            "engine",
            "up",
            "running",
            "waiting",
            "kv_cache",
            "prefix_hits",
            "prompt_tok_s",
            "gen_tok_s",
            "preemptions",
            "error",
        ],
    )


def _row(state: ScrapeState) -> dict[str, Any]:
    target, load = state.target, state.load
    figures = load.figures if load is not None else None
    return {
        "replica": target.replica,
        "model": target.model,
        "engine": target.engine,
        "up": state.error is None and load is not None,
        "running": figures.running if figures else None,
        "waiting": figures.waiting if figures else None,
        "kv_cache_usage": figures.kv_usage if figures else None,
        "prefix_cache_hit_rate": load.prefix_hit_rate if load else None,
        "prompt_tokens_per_s": load.prompt_tokens_per_s if load else None,
        "generation_tokens_per_s": load.generation_tokens_per_s if load else None,
        "preemptions": figures.preemptions if figures else None,
        "num_gpu_blocks": figures.cache.num_gpu_blocks if figures and figures.cache else None,
        "error": state.error,
    }


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value:.0%}"


def _rounded(value: float | None) -> str | None:
    return None if value is None else f"{value:,.0f}"


@runtime_app.command()
def check(
    config: ConfigOption,
    gpu: GpuOption,
    model: Annotated[
        str | None, typer.Option("--served", help="one served model name's replicas")
    ] = None,
    tp: TpOption = 1,
    dtype: DtypeOption = "auto",
    kv_dtype: KvDtypeOption = "auto",
    max_num_seqs: MaxNumSeqsOption = 256,
    max_num_batched_tokens: BatchedTokensOption = 8192,
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0, help="largest share the blocks may differ")
    ] = 0.05,
    json_output: JsonOption = False,
) -> None:
    """Compare the plan with the KV blocks each vLLM replica reports
    (vllm:cache_config_info), at the block size and gpu_memory_utilization it states. Exits
    1 when a replica differs by more than --tolerance, or reports no cache configuration.

    Example: seamline runtime check --model llama-3.1-8b-instruct --gpu H100 --served llama
    """
    shape = load_model_config(config)
    gpu_bytes = gpu_memory_bytes(gpu)
    rows: list[dict[str, Any]] = []
    for state in scraped(model, rates_over_s=0):
        cache = state.load.figures.cache if state.load is not None else None
        row: dict[str, Any] = {"replica": state.target.replica, "reported_blocks": None}
        if cache is None or not cache.num_gpu_blocks:
            row["verdict"] = state.error or "reports no cache configuration"
            rows.append(row)
            continue
        planned = plan(
            shape,
            gpu_bytes,
            tp=tp,
            dtype=dtype,
            kv_dtype=kv_dtype,
            gpu_memory_utilization=cache.gpu_memory_utilization or 0.9,
            block_size=cache.block_size or 16,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
        )
        difference = planned.num_gpu_blocks / cache.num_gpu_blocks - 1
        row |= {
            "reported_blocks": cache.num_gpu_blocks,
            "planned_blocks": planned.num_gpu_blocks,
            "difference": round(difference, 4),
            "block_size": planned.block_size,
            "gpu_memory_utilization": planned.gpu_memory_utilization,
            "reported_kv_gib": round(
                cache.num_gpu_blocks * planned.page_bytes * planned.layers_per_group / 2**30, 2
            ),
            "planned_kv_gib": round(planned.usable_bytes / 2**30, 2),
            "verdict": "agrees" if abs(difference) <= tolerance else "differs",
        }
        rows.append(row)
    if json_output:
        print_json(rows)
    else:
        print_table(
            [{**r, "difference": _signed(r.get("difference"))} for r in rows],
            [
                "replica",
                "reported_blocks",
                "planned_blocks",
                "difference",
                "reported_kv_gib",
                "planned_kv_gib",
                "verdict",
            ],
        )
    if any(r["verdict"] != "agrees" for r in rows):
        raise typer.Exit(1)


def _signed(value: float | None) -> str | None:
    return None if value is None else f"{value:+.1%}"
