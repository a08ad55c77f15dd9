"""The off-path half of online RAG scoring: sampled calls wait in a bounded queue and one
worker thread scores them (MiniLM is CPU work: tens of milliseconds to a second a call),
so a call never waits for its own assessment. ``prepare`` completes a sample first, off
the path too (the gateway's reads chunk texts and source files from the index store).

When the queue is full a sample is dropped and counted, never blocking the call that made
it; on shutdown what is still queued is dropped too (an assessment is a sample, not a
record a user handed over). A judge, when the sample names one, is asked through the client
the gateway hands in with the sample: its own router and budgets, on its own event loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from seamline.evals.judging import JudgeClient, judge_client
from seamline.rag.online import Assessment, Embed, RagSample, Thresholds, assess

log = logging.getLogger("seamline.rag")
DEFAULT_QUEUE = 1000


class OnlineScorer:
    def __init__(
        self,
        record: Callable[[Assessment], None],
        embed: Embed,
        thresholds: Thresholds | None = None,
        *,
        max_queue: int = DEFAULT_QUEUE,
        prepare: Callable[[RagSample], RagSample] | None = None,
        on_assessed: Callable[[Assessment], None] | None = None,
    ) -> None:
        self._record = record
        self._embed = embed
        self._thresholds = thresholds or Thresholds()
        self._prepare = prepare
        self._on_assessed = on_assessed
        self._queue: queue.Queue[tuple[RagSample, JudgeClient | None] | None] = queue.Queue(
            max_queue
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.failed = 0

    def submit(self, sample: RagSample, judge: JudgeClient | None = None) -> bool:
        """Queue ``sample``; False (and counted) when the queue is full."""
        self._ensure_started()
        try:
            self._queue.put_nowait((sample, judge))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def wait(self) -> None:
        """Until every queued sample is scored (tests, and a CLI that scores then reports)."""
        self._queue.join()

    def close(self) -> None:
        """Drop what is queued and stop the worker."""
        while True:
            try:
                self._queue.get_nowait()
                self.dropped += 1
                self._queue.task_done()
            except queue.Empty:
                break
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="seamline-rag-scorer", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            sample, judge = item
            token = judge_client.set(judge)
            try:
                if self._prepare is not None:
                    sample = self._prepare(sample)
                assessment = assess(sample, self._embed, self._thresholds)
                self._record(assessment)
                if self._on_assessed is not None:
                    self._on_assessed(assessment)
            except Exception:
                self.failed += 1
                log.exception("scoring RAG call %s failed", sample.request_id)
            finally:
                judge_client.reset(token)
                self._queue.task_done()
        self._queue.task_done()
