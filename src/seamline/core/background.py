"""Work done beside the request path: items wait in a bounded queue and one thread handles
them, a batch at a time (what is waiting when the thread comes back for more, up to
``max_batch``: models embed a batch for little more than one item).

A full queue drops the item and counts it, never blocking the caller (a sample, not a
record a user handed over); on close what is still queued is dropped too. ``per_second``
bounds how many items are taken in at all (a token bucket a second deep), so the work's
CPU stays bounded however busy the gateway gets; what it turns away is counted as
``skipped``. A batch that raises is logged and counted, and the thread goes on with the
next.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("seamline")


class BackgroundQueue(Generic[T]):
    def __init__(
        self,
        handle: Callable[[list[T]], None],
        *,
        name: str,
        max_queue: int = 1000,
        max_batch: int = 1,
        per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._handle = handle
        self._per_second = per_second
        self._clock = clock
        self._tokens = per_second or 0.0
        self._refilled = clock()
        self._name = name
        self._max_batch = max_batch
        self._queue: queue.Queue[T | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.skipped = 0
        self.failed = 0

    def submit(self, item: T) -> bool:
        """Queue ``item``; False (and counted) when over the pace or the queue is full."""
        with self._lock:
            if not self._admitted():
                self.skipped += 1
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def _admitted(self) -> bool:
        if self._per_second is None:
            return True
        now = self._clock()
        depth = max(self._per_second, 1.0)  # under one a second, a token still fills up
        self._tokens = min(depth, self._tokens + (now - self._refilled) * self._per_second)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def wait(self) -> None:
        """Until every queued item is handled (tests; a command that reports right after)."""
        self._queue.join()

    def close(self) -> None:
        """Drop what is queued and stop the thread."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self.dropped += 1
            self._queue.task_done()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                self._handle(batch)
            except Exception:
                self.failed += 1
                log.exception("%s: a batch of %d failed", self._name, len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                self._queue.task_done()
                return
