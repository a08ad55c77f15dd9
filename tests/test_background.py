"""Work beside the request path: items are handled in batches on one thread, a full queue
drops (never blocks), a pace turns away what is over it, and a failing batch does not stop
the next."""

from __future__ import annotations

import threading

from seamline.core.background import BackgroundQueue


def test_batches_are_handled_and_a_failing_one_does_not_stop_the_rest() -> None:
    seen: list[list[int]] = []

    def handle(batch: list[int]) -> None:
        seen.append(batch)
        if 0 in batch:
            raise ValueError("bad item")

    work: BackgroundQueue[int] = BackgroundQueue(handle, name="test", max_batch=8)
    assert work.submit(0)
    work.wait()
    assert all(work.submit(i) for i in range(1, 6))
    work.wait()
    work.close()
    assert sorted(i for batch in seen for i in batch) == [0, 1, 2, 3, 4, 5]
    assert work.failed == 1 and all(len(batch) <= 8 for batch in seen)


def test_a_full_queue_drops_and_a_pace_skips() -> None:
    release = threading.Event()
    work: BackgroundQueue[int] = BackgroundQueue(
        lambda batch: release.wait(5), name="test", max_queue=1
    )
    assert work.submit(1)
    while work._queue.qsize():  # the thread has taken the first item and waits
        pass
    assert work.submit(2) and not work.submit(3)
    assert work.dropped == 1
    release.set()
    work.close()

    now = [0.0]
    paced: BackgroundQueue[int] = BackgroundQueue(
        lambda batch: None, name="test", per_second=2, clock=lambda: now[0]
    )
    assert [paced.submit(i) for i in range(3)] == [True, True, False]
    now[0] = 0.5  # half a second: one more
    assert [paced.submit(i) for i in range(2)] == [True, False]
    paced.wait()
    paced.close()
    assert paced.skipped == 2 and paced.dropped == 0


def test_a_pace_under_one_a_second_still_admits_now_and_then() -> None:
    now = [0.0]
    slow: BackgroundQueue[int] = BackgroundQueue(
        lambda batch: None, name="test", per_second=0.5, clock=lambda: now[0]
    )
    assert not slow.submit(1)  # half a token
    now[0] = 1.0
    assert slow.submit(2) and not slow.submit(3)
    now[0] = 3.0
    assert slow.submit(4)
    slow.wait()
    slow.close()
