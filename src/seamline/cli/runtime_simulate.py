"""``seamline runtime simulate``: a simulated vLLM-like engine on a port, for trying routing
and scraping without a GPU (see ``seamline.runtime.simulated`` for what it models)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from seamline.runtime.simulated import EngineConfig
from seamline.runtime.simulated_server import serve

_DEFAULTS = EngineConfig()


def simulate_command(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    model: Annotated[
        str, typer.Option(help="served model name (requests must ask for it)")
    ] = _DEFAULTS.model,
    kv_blocks: Annotated[
        int, typer.Option("--kv-blocks", help="KV-cache blocks (vLLM's num_gpu_blocks)")
    ] = _DEFAULTS.num_gpu_blocks,
    block_size: Annotated[int, typer.Option(help="tokens per KV block")] = _DEFAULTS.block_size,
    max_num_seqs: Annotated[
        int, typer.Option(help="most requests running at once")
    ] = _DEFAULTS.max_num_seqs,
    max_num_batched_tokens: Annotated[
        int, typer.Option(help="token budget of one step (chunked prefill)")
    ] = _DEFAULTS.max_num_batched_tokens,
    max_model_len: Annotated[
        int | None,
        typer.Option(help="longest prompt + max_tokens accepted (default: the whole cache)"),
    ] = None,
    step_ms: Annotated[
        float, typer.Option(help="fixed cost of one engine step, ms")
    ] = _DEFAULTS.step_base_s * 1000,
    prefill_ms_per_token: Annotated[
        float, typer.Option(help="cost of each prefilled token, ms")
    ] = _DEFAULTS.prefill_s_per_token * 1000,
    decode_ms_per_seq: Annotated[
        float, typer.Option(help="cost of each decoding request in a step, ms")
    ] = _DEFAULTS.decode_s_per_seq * 1000,
    time_scale: Annotated[
        float, typer.Option(help="multiplies every duration; 0.1 runs ten times faster")
    ] = _DEFAULTS.time_scale,
    prefix_caching: Annotated[
        bool, typer.Option(help="reuse cached prompt blocks across requests")
    ] = _DEFAULTS.enable_prefix_caching,
) -> None:
    """Serve a simulated continuous-batching engine until Ctrl-C: OpenAI chat completions
    (streamed or not) on /v1/chat/completions, vLLM's metrics on /metrics.

    Example: seamline runtime simulate --port 8001 --kv-blocks 512 --time-scale 0.5
    """
    try:
        config = EngineConfig(
            model=model,
            num_gpu_blocks=kv_blocks,
            block_size=block_size,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            max_model_len=max_model_len,
            step_base_s=step_ms / 1000,
            prefill_s_per_token=prefill_ms_per_token / 1000,
            decode_s_per_seq=decode_ms_per_seq / 1000,
            time_scale=time_scale,
            enable_prefix_caching=prefix_caching,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc

    def ready(url: str) -> None:
        typer.echo(
            f"serving {config.model} on {url} ({config.num_gpu_blocks} KV blocks of "
            f"{config.block_size} tokens); metrics at {url}/metrics; Ctrl-C stops"
        )

    try:
        asyncio.run(serve(config, host, port, ready))
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        typer.echo("stopped")
