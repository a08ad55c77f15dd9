"""``seamline index``: ingest a folder (the unreadable reported, the rest indexed), query a
version, diff two, move and roll back an alias; errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seamline.providers.local_models import minilm_files
from tests.cli.test_cli import Run

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")


def test_ingest_query_diff_and_roll_back_an_index(seamline: Run, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("Refunds reach your card within 14 days.")
    (docs / "delivery.txt").write_text("We deliver to Norway and Switzerland.")
    (docs / "scan.pdf").write_bytes(b"%PDF-1.4 broken")
    first = seamline("index", "ingest", str(docs), "--name", "help")
    assert "created  index help v1" in first.stdout and "2 added" in first.stdout
    assert "left out" in first.stderr and "scan.pdf: not a readable PDF" in first.stderr

    (docs / "refunds.md").write_text("Refunds are no longer offered; exchanges only.")
    report = json.loads(seamline("index", "ingest", str(docs), "--name", "help", "--json").stdout)
    assert report["index"]["version"] == 2
    assert (report["report"]["embedded"], report["report"]["reused"]) == (1, 1)
    shown = json.loads(seamline("index", "show", "help@2", "--diff", "1", "--json").stdout)
    assert [Path(u).name for u in shown["diff"]["changed"]] == ["refunds.md"]

    seamline("index", "promote", "help", "1", "--to", "live")
    seamline("index", "promote", "help", "2", "--to", "live")
    hits = json.loads(seamline("index", "query", "help@live", "refunds", "--json").stdout)
    assert hits["index"] == "help@2" and "no longer" in hits["hits"][0]["text"]
    assert "rolled back to v1" in seamline("index", "rollback", "help", "--alias", "live").stdout
    hits = json.loads(
        seamline("index", "query", "help@live", "refunds", "--k", "1", "--json").stdout
    )
    assert hits["index"] == "help@1" and "14 days" in hits["hits"][0]["text"]

    # v1 indexed the old refunds text: against the folder now, that source is stale
    fresh = json.loads(seamline("index", "freshness", "help@1", "--json").stdout)
    assert [Path(u).name for u in fresh["stale"]] == ["refunds.md"]
    assert fresh["rebuild_interval_days"] is not None and "1d" in fresh["answering_ages"]
    assert "1 of 2 sources stale" in seamline("index", "freshness", "help@1").stdout

    for args in (("query", "nope", "refunds"), ("ingest", str(tmp_path / "absent"), "--name", "x")):
        failed = seamline("index", *args, ok=False)
        assert failed.returncode == 1 and failed.stderr.startswith("error: ")
        assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
