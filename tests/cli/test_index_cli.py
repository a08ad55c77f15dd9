"""``seamline index``: ingest a folder (the unreadable reported, the rest indexed), query a
version, diff two, move and roll back an alias; errors are one line."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from seamline.providers.local_models import minilm_files
from tests.cli.test_cli import Run, _runner

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


def test_an_index_embedded_by_a_configured_model(stub_home: Path, tmp_path: Path) -> None:
    config = stub_home / "seamline.toml"
    base_url = tomllib.loads(config.read_text())["models"][0]["base_url"]
    with config.open("a") as toml:
        toml.write(
            f'[[models]]\nname = "embed-stub"\nkind = "embedding"\nbase_url = "{base_url}"\n'
            "prices = {input = 1.0, output = 0.0}\n"
        )
    env = {**os.environ, "SEAMLINE_HOME": str(stub_home), "SEAMLINE_USER": "alice"}
    env.pop("SEAMLINE_DATABASE_URL", None)
    seamline = _runner(env)
    seamline("init")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("Refunds reach your card within 14 days.")
    (docs / "delivery.md").write_text("We deliver to Norway and Switzerland.")
    made = seamline(
        "index", "ingest", str(docs), "--name", "help", "--embedding-model", "embed-stub"
    )
    assert "created  index help v1" in made.stdout
    shown = json.loads(seamline("index", "show", "help", "--json").stdout)
    assert shown["content"]["embedding"]["model"] == "embed-stub"
    # the query is embedded by the index's own model, whatever the command's default
    hits = json.loads(seamline("index", "query", "help", "refunds reach card", "--json").stdout)
    assert "14 days" in hits["hits"][0]["text"]
    spent = json.loads(seamline("cost", "--by", "use_case", "--json").stdout)["data"]
    assert [row["group"] for row in spent] == ["rag.embed"] and spent[0]["cost_usd"] > 0
    failed = seamline(
        "index", "ingest", str(docs), "--name", "x", "--embedding-model", "nope", ok=False
    )
    assert failed.returncode == 1 and "nope" in failed.stderr and "Traceback" not in failed.stderr
