"""A simulated continuous-batching engine that speaks OpenAI's chat API and exports vLLM's
metrics, so routing and scraping are tested over real HTTP without a GPU. This module is the
engine and its metrics; seamline.runtime.simulated_server serves it over HTTP.

What it models, per engine (one asyncio scheduler loop, wall-clock time):

- **Continuous batching.** Requests join a FIFO waiting queue; before every step the
  scheduler admits from its head while fewer than ``max_num_seqs`` run and the free KV blocks
  cover the prompt's uncached blocks plus one spare (the spare is waived when nothing runs, so
  a prompt that fits the cache always starts). A blocked head blocks the queue, as vLLM's FCFS
  policy does.
- **A KV-cache budget in blocks.** ``num_gpu_blocks`` blocks of ``block_size`` tokens. A
  request holds blocks for every token whose KV is computed and takes one more each time
  decoding crosses a block boundary. ``vllm:kv_cache_usage_perc`` is 1 - free / total, where
  cached blocks no running request holds count as free (they are evictable), as in vLLM.
- **Chunked prefill.** A step schedules the running requests in admission order; each takes
  the tokens it still needs (a decode needs one) until ``max_num_batched_tokens`` is spent, so
  a long prompt is prefilled over several steps while the others keep decoding.
- **Prefix caching with LRU eviction.** Each full prompt block is named by a chained hash
  (previous block's hash + this block's text), registered once its KV is computed, so a
  concurrent request can already hit it. At admission the leading blocks whose hashes are
  cached are hits and are not prefilled; the last prompt token is always computed, as in vLLM.
  Freed blocks stay cached until a new block is needed and none is free; then the least
  recently freed goes, a request's tail blocks before its head (vLLM frees in reverse order).
  ``vllm:prefix_cache_queries`` and ``vllm:prefix_cache_hits`` count tokens.
- **Recompute preemption.** When a decoding request needs a block and none is free, the most
  recently admitted running request is preempted: its blocks are freed, it goes back to the
  front of the queue and is later prefilled again (prompt and the tokens generated so far,
  minus prefix-cache hits). Its already-sent tokens stay sent.
- **vLLM's metric names**, HELP texts, label names (``model_name``, ``engine``) and histogram
  buckets (vLLM v1, ``vllm/v1/metrics/loggers.py``); ``vllm:cache_config_info`` carries the
  cache configuration as string labels and, as in vLLM, no ``model_name``.

Timing is a linear model: a step lasts ``step_base_s + prefill_s_per_token * (tokens of
multi-token chunks) + decode_s_per_seq * (requests scheduled one token)``, all multiplied by
``time_scale`` (0.1 runs a workload ten times faster in wall time; metrics report the wall
time, so they agree with what clients measure). Steps are paced against a running clock, so a
late timer (the event loop wakes with about 1 ms resolution) is made up by the next step and
throughput holds on average, while single inter-token gaps jitter by that resolution.

Tokens are an approximation, not a tokenizer: the messages are rendered as
``<|role|>\\ncontent\\n`` and closed with ``<|assistant|>\\n``, and every ``chars_per_token``
characters (default 4) count as one token. A request generates exactly its ``max_tokens`` (or
``max_completion_tokens``; default 64) tokens of filler text and finishes with reason
``length``.

What it does not model: a real model or tokenizer (no stop strings, EOS or sampling), attention
compute or memory bandwidth (timing is the linear model above), speculative decoding, swap
preemption (recompute only), multi-LoRA, pipeline or tensor parallelism, ``n`` > 1, caching of
blocks filled by generated tokens (vLLM also caches those; here only prompt blocks are hashed),
and vLLM's habit of counting a prefix-cache query each time a blocked request is re-examined
(here a request is counted when it is admitted).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import json
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

__all__ = [
    "FILLER_JSON",
    "EngineConfig",
    "SimRequest",
    "SimulatedEngine",
    "count_tokens",
    "render_prompt",
]


@dataclass(frozen=True)
class EngineConfig:
    """Every knob of one simulated engine.

    The defaults look like a Llama-3.1-8B-class model in bf16 on a 24 GB GPU: 128 KiB of KV per
    token, so about 4 GiB left after weights holds 2,048 blocks of 16 tokens (32,768 tokens);
    a step costs 4 ms of fixed overhead, 0.05 ms per prefilled token (20k tokens/s of
    prefill) and 0.2 ms per decoding request (a batch of 64 decodes at about 60 tokens/s
    each). ``max_num_seqs`` and ``max_num_batched_tokens`` are close to vLLM's defaults for
    online serving.
    """

    model: str = "sim-llama"
    num_gpu_blocks: int = 2048
    block_size: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    # Longest prompt + max_tokens accepted; None: as many tokens as the whole cache holds.
    max_model_len: int | None = None
    step_base_s: float = 0.004
    prefill_s_per_token: float = 0.00005
    decode_s_per_seq: float = 0.0002
    time_scale: float = 1.0
    default_max_tokens: int = 64
    chars_per_token: int = 4
    enable_prefix_caching: bool = True
    # Only reported (vllm:cache_config_info); the block count above is what limits.
    gpu_memory_utilization: float = 0.9
    cache_dtype: str = "auto"

    def __post_init__(self) -> None:
        counts = {
            "num_gpu_blocks": self.num_gpu_blocks,
            "block_size": self.block_size,
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "default_max_tokens": self.default_max_tokens,
            "chars_per_token": self.chars_per_token,
        }
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        timings = {
            "step_base_s": self.step_base_s,
            "prefill_s_per_token": self.prefill_s_per_token,
            "decode_s_per_seq": self.decode_s_per_seq,
        }
        for name, seconds in timings.items():
            if seconds < 0:
                raise ValueError(f"{name} must not be negative, got {seconds}")
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {self.time_scale}")
        # vLLM refuses the same: a batch must have room for one token of every sequence.
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least "
                f"max_num_seqs ({self.max_num_seqs})"
            )
        capacity = self.num_gpu_blocks * self.block_size
        # vLLM refuses to start when one sequence of max_model_len cannot fit in the cache.
        if self.max_model_len is not None and not 1 <= self.max_model_len <= capacity:
            raise ValueError(
                f"max_model_len ({self.max_model_len}) must be between 1 and the KV cache's "
                f"{capacity} tokens ({self.num_gpu_blocks} blocks x {self.block_size})"
            )

    @property
    def model_len(self) -> int:
        """The longest prompt + generation accepted, in tokens."""
        return self.max_model_len or self.num_gpu_blocks * self.block_size


# Filler the engine "generates": one word per token, JSON-encoded once for the SSE chunks.
_FILLER: Final = ("the ", "quick ", "brown ", "fox ", "jumps ", "over ", "a ", "lazy ", "dog ")
FILLER_JSON: Final = tuple(json.dumps(word) for word in _FILLER)

# A step never starts more than this far behind its schedule: after a long stall (a busy
# process, a debugger) the engine resumes at the model's pace instead of bursting to catch up.
_MAX_LAG_S: Final = 0.005

# vLLM v1's buckets (vllm/v1/metrics/loggers.py), so histogram_quantile reads the same.
_TTFT_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
_ITL_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
_REQUEST_BUCKETS: Final = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
    50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
_FINISH_REASONS: Final = ("stop", "length", "abort")
# vLLM v1's HELP texts, word for word, so a scrape looks like the real engine's.
_HELP: Final = {
    "vllm:num_requests_running": "Number of requests in model execution batches.",
    "vllm:num_requests_waiting": "Number of requests waiting to be processed.",
    "vllm:kv_cache_usage_perc": "KV-cache usage. 1 means 100 percent usage.",
    "vllm:cache_config_info": "Information of the LLMEngine CacheConfig",
    "vllm:prefix_cache_queries": "Prefix cache queries, in terms of number of queried tokens.",
    "vllm:prefix_cache_hits": "Prefix cache hits, in terms of number of cached tokens.",
    "vllm:num_preemptions": "Cumulative number of preemption from the engine.",
    "vllm:prompt_tokens": "Number of prefill tokens processed.",
    "vllm:generation_tokens": "Number of generation tokens processed.",
    "vllm:request_success": "Count of successfully processed requests.",
    "vllm:time_to_first_token_seconds": "Histogram of time to first token in seconds.",
    "vllm:inter_token_latency_seconds": "Histogram of inter-token latency in seconds.",
    "vllm:e2e_request_latency_seconds": "Histogram of e2e request latency in seconds.",
    "vllm:request_queue_time_seconds": "Histogram of time spent in WAITING phase for request.",
    "vllm:request_prefill_time_seconds": "Histogram of time spent in PREFILL phase for request.",
    "vllm:request_decode_time_seconds": "Histogram of time spent in DECODE phase for request.",
}


def render_prompt(messages: Sequence[dict[str, Any]]) -> str:
    """The text the engine "tokenizes": each message as ``<|role|>\\ncontent\\n``, then the
    assistant's turn, a stand-in for a chat template. Text parts of list content are joined."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(
                str(part.get("text", "")) if isinstance(part, dict) else str(part)
                for part in content
            )
        parts.append(f"<|{message.get('role', 'user')}|>\n{content or ''}\n")
    parts.append("<|assistant|>\n")
    return "".join(parts)


def count_tokens(text: str, chars_per_token: int) -> int:
    """Tokens of a text under the engine's approximation (at least one)."""
    return max(1, math.ceil(len(text) / chars_per_token))


def _block_hashes(text: str, tokens: int, config: EngineConfig) -> list[bytes]:
    """The chained hash of each full block of the prompt: equal hashes mean equal prefixes."""
    span = config.block_size * config.chars_per_token
    hashes: list[bytes] = []
    previous = b""
    for index in range(tokens // config.block_size):
        chunk = text[index * span : (index + 1) * span].encode()
        previous = hashlib.blake2b(previous + chunk, digest_size=16).digest()
        hashes.append(previous)
    return hashes


class SimRequest:
    """One request inside the engine. Read its figures once it has finished; its fields are
    written by the scheduler and must only be read on the engine's event loop."""

    __slots__ = (
        "_streaming",
        "_wakeup",
        "admitted_at",
        "arrival",
        "block_hashes",
        "cached_tokens",
        "computed",
        "finish_reason",
        "first_token_at",
        "generated",
        "held",
        "id",
        "last_token_at",
        "max_tokens",
        "private",
        "prompt_tokens",
        "registered",
    )

    def __init__(
        self, id: str, prompt_tokens: int, block_hashes: list[bytes], max_tokens: int
    ) -> None:
        self.id = id
        self.prompt_tokens = prompt_tokens
        self.block_hashes = block_hashes
        self.max_tokens = max_tokens
        self.arrival = asyncio.get_running_loop().time()
        self.generated = 0
        self.computed = 0  # tokens whose KV is in the cache
        self.held: list[bytes] = []  # cached blocks it references (shareable)
        self.private = 0  # blocks it owns that no other request can hit
        self.registered = 0  # leading prompt blocks already offered to the prefix cache
        self.cached_tokens = 0  # prefix-cache hit at first admission: usage.cached_tokens
        self.admitted_at: float | None = None
        self.first_token_at: float | None = None
        self.last_token_at = 0.0
        self.finish_reason: str | None = None  # "length", or "abort" when cut short
        self._streaming = False
        self._wakeup = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def text(self) -> str:
        """The filler generated so far, the same for the stream and the whole answer."""
        return "".join(_FILLER[i % len(_FILLER)] for i in range(self.generated))

    async def wait(self) -> None:
        """Return once the request has finished (or was aborted)."""
        while not self.finished:
            await self._wakeup.wait()
            self._wakeup.clear()

    async def updates(self) -> AsyncIterator[int]:
        """Yield the number of tokens generated so far each time it grows (at most once per
        engine step, so a consumer may write several tokens at once), until it finishes."""
        self._streaming = True
        sent = 0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.generated > sent:
                sent = self.generated
                yield sent
            if self.finished:
                return

    def _wake(self) -> None:
        self._wakeup.set()


class _Histogram:
    """A Prometheus histogram kept as plain numbers, so a step can record the same
    inter-token gap for many requests in one call instead of one call per token."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.sum += value * times

    def family(self, name: str, help: str, labels: list[str], values: list[str]) -> Metric:
        family = HistogramMetricFamily(name, help, labels=labels)
        cumulative = 0
        buckets = []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == math.inf else repr(bound), float(cumulative)))
        family.add_metric(values, buckets, self.sum)
        return family


class _Stats:
    """The engine's counters and histograms, bumped by the scheduler, read at scrape time."""

    def __init__(self) -> None:
        self.created = time.time()
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.prefix_queries = 0
        self.prefix_hits = 0
        self.preemptions = 0
        self.finished = dict.fromkeys(_FINISH_REASONS, 0)
        self.ttft = _Histogram(_TTFT_BUCKETS)
        self.itl = _Histogram(_ITL_BUCKETS)
        self.e2e = _Histogram(_REQUEST_BUCKETS)
        self.queue = _Histogram(_REQUEST_BUCKETS)
        self.prefill = _Histogram(_REQUEST_BUCKETS)
        self.decode = _Histogram(_REQUEST_BUCKETS)


class SimulatedEngine:
    """The scheduler and KV-cache bookkeeping of one engine (see the module docstring).

    Create it, call :meth:`start` on a running event loop, :meth:`submit` requests from that
    loop, and :meth:`close` it. ``registry`` holds its metrics in vLLM's names.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._stats = _Stats()
        self._waiting: deque[SimRequest] = deque()
        self._running: list[SimRequest] = []  # in admission order: the last is preempted first
        self._free_uncached = config.num_gpu_blocks
        self._evictable: OrderedDict[bytes, None] = OrderedDict()  # cached, unreferenced; LRU
        self._refs: dict[bytes, int] = {}  # cached blocks some running request references
        self._wake = asyncio.Event()
        self._last_step_end: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._ids = 0
        self.registry = CollectorRegistry()
        self.registry.register(self)

    # -- the public face -------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-scheduler")

    async def close(self) -> None:
        """Stop the scheduler; requests still queued or running finish as aborted."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for request in [*self._running, *self._waiting]:
            self.abort(request)

    def submit(self, prompt: str, max_tokens: int) -> SimRequest:
        """Queue a rendered prompt that will generate ``max_tokens`` tokens.

        Raises ValueError when prompt + max_tokens exceeds the model length, as vLLM answers
        400 for such a request instead of queueing one that could never fit.
        """
        tokens = count_tokens(prompt, self.config.chars_per_token)
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        if tokens + max_tokens > self.config.model_len:
            raise ValueError(
                f"This model's maximum context length is {self.config.model_len} tokens. "
                f"However, you requested {tokens + max_tokens} tokens ({tokens} in the "
                f"messages, {max_tokens} in the completion)."
            )
        hashes = (
            _block_hashes(prompt, tokens, self.config) if self.config.enable_prefix_caching else []
        )
        self._ids += 1
        request = SimRequest(f"chatcmpl-sim-{self._ids}", tokens, hashes, max_tokens)
        self._waiting.append(request)
        self._wake.set()
        return request

    def abort(self, request: SimRequest) -> None:
        """Drop a request (its client went away): free its blocks and wake its waiter."""
        if request.finished:
            return
        if request in self._running:
            self._running.remove(request)
            self._release(request)
        elif request in self._waiting:
            self._waiting.remove(request)
        request.finish_reason = "abort"
        request._wake()

    @property
    def kv_cache_usage(self) -> float:
        """Share of blocks held by running requests (cached, unreferenced blocks are free)."""
        free = self._free_uncached + len(self._evictable)
        return 1.0 - free / self.config.num_gpu_blocks

    # -- the scheduler ---------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        clock = loop.time()
        while True:
            if not self._running and not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                clock = loop.time()
            if not self._grow_decoders():
                self._admit(loop.time())  # vLLM admits nothing in a step that preempted
            batch, prefill_tokens, decodes = self._plan()
            config = self.config
            duration = (
                config.step_base_s
                + config.prefill_s_per_token * prefill_tokens
                + config.decode_s_per_seq * decodes
            ) * config.time_scale
            clock = max(clock, loop.time() - _MAX_LAG_S) + duration
            await asyncio.sleep(max(0.0, clock - loop.time()))
            self._apply(batch, loop.time())

    def _grow_decoders(self) -> bool:
        """Give every request about to cross a block boundary its next block, preempting the
        most recently admitted request while none is free. True when anything was preempted."""
        preempted = False
        index = 0
        while index < len(self._running):
            request = self._running[index]
            if request.computed < (len(request.held) + request.private) * self.config.block_size:
                index += 1
                continue
            evicted_itself = False
            while not self._free_blocks() and not evicted_itself:
                victim = self._running[-1]
                self._preempt(victim)
                preempted = True
                evicted_itself = victim is request
            if not evicted_itself:
                self._allocate(request, 1)
                index += 1
            # else the running list ended at this request: the loop is over
        return preempted

    def _admit(self, now: float) -> None:
        config = self.config
        while self._waiting and len(self._running) < config.max_num_seqs:
            request = self._waiting[0]
            length = request.prompt_tokens + request.generated  # recompute includes output
            hits = self._cached_prefix(request, length)
            reclaimed = sum(1 for block in hits if block in self._evictable)
            needed = math.ceil(length / config.block_size) - len(hits)
            spare = 1 if self._running else 0  # room to decode without preempting at once
            if self._free_blocks() - reclaimed < needed + spare:
                return
            self._waiting.popleft()
            for block in hits:
                if block in self._evictable:
                    del self._evictable[block]
                    self._refs[block] = 1
                else:
                    self._refs[block] += 1
            request.held = hits
            request.registered = len(hits)
            request.computed = len(hits) * config.block_size
            self._allocate(request, needed)
            if config.enable_prefix_caching:
                self._stats.prefix_queries += length
                self._stats.prefix_hits += request.computed
            if request.admitted_at is None:
                request.admitted_at = now
                request.cached_tokens = request.computed
            self._running.append(request)

    def _cached_prefix(self, request: SimRequest, length: int) -> list[bytes]:
        """The leading prompt blocks already cached; the block holding the last token is
        left out, as vLLM always computes at least one token to sample from."""
        hits: list[bytes] = []
        for block in request.block_hashes[: (length - 1) // self.config.block_size]:
            if block not in self._refs and block not in self._evictable:
                break
            hits.append(block)
        return hits

    def _plan(self) -> tuple[list[tuple[SimRequest, int]], int, int]:
        """This step's work in admission order under the token budget: (request, tokens)
        pairs, the tokens of multi-token (prefill) chunks, and the one-token decodes."""
        budget = self.config.max_num_batched_tokens
        batch: list[tuple[SimRequest, int]] = []
        prefill_tokens = decodes = 0
        for request in self._running:
            if not budget:
                break
            tokens = min(request.prompt_tokens + request.generated - request.computed, budget)
            budget -= tokens
            batch.append((request, tokens))
            if tokens == 1:
                decodes += 1
            else:
                prefill_tokens += tokens
        return batch, prefill_tokens, decodes

    def _apply(self, batch: list[tuple[SimRequest, int]], now: float) -> None:
        """The step has run: advance each scheduled request, sample a token for each that
        caught up with its sequence, finish those that reached max_tokens."""
        stats = self._stats
        previous_step = self._last_step_end
        finished = False
        same_gap = 0  # decodes whose last token came from the previous step: one shared gap
        for request, tokens in batch:
            if request.finished:
                continue  # aborted while the step ran
            request.computed += tokens
            if request.registered < len(request.block_hashes):
                self._register(request)
            if request.computed < request.prompt_tokens + request.generated:
                continue  # a prefill chunk with more to come
            request.generated += 1
            stats.generation_tokens += 1
            if request.first_token_at is None:
                request.first_token_at = now
                stats.prompt_tokens += request.prompt_tokens
                stats.ttft.observe(now - request.arrival)
            elif request.last_token_at == previous_step:
                same_gap += 1
            else:
                stats.itl.observe(now - request.last_token_at)
            request.last_token_at = now
            if request.generated >= request.max_tokens:
                self._finish(request, now)
                finished = True
            elif request._streaming:
                request._wake()
        if same_gap and previous_step is not None:
            stats.itl.observe(now - previous_step, same_gap)
        if finished:
            self._running = [request for request in self._running if not request.finished]
        self._last_step_end = now

    def _register(self, request: SimRequest) -> None:
        """Offer the prompt blocks this step completed to the prefix cache. A block whose
        hash another request registered first stays private: a duplicate, as in vLLM."""
        full = min(request.computed // self.config.block_size, len(request.block_hashes))
        for block in request.block_hashes[request.registered : full]:
            if block not in self._refs and block not in self._evictable:
                self._refs[block] = 1
                request.held.append(block)
                request.private -= 1
        request.registered = max(request.registered, full)

    def _finish(self, request: SimRequest, now: float) -> None:
        """Release a request that reached max_tokens; the caller drops it from the running
        list once the step is applied (one pass instead of one removal per request)."""
        stats = self._stats
        self._release(request)
        request.finish_reason = "length"
        stats.finished["length"] += 1
        admitted = request.admitted_at if request.admitted_at is not None else now
        first = request.first_token_at if request.first_token_at is not None else now
        stats.e2e.observe(now - request.arrival)
        stats.queue.observe(admitted - request.arrival)
        stats.prefill.observe(first - admitted)
        stats.decode.observe(now - first)
        request._wake()

    def _preempt(self, request: SimRequest) -> None:
        """Recompute preemption: free everything, back to the front of the queue."""
        self._running.pop()  # always the last: callers preempt the most recently admitted
        self._release(request)
        request.computed = 0
        request.registered = 0
        self._waiting.appendleft(request)
        self._stats.preemptions += 1

    # -- blocks ----------------------------------------------------------------------

    def _free_blocks(self) -> int:
        return self._free_uncached + len(self._evictable)

    def _allocate(self, request: SimRequest, count: int) -> None:
        """Hand out fresh blocks, evicting the least recently freed cached ones when no
        uncached block is left. Callers have checked that enough are free."""
        for _ in range(count):
            if self._free_uncached:
                self._free_uncached -= 1
            else:
                self._evictable.popitem(last=False)
        request.private += count

    def _release(self, request: SimRequest) -> None:
        """Return a request's blocks. Cached ones stay hittable until evicted; the tail goes
        first into the LRU order so a prefix outlives its continuation."""
        for block in reversed(request.held):
            self._refs[block] -= 1
            if not self._refs[block]:
                del self._refs[block]
                self._evictable[block] = None
        self._free_uncached += request.private
        request.held = []
        request.private = 0

    # -- metrics (a prometheus_client collector) -------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The engine's figures in vLLM v1's names, HELP texts and labels."""
        labels = ["model_name", "engine"]
        values = [self.config.model, "0"]
        stats = self._stats
        gauges = {
            "vllm:num_requests_running": len(self._running),
            "vllm:num_requests_waiting": len(self._waiting),
            "vllm:kv_cache_usage_perc": self.kv_cache_usage,
        }
        for name, value in gauges.items():
            gauge = GaugeMetricFamily(name, _HELP[name], labels=labels)
            gauge.add_metric(values, value)
            yield gauge
        yield self._cache_config_info()
        counters = {
            "vllm:prefix_cache_queries": stats.prefix_queries,
            "vllm:prefix_cache_hits": stats.prefix_hits,
            "vllm:num_preemptions": stats.preemptions,
            "vllm:prompt_tokens": stats.prompt_tokens,
            "vllm:generation_tokens": stats.generation_tokens,
        }
        for name, count in counters.items():
            counter = CounterMetricFamily(name, _HELP[name], labels=labels)
            counter.add_metric(values, count, created=stats.created)
            yield counter
        success = CounterMetricFamily(
            "vllm:request_success",
            _HELP["vllm:request_success"],
            labels=[*labels, "finished_reason"],
        )
        for reason, count in stats.finished.items():
            success.add_metric([*values, reason], count, created=stats.created)
        yield success
        histograms = {
            "vllm:time_to_first_token_seconds": stats.ttft,
            "vllm:inter_token_latency_seconds": stats.itl,
            "vllm:e2e_request_latency_seconds": stats.e2e,
            "vllm:request_queue_time_seconds": stats.queue,
            "vllm:request_prefill_time_seconds": stats.prefill,
            "vllm:request_decode_time_seconds": stats.decode,
        }
        for name, histogram in histograms.items():
            yield histogram.family(name, _HELP[name], labels, values)

    def _cache_config_info(self) -> Metric:
        """vLLM's info-style gauge: value 1, the cache configuration as string labels."""
        config = self.config
        info = {
            "block_size": str(config.block_size),
            "cache_dtype": config.cache_dtype,
            "enable_prefix_caching": str(config.enable_prefix_caching),
            "engine": "0",
            "gpu_memory_utilization": str(config.gpu_memory_utilization),
            "num_gpu_blocks": str(config.num_gpu_blocks),
        }
        family = GaugeMetricFamily(
            "vllm:cache_config_info",
            _HELP["vllm:cache_config_info"],
            labels=list(info),
        )
        family.add_metric(list(info.values()), 1.0)
        return family


# -- HTTP: OpenAI's chat wire format, /v1/models, /health, /metrics ----------------------
