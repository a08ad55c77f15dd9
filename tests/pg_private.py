"""A private PostgreSQL server that a test may stop and start: a real outage, not a fake one.

The shared server at 127.0.0.1:5432 (tests/conftest.py) must never be stopped, so a test that
needs the database to go away and come back gets its own: ``initdb`` in a temporary folder,
served on a free port of 127.0.0.1 by the system's binaries. PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` OS user, in a folder that user owns.

Example::

    server = PrivatePostgres.create()  # None where the binaries are not installed
    server.start()
    db = Database(server.url)
    server.stop()  # the outage
    server.start()  # same data, same port
    server.destroy()
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

# Debian and Ubuntu install versioned binaries here, off the PATH; elsewhere they are on it.
_DEBIAN_BINARIES = Path("/usr/lib/postgresql")
# pg_ctl's own wait for the server to accept connections (its default is 60 s); a cold start
# on a busy two-core machine takes about a second.
_START_TIMEOUT_S = 30


def postgres_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (the newest version), or None."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    versions = [p for p in _DEBIAN_BINARIES.glob("*/bin") if (p / "initdb").is_file()]
    if not versions:
        return None
    return max(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivatePostgres:
    """One throw-away cluster (superuser ``postgres``, trust auth, database ``postgres``)."""

    def __init__(self, binaries: Path, root: Path, port: int, run_as: list[str]) -> None:
        self.binaries = binaries
        self.root = root
        self.port = port
        self._run_as = run_as

    @classmethod
    def create(cls) -> PrivatePostgres | None:
        """Run ``initdb`` in a new temporary folder; None where PostgreSQL is not installed."""
        binaries = postgres_binaries()
        if binaries is None:
            return None
        run_as: list[str] = []
        # Not tmp_path: pytest makes it readable by its owner only, and as root the owner is
        # not the user the server runs as.
        root = Path(tempfile.mkdtemp(prefix="seamline-pg-"))
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                owner = None
            if runuser is None or owner is None:
                shutil.rmtree(root)
                return None
            os.chown(root, owner.pw_uid, owner.pw_gid)
            run_as = [runuser, "-u", "postgres", "--"]
        server = cls(binaries, root, _free_port(), run_as)
        # --no-sync: a test cluster need not survive a power cut, and fsync is the slow part.
        initdb = ["-D", str(server.data), "-U", "postgres", "--auth=trust", "--no-sync"]
        try:
            server._run("initdb", *initdb, "-E", "UTF8", "--locale=C")
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        wait = ["-w", "-t", str(_START_TIMEOUT_S)]
        self._run("pg_ctl", "-D", str(self.data), "-l", log, *wait, "-o", options, "start")

    def stop(self) -> None:
        """Stop the server; ``fast`` closes every client connection, as an outage would."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    def destroy(self) -> None:
        """Stop the server if it runs (``immediate``: nothing to keep) and remove its folder."""
        pg_ctl = [*self._run_as, str(self.binaries / "pg_ctl")]
        stop = [*pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"]
        subprocess.run(stop, capture_output=True, check=False, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [*self._run_as, str(self.binaries / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stderr.strip()}\n{tail}")
