"""A worker of ``seamline serve --workers N`` leaves when its supervisor does.

uvicorn's supervisor spawns the workers and restarts the ones that die, but nothing tells a
worker that the supervisor died: killed with SIGKILL (the OOM killer, ``kill -9``, a
container runtime's last resort), it leaves its workers serving on the inherited socket,
holding the port, so the server cannot be restarted and the orphans run unsupervised.

How a worker learns of it: ``multiprocessing`` gives every process it spawns the read end of
a pipe whose only write end the parent holds (``parent_process().sentinel``). The kernel
closes that end when the parent dies, however it dies, and the read end then stays readable
for good, so the event loop is told at once (no polling), and a parent that died before the
worker started watching is seen on the loop's first turn (no race). ``prctl(PR_SET_PDEATHSIG)``
was the alternative: Linux only, through ctypes, fired by the exit of the parent *thread*
that forked rather than of the process, and racy unless the worker then compares
``getppid()`` with a parent pid it must be told.

On that event the worker sends itself SIGTERM, uvicorn's graceful path: it stops accepting,
lets calls in flight finish, and the lifespan shutdown drains the events.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable

log = logging.getLogger("seamline.gateway")


def exit_with_parent() -> Callable[[], None]:
    """In a worker spawned by a supervisor, raise SIGTERM here once the supervisor is gone.

    Call it from the running event loop (the lifespan startup); returns the function that
    stops watching (call it at shutdown). Anywhere else (a one-process ``seamline serve``, a
    test, an embedding application) there is no supervisor to watch and nothing is done.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return lambda: None
    loop = asyncio.get_running_loop()
    sentinel = parent.sentinel

    def parent_gone() -> None:
        loop.remove_reader(sentinel)
        log.warning(
            "supervisor %s is gone: worker %d shutting down gracefully", parent.pid, os.getpid()
        )
        signal.raise_signal(signal.SIGTERM)

    def stop_watching() -> None:
        loop.remove_reader(sentinel)

    loop.add_reader(sentinel, parent_gone)
    return stop_watching
