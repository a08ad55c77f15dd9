"""Indexes: sources read (text, Markdown, HTML, PDF; the unreadable reported), chunked by
tokens with overlap, embedded by the embedded MiniLM into immutable versions; a re-ingest
embeds only what changed; aliases decide what a query reads; projects never see each
other's chunks."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfWriter

from seamline.core.errors import InvalidInput, NotFound, Unavailable
from seamline.core.settings import Settings
from seamline.providers.local_models import minilm_files
from seamline.rag.chunking import ChunkerConfig, chunk_text
from seamline.rag.freshness import CHANGED, FRESH, MISSING, source_states
from seamline.rag.indexes import Indexes, local_embedder
from seamline.rag.ingest import Embedder
from seamline.rag.readers import UnreadableSource, read_source
from seamline.rag.store import STORE_FILE, ChunkFilter, ChunkStore, open_store
from seamline.rag.store_pgvector import PgvectorChunkStore
from seamline.rag.store_sqlite import SqliteChunkStore
from seamline.registry import Actor, Registry
from tests.conftest import make_actor

pytestmark = pytest.mark.skipif(minilm_files() is None, reason="needs seamline[local]")

REFUNDS = "Refunds reach the original payment method within 14 days of the return."
SALE = "Items bought on sale can be exchanged but not refunded."
DELIVERY = "We deliver to all EU countries, the UK, Norway and Switzerland."


def one_page_pdf(text: str) -> bytes:
    """A minimal valid PDF (with its cross-reference table) whose one page says ``text``."""
    stream = f"BT /F1 12 Tf 10 50 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


class Counting:
    """The embedded MiniLM, counting the texts it embeds."""

    def __init__(self, version: str | None = None) -> None:
        real = local_embedder()
        self.texts = 0
        self.embedder = Embedder(
            real.model, version or real.version, real.dimensions, self.embed, real.tokenizer
        )
        self._embed = real.embed

    def embed(self, texts: list[str]) -> Any:
        self.texts += len(texts)
        return self._embed(texts)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "refunds.md").write_text(f"# Refunds\n\n{REFUNDS}\n\n{SALE}\n")
    (folder / "delivery.html").write_text(
        f"<html><head><style>p {{}}</style></head><body><h1>Delivery</h1><p>{DELIVERY}</p>"
        "<script>steal()</script></body></html>"
    )
    (folder / "gift-cards.pdf").write_bytes(one_page_pdf("Gift cards never expire."))
    return folder


def test_sources_are_read_and_the_unreadable_are_reported(corpus: Path, tmp_path: Path) -> None:
    html = read_source(corpus / "delivery.html").text
    assert html == f"Delivery\n{DELIVERY}" and "steal" not in html
    assert "Gift cards never expire." in read_source(corpus / "gift-cards.pdf").text
    encrypted = PdfWriter()
    encrypted.add_blank_page(100, 100)
    encrypted.encrypt("secret")
    buffer = io.BytesIO()
    encrypted.write(buffer)
    cases = {
        "locked.pdf": (buffer.getvalue(), "an encrypted PDF"),
        "broken.pdf": (b"%PDF-1.4 not really", "not a readable PDF"),
        "image.txt": (b"\x89PNG\x00\x00\x00", "a binary file"),
        "empty.md": (b"   \n", "no text in it"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnreadableSource, match=reason):
            read_source(tmp_path / name)
    with pytest.raises(UnreadableSource, match="gone"):
        read_source(tmp_path / "never-there.md")


def test_chunks_are_token_windows_with_overlap_cut_from_the_source_as_it_is() -> None:
    tokenizer = local_embedder().tokenizer
    text = " ".join(f"word{i}" for i in range(300))
    config = ChunkerConfig(tokens=64, overlap=16)
    chunks = chunk_text(text, ("file:///a.txt", "sha"), config, tokenizer)
    assert len(chunks) > 3 and all(text[c.start : c.end] == c.text for c in chunks)
    assert chunks[1].start < chunks[0].end  # neighbours share their overlap
    assert all(len(tokenizer.encode(c.text, add_special_tokens=False).ids) <= 64 for c in chunks)
    again = chunk_text(text, ("file:///a.txt", "sha"), config, tokenizer)
    assert [c.id for c in again] == [c.id for c in chunks]  # stable ids: vectors reused
    with pytest.raises(ValueError, match="overlap"):
        ChunkerConfig(tokens=32, overlap=32)


def test_a_reingest_embeds_only_what_changed_and_records_it(
    registry: Registry, alice: Actor, store: ChunkStore, corpus: Path
) -> None:
    counting = Counting()
    indexes = Indexes(registry, alice, store, counting.embedder)
    (corpus / "notes.bin").write_bytes(b"\x00\x01")  # not a source kind: skipped by suffix
    pushed, first = indexes.ingest([corpus], "help", ChunkerConfig())
    assert (pushed.version, len(first.added), first.embedded) == (1, 3, first.chunks)
    embedded_once = counting.texts

    (corpus / "refunds.md").write_text(f"# Refunds\n\n{REFUNDS} Sale items: {SALE}\n")
    (corpus / "delivery.html").unlink()
    (corpus / "shoes.txt").write_text("Unworn shoes can be returned within 30 days.")
    pushed, second = indexes.ingest([corpus], "help", ChunkerConfig())
    assert pushed.version == 2
    assert [Path(u).name for u in second.changed] == ["refunds.md"]
    assert [Path(u).name for u in second.added] == ["shoes.txt"]
    assert [Path(u).name for u in second.removed] == ["delivery.html"]
    assert second.reused == 1 and second.embedded == 2  # the PDF's chunk kept its vector
    assert counting.texts == embedded_once + 2
    content = registry.get_version(alice, "index", "help", 2).content
    assert {Path(s["uri"]).name for s in content["sources"]} == {
        "refunds.md",
        "shoes.txt",
        "gift-cards.pdf",
    }
    assert content["embedding"]["model"] == "local-minilm" and content["chunker"]["tokens"] == 200

    unchanged, third = indexes.ingest([corpus], "help", ChunkerConfig())
    assert unchanged.status == "unchanged" and third.embedded == 0

    other_model = Counting(version="another-model-version")
    switched = Indexes(registry, alice, store, other_model.embedder)
    pushed, fourth = switched.ingest([corpus], "help", ChunkerConfig())
    assert pushed.version == 3 and fourth.embedded == fourth.chunks  # everything again
    assert len(fourth.changed) == 3


def test_an_alias_decides_what_the_next_query_reads_and_a_rollback_moves_it_back(
    registry: Registry, alice: Actor, store: ChunkStore, corpus: Path
) -> None:
    indexes = Indexes(registry, alice, store, local_embedder())
    indexes.ingest([corpus], "help", ChunkerConfig())
    (corpus / "refunds.md").write_text("Refunds are no longer offered; exchanges only.")
    indexes.ingest([corpus], "help", ChunkerConfig())
    registry.move_alias(alice, "index", "help", "live", 1)
    registry.move_alias(alice, "index", "help", "live", 2)
    found = indexes.query("help@live", "how do refunds work?", k=1)
    assert "no longer offered" in found.hits[0].chunk.text and found.index.number == 2
    registry.rollback(alice, "index", "help", "live")
    found = indexes.query("help@live", "how do refunds work?", k=1)
    assert "14 days" in found.hits[0].chunk.text and found.index.number == 1


def test_hybrid_search_finds_an_exact_term_and_projects_never_meet(
    registry: Registry, alice: Actor, store: ChunkStore, corpus: Path
) -> None:
    indexes = Indexes(registry, alice, store, local_embedder())
    indexes.ingest([corpus], "help", ChunkerConfig())
    hybrid = indexes.query("help", "Switzerland", k=1, hybrid=True)
    assert DELIVERY in hybrid.hits[0].chunk.text
    carol = make_actor(registry, "carol", project="globex")
    with pytest.raises(NotFound):
        Indexes(registry, carol, store, local_embedder()).query("help", "refunds")
    snapshot = registry.get_version(alice, "index", "help", None).content["store"]["snapshot"]
    with pytest.raises(KeyError):  # the store keys chunks by project too
        store.search(carol.project.id, snapshot, local_embedder().embed(["refunds"])[0], 3)


def test_filters_keep_a_search_to_matching_sources_and_recent_documents(
    registry: Registry, alice: Actor, store: ChunkStore, corpus: Path
) -> None:
    eu = corpus / "eu"
    eu.mkdir()
    (eu / "refunds.md").write_text("EU customers get refunds within 30 days of the return.")
    indexes = Indexes(registry, alice, store, local_embedder())
    indexes.ingest([corpus], "help", ChunkerConfig())
    anywhere = indexes.query("help", "refunds", k=2)
    assert {Path(h.chunk.source_uri).parent.name for h in anywhere.hits} == {"corpus", "eu"}
    for hybrid in (False, True):
        only_eu = indexes.query(
            "help", "refunds", k=3, hybrid=hybrid, where=ChunkFilter(source="*/eu/*")
        )
        assert [Path(h.chunk.source_uri).parent.name for h in only_eu.hits] == ["eu"]
    nothing = ChunkFilter(source="*/us/*")
    assert indexes.query("help", "refunds", k=3, hybrid=True, where=nothing).hits == []
    future = ChunkFilter(modified_after="2999-01-01T00:00:00+00:00")
    assert indexes.query("help", "refunds", where=future).hits == []
    recent = ChunkFilter(modified_after="2000-01-01T00:00:00+00:00")
    assert len(indexes.query("help", "refunds", k=10, where=recent).hits) == 4


def test_the_embedded_store_lets_go_of_snapshots_past_its_memory_bound(
    registry: Registry, alice: Actor, corpus: Path, tmp_path: Path
) -> None:
    store = SqliteChunkStore(tmp_path / "bounded.db", max_loaded_bytes=1)
    indexes = Indexes(registry, alice, store, local_embedder())
    indexes.ingest([corpus], "help", ChunkerConfig())
    (corpus / "refunds.md").write_text("Refunds are no longer offered.")
    indexes.ingest([corpus], "help", ChunkerConfig())
    for _ in range(2):  # each search reloads what the other let go, with the same answers
        assert "14 days" in indexes.query("help@1", "refunds", k=1).hits[0].chunk.text
        assert "no longer" in indexes.query("help@2", "refunds", k=1).hits[0].chunk.text
    assert len(store._snapshots) == 1
    store.close()


def test_a_query_by_another_model_is_refused_and_a_failed_ingest_leaves_nothing(
    registry: Registry, alice: Actor, store: ChunkStore, corpus: Path
) -> None:
    Indexes(registry, alice, store, local_embedder()).ingest([corpus], "help", ChunkerConfig())
    other = Counting(version="another-model-version").embedder
    with pytest.raises(InvalidInput, match="re-ingest") as refused:
        Indexes(registry, alice, store, other).query("help", "refunds")
    assert refused.value.code == "embedding_mismatch"

    def failing(texts: list[str]) -> Any:
        raise RuntimeError("the embedding model failed")

    broken = Embedder("local-minilm", "v-broken", 384, failing, other.tokenizer)
    (corpus / "new.md").write_text("Brand new policy text.")
    with pytest.raises(InvalidInput, match=r"nothing could be embedded: .*model failed"):
        Indexes(registry, alice, store, broken).ingest([corpus], "help", ChunkerConfig())
    assert registry.get_version(alice, "index", "help", None).number == 1  # no half version

    def refusing_one_file(texts: list[str]) -> Any:
        if any("Brand new" in text for text in texts):
            raise RuntimeError("input rejected")
        return local_embedder().embed(texts)

    picky = Embedder("local-minilm", "v-picky", 384, refusing_one_file, other.tokenizer)
    pushed, report = Indexes(registry, alice, store, picky).ingest(
        [corpus], "help", ChunkerConfig()
    )
    [(failed, why)] = report.errors.items()
    assert Path(failed).name == "new.md" and why == "embedding failed: input rejected"
    sources = registry.get_version(alice, "index", "help", None).content["sources"]
    assert pushed.version == 2 and len(sources) == 3  # the other files, all embedded

    def unreachable(texts: list[str]) -> Any:
        raise Unavailable("the embedding service is down")

    down = Embedder("local-minilm", "v-down", 384, unreachable, other.tokenizer)
    (corpus / "newer.md").write_text("Another policy text.")
    with pytest.raises(Unavailable):  # not the documents' fault: no version leaves them out
        Indexes(registry, alice, store, down).ingest([corpus], "help", ChunkerConfig())
    assert registry.get_version(alice, "index", "help", None).number == 2
    assert "new.md" not in {Path(source["uri"]).name for source in sources}


def test_a_source_changed_after_ingestion_shows_as_stale(
    registry: Registry, alice: Actor, store: ChunkStore, corpus: Path
) -> None:
    Indexes(registry, alice, store, local_embedder()).ingest([corpus], "help", ChunkerConfig())
    content = registry.get_version(alice, "index", "help", None).content
    assert {s.state for s in source_states(content)} == {FRESH}
    (corpus / "refunds.md").write_text("Refunds are no longer offered.")
    (corpus / "delivery.html").unlink()
    states = {Path(s.uri).name: s.state for s in source_states(content)}
    assert states == {"refunds.md": CHANGED, "delivery.html": MISSING, "gift-cards.pdf": FRESH}


def test_the_settings_choose_the_store_and_an_unusable_one_is_a_clear_error(
    tmp_path: Path, pgvector_url: str
) -> None:
    embedded = open_store(Settings(home=tmp_path))
    assert isinstance(embedded, SqliteChunkStore) and (tmp_path / STORE_FILE).exists()
    embedded.close()
    shared = open_store(Settings(home=tmp_path, index_store_url=pgvector_url))
    assert isinstance(shared, PgvectorChunkStore) and not shared.has(1, "none")
    shared.close()
    url = "postgresql://seamline:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(Unavailable, match=r"^index store \(index_store_url\): ") as failed:
        open_store(Settings(home=tmp_path, index_store_url=url))
    assert "s3cret" not in str(failed.value)
