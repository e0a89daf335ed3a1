"""The embedded default sink: one SQLite table, WAL, ``synchronous=FULL``."""

from __future__ import annotations

import os
import pathlib
import sqlite3
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final

import msgspec
import structlog

from .._entry import AuditEntry
from ._base import FileSink, StoreAnchor, check_store, decode_action, encode_json

__all__ = ["SqliteSink", "verify_sqlite"]

_log = structlog.get_logger("audit.sinks")

SQLITE_MAGIC: Final = b"SQLite format 3\x00"


def is_sqlite_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` starts like a SQLite database (else it is read as JSONL).

    :raises FileNotFoundError: if there is no such file.
    """
    with open(path, "rb") as f:
        return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def _is_quiescent_wal_store(path: str) -> bool:
    """Whether ``path`` is a WAL database that no connection has open and no crash left
    unfinished: its header says WAL and it has no ``-wal``, ``-shm`` or ``-journal`` file.

    (A read-write connection would fold a leftover ``-wal`` into the file when it closes,
    and roll back a leftover ``-journal`` when it opens: both are writes.)
    """
    with open(path, "rb") as f:
        header = f.read(20)
    if header[18:20] != b"\x02\x02":  # the read and write versions: 2 is WAL
        return False
    return not any(os.path.exists(path + suffix) for suffix in ("-wal", "-shm", "-journal"))


def connect_reader(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A connection that reads an audit store and leaves it as it found it.

    A reader of a WAL database needs its ``-wal`` and ``-shm`` files, and creates them if
    they are missing; only the last connection to close removes them, after a checkpoint,
    and a read-only connection (``mode=ro``) can do neither, so it leaves them behind.
    Hence:

    - a quiescent store (see :func:`_is_quiescent_wal_store`: nobody has it open, nothing
      left unfinished) is opened read-write, with ``PRAGMA query_only``: SQL through it can
      change nothing, and closing it, the last connection, removes the empty ``-wal`` and
      the ``-shm`` it created. (Should a writer open the store, commit and close while the
      connection is open, SQLite's close checkpoints those committed pages into the file,
      as any connection would: the content is the same.)
    - any other file (a store a writer has open, one a crash left with its ``-wal``, or not
      a WAL database) is opened ``mode=ro``: it still sees every committed transaction,
      those in the ``-wal`` included, never checkpoints, and leaves the companion files as
      they were (creating a missing ``-shm`` if it must).

    Never ``immutable=1``: it would ignore the ``-wal`` (committed entries) and the locks
    of a writer, whose checkpoints could then tear what it reads. A process that may not
    write the file itself gets a read-only connection from SQLite even with ``mode=rw``,
    which leaves behind the ``-wal`` and ``-shm`` it had to create.

    :raises FileNotFoundError: if there is no such file.
    :raises sqlite3.Error: if SQLite cannot open it.
    """
    path = os.fspath(path)
    mode = "rw" if _is_quiescent_wal_store(path) else "ro"
    uri = f"{pathlib.Path(path).absolute().as_uri()}?mode={mode}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


_SCHEMA_VERSION: Final = 1
_COLUMNS: Final = (
    "seq, ts_ns, recorded_ns, actor, action_type, action, resource, event_seq, event_id, "
    "kind, category, primitive, correlation_id, causation_id, prev_hash, hash"
)
_SCHEMA: Final = (
    """
    CREATE TABLE IF NOT EXISTS audit_entries (
        seq INTEGER PRIMARY KEY,
        ts_ns INTEGER NOT NULL,
        recorded_ns INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action_type TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        event_seq INTEGER,
        event_id TEXT,
        kind TEXT NOT NULL,
        category TEXT,
        primitive TEXT,
        correlation_id TEXT,
        causation_id TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS audit_entries_actor ON audit_entries (actor, seq)",
    "CREATE INDEX IF NOT EXISTS audit_entries_kind ON audit_entries (kind, seq)",
    "CREATE INDEX IF NOT EXISTS audit_entries_ts ON audit_entries (ts_ns)",
    "CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
)
_ANCHOR_KEYS: Final = ("first_seq", "first_prev_hash", "last_seq", "last_hash")
_INSERT: Final = f"INSERT INTO audit_entries ({_COLUMNS}) VALUES ({', '.join('?' * 16)})"
_SET_META: Final = (
    "INSERT INTO audit_meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def _row(e: AuditEntry) -> tuple[Any, ...]:
    action = e.action
    return (
        e.seq,
        e.ts_ns,
        e.recorded_ns,
        e.actor,
        type(action).__struct_config__.tag,
        encode_json(action).decode(),
        e.resource,
        e.event_seq,
        e.event_id,
        e.kind,
        e.category,
        e.primitive,
        e.correlation_id,
        e.causation_id,
        e.prev_hash,
        e.hash,
    )


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(
        row[0],
        row[1],
        row[2],
        row[3],
        decode_action(row[5]),
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        row[15],
    )


class SqliteSink(FileSink):
    """Audit entries in a SQLite database: the embedded, queryable default sink.

    :param path: the database file (created if missing, with its ``-wal`` and ``-shm``
        companions).
    :raises sqlite3.Error: if the file cannot be opened or is not an audit store.

    One row per entry in ``audit_entries``, ``seq`` as ``INTEGER PRIMARY KEY``, the action as
    its tagged JSON plus an ``action_type`` column, both hash columns, and indexes on actor,
    kind and time. The table ``audit_meta`` is the store's own anchor: ``first_seq``,
    ``first_prev_hash``, ``last_seq`` and ``last_hash``, updated in the same transaction as
    each batch, so :func:`verify_sink` can tell a cut tail from a short store.

    Durability: ``journal_mode=WAL`` and ``synchronous=FULL``; each :meth:`write` is one
    transaction, committed (and synced) before it returns. A failed write rolls back, leaves
    what was committed intact, and breaks the sink: further writes raise
    :exc:`anyio.BrokenResourceError` rather than retrying on a store that just failed.

    It holds one connection shared by the threads that call it, serialised by a lock.

    Lifecycle (the :class:`~audit.sinks.AuditSink` contract): a broken sink refuses writes
    but :meth:`load_tail` and :meth:`query` still read what was committed. :meth:`close`
    closes the connection and is idempotent; after it, :meth:`write`, :meth:`load_tail` and
    :meth:`query` raise :exc:`anyio.ClosedResourceError`; :attr:`path` stays readable. Use it
    as a context manager or call :meth:`close`; the audit consumer never closes a sink it was
    given.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('schema_version', ?)",
                (_SCHEMA_VERSION,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    def write(self, entries: Sequence[AuditEntry]) -> None:
        """Insert ``entries`` and advance the anchor in one synced transaction.

        An empty batch writes nothing, but is refused like any other when the sink is
        closed or broken.

        :raises anyio.ClosedResourceError: if the sink is closed (checked first).
        :raises anyio.BrokenResourceError: if an earlier write failed.
        :raises sqlite3.Error: if this write fails (disk full, I/O error, a duplicate seq);
            it is rolled back and the sink is broken from then on.
        """
        if not entries:
            self._refuse_empty_write()
            return
        with self._lock:
            self._check_usable()
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, [_row(e) for e in entries])
                first, last = entries[0], entries[-1]
                conn.execute(
                    "INSERT OR IGNORE INTO audit_meta (key, value) "
                    "VALUES ('first_seq', ?), ('first_prev_hash', ?)",
                    (first.seq, first.prev_hash),
                )
                conn.executemany(_SET_META, (("last_seq", last.seq), ("last_hash", last.hash)))
                conn.execute("COMMIT")
            except BaseException as exc:
                self._failed = exc
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                _log.error("audit_sink_write_failed", path=self._path, error=repr(exc))
                raise

    def load_tail(self, n: int) -> list[AuditEntry]:
        """The newest ``n`` entries, oldest first.

        :raises ValueError: if ``n`` is negative (whatever the sink's state).
        :raises anyio.ClosedResourceError: if the sink is closed.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM audit_entries ORDER BY seq DESC LIMIT ?", (n,)
            ).fetchall()
        rows.reverse()
        return [_entry(r) for r in rows]

    def query(
        self,
        *,
        actor: str | None = None,
        kind: str | None = None,
        action_type: str | None = None,
        since_seq: int | None = None,
        until_seq: int | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Committed entries matching every given filter, oldest first.

        :param action_type: the action's tag (``"ToolCall"``, ``"EventsDropped"``, ...).
        :param since_seq: ``seq >= since_seq``; ``until_seq``: ``seq < until_seq``.
        :param since_ns: ``ts_ns >= since_ns``; ``until_ns``: ``ts_ns < until_ns``.
        :param limit: at most this many (the oldest that match).
        :raises anyio.ClosedResourceError: if the sink is closed.
        """
        clauses: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("actor", "=", actor),
            ("kind", "=", kind),
            ("action_type", "=", action_type),
            ("seq", ">=", since_seq),
            ("seq", "<", until_seq),
            ("ts_ns", ">=", since_ns),
            ("ts_ns", "<", until_ns),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        sql = f"SELECT {_COLUMNS} FROM audit_entries"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            self._check_open()
            rows = self._conn.execute(sql, params).fetchall()
        return [_entry(r) for r in rows]

    def close(self) -> None:
        """Close the connection; idempotent.

        It waits for a call in progress in another thread. Every committed batch stays in
        the store (committed means synced); as the last connection to the store, it also
        folds the ``-wal`` file into the database and removes ``-wal`` and ``-shm``. The sink
        is closed when it returns or raises; later calls do nothing.

        :raises sqlite3.Error: if SQLite fails to close the connection (the first call only).
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> SqliteSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()


def verify_sqlite(path: str) -> int | None:
    """Verify a SQLite audit store end to end (see :func:`~audit.sinks.verify_sink`).

    It reads the anchor and the entries in one read transaction (one snapshot, committed
    ``-wal`` content included) through :func:`connect_reader`.
    """
    conn = connect_reader(path)
    try:
        conn.execute("BEGIN")
        meta = dict(conn.execute("SELECT key, value FROM audit_meta").fetchall())
        if not any(key in meta for key in _ANCHOR_KEYS):
            # Nothing acknowledged: intact only if there are no rows either.
            (oldest,) = conn.execute("SELECT min(seq) FROM audit_entries").fetchone()
            return None if oldest is None else int(oldest)
        try:
            anchor = msgspec.convert({key: meta.get(key) for key in _ANCHOR_KEYS}, StoreAnchor)
        except msgspec.ValidationError:
            # Damaged (a sink writes all four at once): nothing can be vouched for.
            (oldest,) = conn.execute("SELECT min(seq) FROM audit_entries").fetchone()
            first = meta.get("first_seq")
            return int(oldest) if oldest is not None else first if type(first) is int else 1
        rows = conn.execute(f"SELECT {_COLUMNS} FROM audit_entries ORDER BY seq")
        bad, _ = check_store((_entry(r) for r in rows), anchor)
        return bad
    finally:
        conn.close()
