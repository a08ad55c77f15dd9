"""``seamline runtime``: the serving engines behind the gateway (live figures, the KV-cache
plan, and the plan checked against what an engine reports)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from seamline.cli.context import JsonOption, settings
from seamline.cli.output import print_json, print_table
from seamline.cli.runtime_plan import plan_command
from seamline.core.errors import InvalidInput
from seamline.gateway.catalog import ModelCatalog
from seamline.runtime.scraper import EngineScraper, ScrapeState, targets_of

runtime_app = typer.Typer(
    help="Serving engines: live load, KV-cache planning, a simulated engine.",
    no_args_is_help=True,
)
runtime_app.command("plan")(plan_command)
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
