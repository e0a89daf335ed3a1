"""The embedded default sink: one SQLite table, WAL, ``synchronous=FULL``."""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar

import msgspec
import structlog

from .._entry import AuditEntry
from ._base import (
    FileSink,
    StoreAnchor,
    StoreCheck,
    check_store,
    decode_action,
    encode_json,
    refuse_a_damaged_end,
)

__all__ = ["SqliteSink", "UnreadableStoreError", "query_sqlite", "read_store", "verify_sqlite"]

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
    unfinished: its header says WAL and it has no ``-wal`` or ``-journal`` file.

    (A read-write connection would fold a leftover ``-wal`` into the file when it closes,
    and roll back a leftover ``-journal`` when it opens: both are writes. A ``-shm`` without
    its ``-wal`` is a stale index: a connection to a WAL database keeps its ``-wal``, which
    it creates before the ``-shm`` and removes after it.)
    """
    with open(path, "rb") as f:
        header = f.read(20)
    if header[18:20] != b"\x02\x02":  # the read and write versions: 2 is WAL
        return False
    return not any(os.path.exists(path + suffix) for suffix in ("-wal", "-journal"))


_COMPANIONS: Final = ("-wal", "-shm", "-journal")
#: SQLite's primary result codes for "unable to open" and "attempt to write a readonly
#: database": what a reader gets that may not write the file or its folder.
_NO_ACCESS: Final = frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY})
_IMMUTABLE: Final = "mode=ro&immutable=1"

_T = TypeVar("_T")


class UnreadableStoreError(sqlite3.OperationalError):
    """SQLite cannot read an audit store with this process's access, or the store kept
    changing under a read without locks; the message says which, and what to do."""


def _may_write(path: str) -> bool:
    return os.access(path, os.W_OK)


def _file_state(path: str) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _connect(path: str, params: str) -> sqlite3.Connection:
    """A ``query_only`` connection that has already read the schema (and so opened the
    WAL), so that a lack of access fails here rather than in the caller's first query."""
    uri = f"{pathlib.Path(path).absolute().as_uri()}?{params}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _unreadable(path: str, exc: sqlite3.Error) -> UnreadableStoreError:
    """The error for a store that is not quiescent and that SQLite could not open."""
    present = [path + suffix for suffix in _COMPANIONS if os.path.exists(path + suffix)]
    folder = os.path.dirname(os.path.abspath(path))
    unreadable = [name for name in present if not os.access(name, os.R_OK)]
    if unreadable:
        need = f"read access to {' and '.join(unreadable)}"
    elif present == [path + "-wal"] and not os.access(folder, os.W_OK):
        need = (
            f"its -shm file (the index of its -wal), which is missing and cannot be "
            f"created: this user may not write {folder}"
        )
    else:
        need = f"more access than this user has ({exc})"
    state = (
        f"a writer has it open or stopped without closing it ({', '.join(present)})"
        if present
        else "it is no quiescent WAL store"
    )
    return UnreadableStoreError(
        f"cannot read {path} as this user: {state}, and SQLite needs {need}. Read it as "
        f"a user with that access, or have one copy it (sqlite3 {path} '.backup COPY') "
        "and read the copy"
    )


def _open_reader(path: str) -> tuple[sqlite3.Connection, bool]:
    """A connection for :func:`read_store`, and whether it takes SQLite's locks (``False``
    for an ``immutable=1`` connection)."""
    quiescent = _is_quiescent_wal_store(path)
    if quiescent and (not _may_write(path) or os.path.exists(path + "-shm")):
        # (a stale -shm: a connection that takes locks would create a -wal beside it, and
        # either leave it, or remove the -shm too, a file that was not its own)
        return _connect(path, _IMMUTABLE), False
    try:
        return _connect(path, "mode=rw" if quiescent else "mode=ro"), True
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF not in _NO_ACCESS:
            raise
        if _is_quiescent_wal_store(path):  # (checked again: a writer may have closed)
            return _connect(path, _IMMUTABLE), False
        raise _unreadable(path, exc) from None


def read_store(path: str | os.PathLike[str], read: Callable[[sqlite3.Connection], _T]) -> _T:
    """Call ``read`` with a connection to the SQLite audit store at ``path`` that leaves the
    store as it found it, and return what it returns.

    The connection is ``query_only`` (SQL through it can change nothing) and is closed
    when ``read`` returns. Which connection it is depends on the store and on the access
    this process has:

    - A quiescent store (a WAL database with no ``-wal`` or ``-journal`` beside it: nobody
      has it open, no crash left anything unfinished) that this process may write, and
      with no ``-shm`` either, is opened read-write. Closing it, the last connection,
      removes the empty ``-wal`` and the ``-shm`` it had to create. (Should a writer open
      the store, commit and close meanwhile, that close checkpoints those commits into
      the file, as any connection's would: the content is the same.)
    - A quiescent store this process may not write, or whose folder it may not write
      (SQLite must create the ``-wal`` and ``-shm`` of a WAL database to read it), or
      that has a stale ``-shm`` (left without its ``-wal``), is read with ``immutable=1``:
      without locks, creating nothing, leaving that ``-shm``. (A read-write open would
      leave behind a ``-wal`` and ``-shm`` owned by this user, which could lock the store's
      writer out of its own store; so would a ``mode=ro`` open beside a stale ``-shm``,
      with the empty ``-wal`` it creates.) Sound because nobody has the store open; a writer
      that opens it meanwhile commits to its ``-wal``, leaving the file as it was, until it
      checkpoints. To catch a checkpoint during the read (which could tear a page), the
      file's identity, size and timestamps are compared before and after: if they
      changed, ``read`` is called again, once, on whichever connection then fits (so
      ``read`` may run twice); if they changed again, :exc:`UnreadableStoreError`.
      Residual risk: a checkpoint that keeps the file's size and lands within the
      timestamp granularity of the file system (a few milliseconds on ext4) of the
      file's previous change goes unnoticed.
    - Any other store (one a writer has open, one a crash left with its ``-wal``, or a
      database not in WAL mode) is opened ``mode=ro``: it sees every committed
      transaction, those in the ``-wal`` included, never checkpoints, and leaves the
      companion files as they were. It needs read access to the ``-wal`` and ``-shm``
      (not write access: SQLite 3.22 and later read them without). A missing ``-shm``
      (a ``-wal`` copied without it, say) it creates and leaves, which needs write access
      to the folder; owned by this user, that ``-shm`` could lock out a writer who may not
      write it.

    Never ``immutable=1`` on a store that is not quiescent: it would ignore the ``-wal``
    (committed entries) and the locks of a writer, whose checkpoints could tear the read.

    :raises FileNotFoundError: if there is no such file.
    :raises PermissionError: if this process may not read the file.
    :raises UnreadableStoreError: (a :exc:`sqlite3.OperationalError`) if the store is not
        quiescent and this process lacks the access SQLite needs to read it (the message
        names it: read access to a companion file, or write access to the folder for a
        missing ``-shm``), or if the store changed during both reads without locks.
    :raises sqlite3.Error: if SQLite cannot open the file otherwise (not a database).
        What ``read`` raises propagates.
    """
    path = os.fspath(path)
    changed: Exception | None = None
    for _attempt in range(2):
        before = _file_state(path)
        conn, locked = _open_reader(path)
        try:
            try:
                result = read(conn)
            finally:
                conn.close()
        except Exception as exc:
            if locked or _file_state(path) == before:
                raise
            changed = exc  # (a torn page can fail the read)
            continue
        if locked or _file_state(path) == before:
            return result
    raise UnreadableStoreError(
        f"{path} changed twice while it was read without locks (as this user may not write "
        "it or its folder, and nobody had it open); run again"
    ) from changed


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


def _query_sql(
    *,
    actor: str | None,
    kind: str | None,
    action_type: str | None,
    since_seq: int | None,
    until_seq: int | None,
    since_ns: int | None,
    until_ns: int | None,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """The SELECT of :meth:`SqliteSink.query` and :func:`query_sqlite`, and its parameters."""
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
    return sql, params


class SqliteSink(FileSink):
    """Audit entries in a SQLite database: the embedded, queryable default sink.

    :param path: the database file (created if missing, readable and writable by its
        owner only, ``0600``; SQLite gives its ``-wal`` and ``-shm`` companions the file's
        permissions).
    :raises sqlite3.Error: if the file cannot be opened or is not an audit store
        (:exc:`sqlite3.DatabaseError` for a file that is no SQLite database, or one with
        tables but not those a sink makes, ``audit_entries`` and ``audit_meta`` with its
        ``schema_version``: the sink adds its tables only to an empty one; likewise for a
        store of another schema version than this sink writes). It changes nothing then.
    :raises ValueError: if the store does not end where its anchor says: rows were deleted
        from its end, or its newest row is not the one acknowledged.
        :exc:`msgspec.ValidationError` if its anchor is damaged (a part missing or of the
        wrong type). Either way it refuses to open, changing nothing: writing would advance
        the anchor past the damage, the only evidence of it. Keep the store (the message
        names the seq :func:`verify_sink` reports) and write to a new one.

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
        with contextlib.suppress(
            OSError
        ):  # a new store is its writer's alone (else: connect says)
            os.close(os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        try:
            _refuse_another_database(conn, self._path)  # before WAL mode, a lasting change
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('schema_version', ?)",
                (_SCHEMA_VERSION,),
            )
            meta = dict(conn.execute("SELECT key, value FROM audit_meta").fetchall())
            if any(key in meta for key in _ANCHOR_KEYS):
                try:
                    anchor = _anchor_of(meta)
                except msgspec.ValidationError as exc:
                    raise msgspec.ValidationError(
                        f"the anchor of the store at {self._path} (its audit_meta table) is "
                        f"damaged ({exc}); the sink will not write over it, since it is "
                        "evidence of what the store held: keep it, and write to a new store"
                    ) from None
                newest = conn.execute(
                    "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                refuse_a_damaged_end(self._path, newest, anchor)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()  # (rolling back the schema of a store refused)
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
        sql, params = _query_sql(
            actor=actor,
            kind=kind,
            action_type=action_type,
            since_seq=since_seq,
            until_seq=until_seq,
            since_ns=since_ns,
            until_ns=until_ns,
            limit=limit,
        )
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


def query_sqlite(
    path: str | os.PathLike[str],
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
    """:meth:`SqliteSink.query` on the store at ``path``, through :func:`read_store`: it
    writes nothing, so it can read a store a sink has open, or one this user may only read.

    :raises FileNotFoundError, PermissionError, UnreadableStoreError: see :func:`read_store`.
    :raises sqlite3.DatabaseError: if the file is not a SQLite audit store.
    """
    sql, params = _query_sql(
        actor=actor,
        kind=kind,
        action_type=action_type,
        since_seq=since_seq,
        until_seq=until_seq,
        since_ns=since_ns,
        until_ns=until_ns,
        limit=limit,
    )
    rows = read_store(path, lambda conn: conn.execute(sql, params).fetchall())
    return [_entry(r) for r in rows]


def verify_sqlite(path: str) -> StoreCheck:
    """Verify a SQLite audit store end to end (see :func:`~audit.sinks.verify_sink`).

    It reads the anchor and the entries in one read transaction (one snapshot, committed
    ``-wal`` content included) through :func:`read_store`, and counts them in it too.
    """
    return read_store(path, _verify)


def _refuse_another_database(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a database that has tables but is not an audit store of this schema version.

    A sink creates ``audit_entries``, ``audit_meta`` and its ``schema_version`` row in one
    transaction, so a store it made has all three; a table merely called ``audit_entries``
    (another application's) does not make one.

    :raises sqlite3.DatabaseError: naming the database and what it lacks, or its version.
    """
    schema = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    tables = {name for (name,) in schema}
    if not tables:
        return  # an empty database becomes a store
    missing = [table for table in ("audit_entries", "audit_meta") if table not in tables]
    version: list[Any] = []
    if not missing:
        with contextlib.suppress(sqlite3.OperationalError):  # an audit_meta of another shape
            version = conn.execute(
                "SELECT value FROM audit_meta WHERE key = 'schema_version'"
            ).fetchall()
    if not version:
        why = (
            f"it has no {missing[0]} table" if missing else "its audit_meta has no schema_version"
        )
        raise sqlite3.DatabaseError(
            f"{path} is a SQLite database but not an audit store ({why}): the sink will not "
            "add its tables to it"
        )
    ((found,),) = version
    if found != _SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"the audit store at {path} has schema version {found!r}; this version of the "
            f"sink writes schema version {_SCHEMA_VERSION} only"
        )


def _anchor_of(meta: dict[Any, Any]) -> StoreAnchor:
    """The anchor kept in ``audit_meta`` (its rows as a dict).

    :raises msgspec.ValidationError: if a part is missing or of the wrong type.
    """
    return msgspec.convert({key: meta.get(key) for key in _ANCHOR_KEYS}, StoreAnchor)


def _verify(conn: sqlite3.Connection) -> StoreCheck:
    conn.execute("BEGIN")
    count, oldest, newest = conn.execute(
        "SELECT count(*), min(seq), max(seq) FROM audit_entries"
    ).fetchone()
    meta = dict(conn.execute("SELECT key, value FROM audit_meta").fetchall())
    if not any(key in meta for key in _ANCHOR_KEYS):
        # Nothing acknowledged: intact only if there are no rows either.
        return StoreCheck(None, 0, None, None) if oldest is None else StoreCheck.bad_at(oldest)
    try:
        anchor = _anchor_of(meta)
    except msgspec.ValidationError:
        # Damaged (a sink writes all four at once): nothing can be vouched for.
        first = meta.get("first_seq")
        return StoreCheck.bad_at(
            int(oldest) if oldest is not None else first if type(first) is int else 1
        )
    rows = conn.execute(f"SELECT {_COLUMNS} FROM audit_entries ORDER BY seq")
    bad, _ = check_store((_entry(r) for r in rows), anchor)
    return StoreCheck.bad_at(bad) if bad is not None else StoreCheck(None, count, oldest, newest)


def read_with_anchor(
    path: str | os.PathLike[str],
) -> tuple[list[AuditEntry], StoreAnchor | None, str | None]:
    """Every entry of the SQLite store at ``path`` (by ``seq``) and its anchor, from one
    snapshot (one read transaction through :func:`read_store`: it writes nothing).

    :returns: ``(entries, anchor, damage)``: ``anchor`` is ``None`` when ``audit_meta``
        holds no part of one (or the table is missing); ``damage`` is why the anchor could
        not be read when it holds some parts but not all, or one of the wrong type (then
        ``anchor`` is ``None`` too), else ``None``.
    :raises FileNotFoundError, PermissionError, UnreadableStoreError: see :func:`read_store`.
    :raises sqlite3.DatabaseError: if the file is not a SQLite audit store.
    """

    def read(conn: sqlite3.Connection) -> tuple[list[Any], dict[Any, Any]]:
        conn.execute("BEGIN")
        rows = conn.execute(f"SELECT {_COLUMNS} FROM audit_entries ORDER BY seq").fetchall()
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_meta'"
        ).fetchone()
        meta = (
            dict(conn.execute("SELECT key, value FROM audit_meta").fetchall()) if has_meta else {}
        )
        return rows, meta

    rows, meta = read_store(path, read)
    entries = [_entry(r) for r in rows]
    if not any(key in meta for key in _ANCHOR_KEYS):
        return entries, None, None
    try:
        return entries, _anchor_of(meta), None
    except msgspec.ValidationError as exc:
        return entries, None, str(exc)
