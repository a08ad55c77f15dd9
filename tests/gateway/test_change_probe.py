"""The change probe sees every committed change on its next read, wherever it was made."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from seamline.gateway.stores.changes import probe_for
from seamline.registry import Actor, Registry

ROOT = Path(__file__).resolve().parents[2]
# Another process changes the project through the registry, as `seamline keys revoke` would.
OTHER_PROCESS = """
import sys
from seamline.registry import Registry
from seamline.store import Database
from tests.conftest import KEY_SECRET, make_actor

url, schema, mode = sys.argv[1], sys.argv[2] or None, sys.argv[3]
registry = Registry(Database(url, schema=schema), key_secret=KEY_SECRET)
registry.set_content_logging(make_actor(registry, "bob"), mode)
registry.db.dispose()
"""


def test_the_probe_sees_a_commit_from_another_connection_or_process_on_its_next_read(
    registry: Registry, alice: Actor
) -> None:
    probe = probe_for(registry.db)
    project_id = alice.project.id

    async def counter() -> int | None:
        return await probe.generation(project_id)

    def changed_elsewhere(mode: str) -> None:
        url = registry.db.url.render_as_string(hide_password=False)
        command = [sys.executable, "-c", OTHER_PROCESS, url, registry.db.schema or "", mode]
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=60)

    try:
        seen = asyncio.run(counter())
        assert seen is not None
        for here, there in (("redacted", "none"), ("full", "redacted")):
            assert asyncio.run(counter()) == seen  # read twice: nothing changed in between
            registry.set_content_logging(alice, here)  # another connection of this process
            after_connection = asyncio.run(counter())
            assert after_connection is not None and after_connection > seen
            changed_elsewhere(there)
            after_process = asyncio.run(counter())
            assert after_process is not None and after_process > after_connection
            seen = after_process
    finally:
        asyncio.run(probe.close())
