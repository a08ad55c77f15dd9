"""The chunk store at scale: PostgreSQL with pgvector for vectors and its own full-text
search for keywords (``index_store_url``; install ``seamline[pgvector]``).

One table holds every chunk of every snapshot with its vector, of any dimension: the
column is a plain ``vector``, and each dimension in use gets a partial HNSW index on
``embedding::vector(N)`` (pgvector's recipe for several models in one column), built
after the first snapshot of that dimension is loaded (building it then is far faster than
growing it row by row). Queries carry the same cast, so the planner picks between the HNSW
index and an exact scan of the snapshot's rows by their estimated cost; pgvector 0.8's
iterative scan keeps a filtered HNSW search from returning fewer than ``k`` rows.
A snapshot is loaded with ``COPY`` in one transaction with the row that says it is
complete. Tables are named ``seamline_index_*`` so the store can share a database,
seamline's own included.

Vectors travel in pgvector's binary format (the ``pgvector`` package's psycopg adapter).
One connection per store, used under a lock: a gateway worker's retrievals queue on it, as
they do on the SQLite file.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from seamline.core.clock import isoformat, utcnow
from seamline.core.errors import Unavailable
from seamline.rag.store import ChunkFilter, Hit, StoredChunk, fuse, keywords

MAX_SOURCE_LISTS = 256  # snapshots whose source lists are kept for filtered searches
_SCHEMA_LOCK = "hashtext('seamline_index')"  # one process changes the schema at a time
# HNSW candidates per search (pgvector's default is 40). Recall depends on the data: on
# bench.retrieval's synthetic corpus (clustered vectors under heavy noise, harder for a
# graph index than text embeddings) recall@10 at 100,000 chunks was 0.44 at 100 (3 ms) and
# 0.93 at 1,000 (21 ms). Set index_store_ef_search for the trade-off a corpus needs.
EF_SEARCH = 100
_COPY_TYPES = ["int4", "text", "text", "text", "text", "text", "int4", "text", "int4", "vector"]
_COLUMNS = "chunk_id, source_uri, source_sha256, source_modified, position, text"
_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS seamline_index_snapshots (
    project_id INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    embedding TEXT NOT NULL,
    dimensions INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, snapshot)
);
CREATE TABLE IF NOT EXISTS seamline_index_chunks (
    id BIGSERIAL PRIMARY KEY,
    project_id INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    source_uri TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    source_modified TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    dimensions INTEGER NOT NULL,
    embedding vector NOT NULL,
    words tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
    UNIQUE (project_id, snapshot, chunk_id)
);
CREATE INDEX IF NOT EXISTS ix_seamline_index_chunks_chunk
    ON seamline_index_chunks (project_id, chunk_id);
CREATE INDEX IF NOT EXISTS ix_seamline_index_chunks_words
    ON seamline_index_chunks USING gin (words);
"""


class PgvectorChunkStore:
    """The chunks of every index of every project, in PostgreSQL."""

    kind = "pgvector"

    def __init__(self, url: str, *, schema: str | None = None, ef_search: int = EF_SEARCH) -> None:
        import psycopg

        self.ef_search = ef_search
        self._conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        if schema:  # tests: a schema of their own
            self._conninfo = psycopg.conninfo.make_conninfo(
                self._conninfo, options=f"-csearch_path={schema},public"
            )
        self._connection = self._connect()
        self._lock = threading.Lock()
        self._source_lists: dict[tuple[int, str], list[tuple[str, str]]] = {}

    def _connect(self) -> Any:
        import psycopg
        from pgvector.psycopg import register_vector

        connection = None
        try:
            connection = psycopg.connect(self._conninfo, autocommit=True)
            # Created once, by one process at a time (CREATE ... IF NOT EXISTS races, and
            # its table locks would wait on loads in progress).
            exists = "SELECT to_regclass('seamline_index_chunks') IS NOT NULL"
            if not _scalar(connection, exists):
                with connection.transaction():
                    connection.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
                    connection.execute(_SCHEMA)
            register_vector(connection)
            connection.execute(f"SET hnsw.ef_search = {int(self.ef_search)}")
            connection.execute("SET hnsw.iterative_scan = strict_order")
            return connection
        except psycopg.Error as exc:
            if connection is not None:
                connection.close()
            raise Unavailable(  # the URL may hold a password: it is not repeated
                f"index store (index_store_url): {str(exc).strip().splitlines()[0]} "
                "(it needs PostgreSQL with pgvector)",
                code="index_store_unavailable",
            ) from None

    @property
    def _db(self) -> Any:
        """The connection, opened again after the server dropped it (a restart): the call
        that found it broken failed, the next one works."""
        if self._connection.broken:
            self._connection.close()
            self._connection = self._connect()
        return self._connection

    def close(self) -> None:
        self._connection.close()

    def has(self, project_id: int, snapshot: str) -> bool:
        return self._dimensions(project_id, snapshot) is not None

    def vectors_of(
        self, project_id: int, chunk_ids: Sequence[str], embedding: str, dimensions: int
    ) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT ON (c.chunk_id) c.chunk_id, c.embedding "
                "FROM seamline_index_chunks c JOIN seamline_index_snapshots s "
                "ON s.project_id = c.project_id AND s.snapshot = c.snapshot "
                "WHERE c.project_id = %s AND s.embedding = %s AND c.dimensions = %s "
                "AND c.chunk_id = ANY(%s)",
                (project_id, embedding, dimensions, list(chunk_ids)),
            ).fetchall()
        return {row[0]: row[1].to_numpy().astype(np.float32) for row in rows}

    def chunks_by_id(self, project_id: int, chunk_ids: Sequence[str]) -> dict[str, StoredChunk]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT DISTINCT ON (chunk_id) {_COLUMNS} FROM seamline_index_chunks "
                "WHERE project_id = %s AND chunk_id = ANY(%s)",
                (project_id, list(chunk_ids)),
            ).fetchall()
        return {row[0]: StoredChunk(*row) for row in rows}

    def write(
        self,
        project_id: int,
        snapshot: str,
        embedding: str,
        chunks: Sequence[StoredChunk],
        vectors: Any,
    ) -> None:
        """Write a whole snapshot, or nothing."""
        dimensions = int(vectors.shape[1])
        with self._lock, self._db.transaction():
            self._db.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{project_id}:{snapshot}",)
            )
            if self._dimensions(project_id, snapshot, locked=True) is not None:
                return
            cursor = self._db.cursor()
            with cursor.copy(
                "COPY seamline_index_chunks (project_id, snapshot, chunk_id, source_uri, "
                "source_sha256, source_modified, position, text, dimensions, embedding) "
                "FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(_COPY_TYPES)
                for chunk, vector in zip(chunks, vectors, strict=True):
                    copy.write_row(
                        (
                            project_id,
                            snapshot,
                            chunk.chunk_id,
                            chunk.source_uri,
                            chunk.source_sha256,
                            chunk.source_modified,
                            chunk.position,
                            chunk.text,
                            dimensions,
                            np.asarray(vector, np.float32),
                        )
                    )
            self._db.execute(
                "INSERT INTO seamline_index_snapshots VALUES (%s, %s, %s, %s, %s, %s)",
                (project_id, snapshot, embedding, dimensions, len(chunks), isoformat(utcnow())),
            )
            index = f"ix_seamline_index_chunks_hnsw_{dimensions}"
            # Only the first snapshot of a dimension builds its index: CREATE INDEX takes a
            # lock that two loads of other snapshots would deadlock on, even IF NOT EXISTS.
            if not _scalar(self._db, "SELECT to_regclass(%s) IS NOT NULL", (index,)):
                self._db.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
                self._db.execute(
                    f"CREATE INDEX IF NOT EXISTS {index} ON seamline_index_chunks USING hnsw "
                    f"((embedding::vector({dimensions})) vector_cosine_ops) "
                    f"WHERE dimensions = {dimensions}"
                )
        with self._lock:  # fresh statistics, or the planner scans a snapshot instead of HNSW
            self._db.execute("ANALYZE seamline_index_chunks")

    def search(
        self,
        project_id: int,
        snapshot: str,
        query_vector: Any,
        k: int,
        *,
        query_text: str | None = None,
        where: ChunkFilter | None = None,
    ) -> list[Hit]:
        dimensions = self._dimensions(project_id, snapshot)
        if dimensions is None:
            raise KeyError(snapshot)
        allowed = None if where is None else where.allowed(self._sources(project_id, snapshot))
        if allowed == []:
            return []
        only = "" if allowed is None else "AND source_uri = ANY(%(sources)s) "
        depth = k if query_text is None else max(k * 4, 50)
        vector = np.asarray(query_vector, np.float32)
        cast = f"embedding::vector({dimensions})"
        near = f"{cast} <=> %(vector)s::vector({dimensions})"
        arguments = {
            "vector": vector,
            "project": project_id,
            "snapshot": snapshot,
            "sources": allowed,
            "depth": depth,
        }
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, 1 - ({near}), {_COLUMNS} FROM seamline_index_chunks "
                "WHERE project_id = %(project)s AND snapshot = %(snapshot)s "
                f"AND dimensions = {dimensions} {only}ORDER BY {near} LIMIT %(depth)s",
                arguments,
            ).fetchall()
            by_id = {row[0]: (float(row[1]), StoredChunk(*row[2:])) for row in rows}
            if query_text is None:
                return [Hit(chunk, score) for score, chunk in by_id.values()]
            keyword = self._keyword(query_text, only, arguments)
            missing = [row_id for row_id in keyword if row_id not in by_id]
            if missing:
                extra = self._db.execute(
                    f"SELECT id, 0.0, {_COLUMNS} FROM seamline_index_chunks WHERE id = ANY(%s)",
                    (missing,),
                ).fetchall()
                by_id.update((row[0], (0.0, StoredChunk(*row[2:]))) for row in extra)
        best = fuse(list(by_id)[: len(rows)], keyword, k)
        return [Hit(by_id[row_id][1], score) for row_id, score in best]

    def _keyword(self, text: str, only: str, arguments: dict[str, Any]) -> list[int]:
        words = keywords(text)
        if not words:
            return []
        rows = self._db.execute(
            "SELECT id FROM seamline_index_chunks "
            "WHERE project_id = %(project)s AND snapshot = %(snapshot)s "
            f"AND words @@ to_tsquery('simple', %(words)s) {only}"
            "ORDER BY ts_rank_cd(words, to_tsquery('simple', %(words)s)) DESC LIMIT %(depth)s",
            {**arguments, "words": " | ".join(words)},
        ).fetchall()
        return [int(row[0]) for row in rows]

    def _sources(self, project_id: int, snapshot: str) -> list[tuple[str, str]]:
        """The snapshot's sources and when each changed (kept: snapshots never change)."""
        key = (project_id, snapshot)
        found = self._source_lists.get(key)
        if found is None:
            with self._lock:
                rows = self._db.execute(
                    "SELECT DISTINCT source_uri, source_modified FROM seamline_index_chunks "
                    "WHERE project_id = %s AND snapshot = %s",
                    key,
                ).fetchall()
            found = [(str(uri), str(modified)) for uri, modified in rows]
            if len(self._source_lists) >= MAX_SOURCE_LISTS:
                self._source_lists.clear()
            self._source_lists[key] = found
        return found

    def _dimensions(self, project_id: int, snapshot: str, *, locked: bool = False) -> int | None:
        query = (
            "SELECT dimensions FROM seamline_index_snapshots "
            "WHERE project_id = %s AND snapshot = %s"
        )
        if locked:
            row = self._db.execute(query, (project_id, snapshot)).fetchone()
        else:
            with self._lock:
                row = self._db.execute(query, (project_id, snapshot)).fetchone()
        return None if row is None else int(row[0])


def _scalar(connection: Any, query: str, arguments: tuple[Any, ...] = ()) -> Any:
    row = connection.execute(query, arguments).fetchone()
    return None if row is None else row[0]
