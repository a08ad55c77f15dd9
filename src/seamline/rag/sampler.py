"""The off-path half of online RAG scoring: sampled calls wait in a bounded queue and one
worker thread scores them (MiniLM is CPU work: tens of milliseconds to a second a call),
so a call never waits for its own assessment. ``prepare`` completes a sample first, off
the path too (the gateway's reads chunk texts and source files from the index store).

A judge, when the sample names one, is asked through the client the gateway hands in with
the sample: its own router and budgets, on its own event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from seamline.core.background import BackgroundQueue
from seamline.evals.judging import JudgeClient, judge_client
from seamline.rag.online import Assessment, Embed, RagSample, Thresholds, assess

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
        self.queue: BackgroundQueue[tuple[RagSample, JudgeClient | None]] = BackgroundQueue(
            self._score, name="seamline-rag-scorer", max_queue=max_queue
        )

    def submit(self, sample: RagSample, judge: JudgeClient | None = None) -> bool:
        """Queue ``sample``; False (and counted) when the queue is full."""
        return self.queue.submit((sample, judge))

    def wait(self) -> None:
        """Until every queued sample is scored (tests, and a CLI that scores then reports)."""
        self.queue.wait()

    def close(self) -> None:
        """Drop what is queued and stop the worker."""
        self.queue.close()

    def _score(self, batch: list[tuple[RagSample, JudgeClient | None]]) -> None:
        for sample, judge in batch:  # max_batch 1: one sample at a time
            token = judge_client.set(judge)
            try:
                if self._prepare is not None:
                    sample = self._prepare(sample)
                assessment = assess(sample, self._embed, self._thresholds)
                self._record(assessment)
                if self._on_assessed is not None:
                    self._on_assessed(assessment)
            finally:
                judge_client.reset(token)
