"""The simulated engine's HTTP face (seamline.runtime.simulated says what the engine
models): OpenAI's chat completions, streamed as vLLM streams them, ``/v1/models``,
``/health`` and vLLM's ``/metrics``; run in the foreground (``serve``, for
``seamline runtime simulate``) or on a thread of its own (``run_engine``, for tests and
benchmarks)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from seamline.runtime.simulated import (
    FILLER_JSON,
    EngineConfig,
    SimRequest,
    SimulatedEngine,
    render_prompt,
)

__all__ = ["RunningEngine", "run_engine", "serve"]


class _BadRequest(Exception):
    """A request the engine refuses, answered in OpenAI's error shape."""

    def __init__(self, message: str, status: int = 400, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def _error(error: _BadRequest) -> web.Response:
    body = {"message": str(error), "type": error.kind, "param": None, "code": error.status}
    return web.json_response({"error": body}, status=error.status)


def _max_tokens(body: dict[str, Any], default: int) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _BadRequest(f"max_tokens must be a positive integer, got {value!r}")
    return value


class _Server:
    """The aiohttp handlers in front of one engine."""

    def __init__(self, engine: SimulatedEngine) -> None:
        self.engine = engine
        self.created = int(time.time())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def chat(self, http: web.Request) -> web.StreamResponse:
        try:
            body = await http.json()
            if not isinstance(body, dict):
                raise _BadRequest("the body must be a JSON object")
            request = self._submit(body)
        except json.JSONDecodeError:
            return _error(_BadRequest("the body is not valid JSON"))
        except _BadRequest as error:
            return _error(error)
        if body.get("stream"):
            return await self._stream(http, request, body)
        try:
            await request.wait()
        finally:
            self.engine.abort(request)  # a no-op once finished; frees blocks if cancelled
        if request.finish_reason == "abort":
            return _error(_BadRequest("the engine shut down", 503, "ServiceUnavailableError"))
        message = {"role": "assistant", "content": request.text}
        answer = {
            "id": request.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.engine.config.model,
            "choices": [{"index": 0, "message": message, "finish_reason": request.finish_reason}],
            "usage": _usage(request),
        }
        return web.json_response(answer)

    def _submit(self, body: dict[str, Any]) -> SimRequest:
        config = self.engine.config
        if body.get("model") != config.model:
            raise _BadRequest(
                f"The model `{body.get('model')}` does not exist.", 404, "NotFoundError"
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("messages must be a non-empty list")
        if not all(isinstance(message, dict) for message in messages):
            raise _BadRequest("each message must be an object")
        if body.get("n", 1) != 1:
            raise _BadRequest("the simulated engine answers n=1 only")
        max_tokens = _max_tokens(body, config.default_max_tokens)
        try:
            return self.engine.submit(render_prompt(messages), max_tokens)
        except ValueError as error:
            raise _BadRequest(str(error)) from error

    async def _stream(
        self, http: web.Request, request: SimRequest, body: dict[str, Any]
    ) -> web.StreamResponse:
        """SSE as vLLM sends it: a role chunk with the first token, one chunk per token
        (written together when a step produced several since the last write), the finish
        chunk, an optional usage chunk, then ``[DONE]``."""
        head = (
            f'data: {{"id":"{request.id}","object":"chat.completion.chunk",'
            f'"created":{int(time.time())},"model":{json.dumps(self.engine.config.model)},'
        )
        token_head = head + '"choices":[{"index":0,"delta":{"content":'
        token_tail = '},"finish_reason":null}]}\n\n'
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        role = (
            head + '"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
            '"finish_reason":null}]}\n\n'
        )
        try:
            await response.prepare(http)
            sent = 0
            async for generated in request.updates():
                # The role chunk goes with the first token, not before the prefill: vLLM
                # sends it on the engine's first output, so TTFT starts no earlier.
                chunks = [role] if sent == 0 else []
                chunks += [
                    token_head + FILLER_JSON[i % len(FILLER_JSON)] + token_tail
                    for i in range(sent, generated)
                ]
                sent = generated
                await response.write("".join(chunks).encode())
            if request.finish_reason == "abort":
                return response  # no [DONE]: the client sees the stream cut short
            reason = request.finish_reason
            tail = [
                head + f'"choices":[{{"index":0,"delta":{{}},"finish_reason":"{reason}"}}]}}\n\n'
            ]
            if (body.get("stream_options") or {}).get("include_usage"):
                tail.append(head + f'"choices":[],"usage":{json.dumps(_usage(request))}}}\n\n')
            tail.append("data: [DONE]\n\n")
            await response.write("".join(tail).encode())
        finally:
            self.engine.abort(request)  # the client left mid-stream: free its blocks
        return response

    async def models(self, _: web.Request) -> web.Response:
        config = self.engine.config
        model = {
            "id": config.model,
            "object": "model",
            "created": self.created,
            "owned_by": "vllm",
            "root": config.model,
            "parent": None,
            "max_model_len": config.model_len,
        }
        return web.json_response({"object": "list", "data": [model]})

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(status=200)

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.engine.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )


def _usage(request: SimRequest) -> dict[str, Any]:
    return {
        "prompt_tokens": request.prompt_tokens,
        "completion_tokens": request.generated,
        "total_tokens": request.prompt_tokens + request.generated,
        "prompt_tokens_details": {"cached_tokens": request.cached_tokens},
    }


async def _open(
    config: EngineConfig, host: str, port: int
) -> tuple[SimulatedEngine, web.AppRunner, int]:
    """Start an engine and its HTTP server on the running loop; returns the bound port."""
    engine = SimulatedEngine(config)
    engine.start()
    # A short shutdown grace: close() has already ended every request by then.
    runner = web.AppRunner(_Server(engine).app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        await engine.close()
        raise
    return engine, runner, int(runner.addresses[0][1])


async def _shut(engine: SimulatedEngine, runner: web.AppRunner) -> None:
    await engine.close()
    await runner.cleanup()


async def serve(
    config: EngineConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve one simulated engine until cancelled (Ctrl-C under ``asyncio.run``).

    ``ready`` is called with the base URL once the server listens (useful with port 0).
    Raises OSError when the address is taken.
    """
    engine, runner, bound = await _open(config, host, port)
    try:
        if ready is not None:
            ready(f"http://{host}:{bound}")
        await asyncio.Event().wait()
    finally:
        await _shut(engine, runner)


class RunningEngine:
    """A simulated engine serving from a background thread with its own event loop.

    Use it as a context manager, or call :meth:`stop`, which aborts what is still in flight
    and joins the thread::

        with run_engine(EngineConfig(num_gpu_blocks=64)) as engine:
            httpx.get(engine.metrics_url)
    """

    def __init__(
        self,
        config: EngineConfig,
        url: str,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        shut: Callable[[], Any],
    ) -> None:
        self.config = config
        self.url = url
        self.metrics_url = f"{url}/metrics"
        self._loop = loop
        self._thread = thread
        self._shut = shut

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> RunningEngine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def run_engine(config: EngineConfig, host: str = "127.0.0.1", port: int = 0) -> RunningEngine:
    """Start a simulated engine in a daemon thread and return once it listens.

    ``port=0`` takes a free port (read it from ``.url``). Raises OSError when the address is
    taken, and anything else the start raised.
    """
    loop = asyncio.new_event_loop()
    started: list[tuple[SimulatedEngine, web.AppRunner, int]] = []
    failed: list[BaseException] = []
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.append(loop.run_until_complete(_open(config, host, port)))
        except BaseException as error:  # handed to the caller's thread below
            failed.append(error)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name=f"sim-engine-{config.model}", daemon=True)
    thread.start()
    ready.wait()
    if failed:
        raise failed[0]
    engine, runner, bound = started[0]
    return RunningEngine(
        config, f"http://{host}:{bound}", loop, thread, lambda: _shut(engine, runner)
    )
