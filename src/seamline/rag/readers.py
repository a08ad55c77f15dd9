"""Sources read into text for indexing: plain text, Markdown, HTML and PDF.

A source that cannot be read (an encrypted or broken PDF, a binary file, an empty file, a
file gone by the time it is read) raises :class:`UnreadableSource` with one line saying
why; ingestion reports it for that file and goes on with the others.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES


class UnreadableSource(ValueError):
    pass


@dataclass(frozen=True)
class Source:
    """One document as an index version records it."""

    uri: str
    sha256: str  # of the file's bytes: what tells a changed source from an unchanged one
    modified: datetime
    text: str


def sources_in(paths: list[Path]) -> list[Path]:
    """The readable files among ``paths`` (folders searched recursively), sorted."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            found.add(path)
    return sorted(found)


def read_source(path: Path) -> Source:
    try:
        data = path.read_bytes()
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        raise UnreadableSource("the file is gone") from None
    except OSError as exc:
        raise UnreadableSource(exc.strerror or str(exc)) from None
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        text = _pdf_text(data)
    elif suffix in HTML_SUFFIXES:
        text = _html_text(_decoded(data))
    elif suffix in TEXT_SUFFIXES:
        text = _decoded(data)
    else:
        raise UnreadableSource(f"{suffix or 'no suffix'}: not text, Markdown, HTML or PDF")
    if not text.strip():
        raise UnreadableSource("no text in it")
    return Source(path.resolve().as_uri(), hashlib.sha256(data).hexdigest(), modified, text)


def _decoded(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableSource("a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableSource("not UTF-8 text") from None


def _pdf_text(data: bytes) -> str:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableSource("an encrypted PDF")
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except PdfReadError as exc:
        raise UnreadableSource(f"not a readable PDF: {exc}") from None


class _TextOfHtml(HTMLParser):
    """The visible text of a page: scripts, styles and templates left out, blocks on lines
    of their own."""

    HIDDEN = frozenset({"script", "style", "template", "noscript", "head"})
    BLOCKS = frozenset({"p", "div", "li", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self.hidden:
            self.hidden -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
