"""``seamline serve --workers 2`` whose supervisor is killed outright: the workers leave with
it and the port is free for the next server (gateway/server/worker.py)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.served import serve

# Far above a graceful worker shutdown, and above a worker still starting when the
# supervisor dies (it notices once its event loop runs: 20 s on a loaded 2-core machine).
GRACE_S = 60.0


def children_running_spawn_main(parent: int) -> list[int]:
    """uvicorn's workers: the children of ``parent`` started by multiprocessing's spawn
    (its resource tracker, also a child, runs something else)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == parent and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's new parent may be slow to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def port_is_free(port: int) -> bool:
    """What a restarted server needs: to bind and listen on the port (as uvicorn does, with
    SO_REUSEADDR, so connections left in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_and_free_the_port_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    served = serve(tmp_path, "[gateway]\nembedded_models = false\n", workers=2)
    port = int(served.url.rsplit(":", 1)[1])
    deadline = time.monotonic() + GRACE_S
    workers = children_running_spawn_main(served.process.pid)
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        workers = children_running_spawn_main(served.process.pid)
    try:
        assert len(workers) == 2
        workers = children_running_spawn_main(served.process.pid)  # uvicorn may have replaced one
        served.process.kill()  # SIGKILL: the supervisor gets no chance to stop its workers
        served.process.wait(10)
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            if not any(running(pid) for pid in workers) and port_is_free(port):
                break
            time.sleep(0.2)
        assert [pid for pid in workers if running(pid)] == [], "orphaned workers still run"
        assert port_is_free(port)
    finally:
        for pid in workers:  # never leave orphans behind, whatever the outcome
            if running(pid):
                os.kill(pid, signal.SIGKILL)
