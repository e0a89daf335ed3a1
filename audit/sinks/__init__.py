"""Durable sinks for the audit trail: SQLite (embedded default) and JSON Lines (export).

A sink is given to the audit consumer (``attach_audit_trail(..., sink=...)``), which writes
every entry it appends to it in batches, from a worker thread (``anyio.to_thread``), off the
publishers' path. ``AuditTrail.restore(sink)`` (or the consumer's ``resume=True``) reloads the
newest entries at startup and continues the ``seq`` and the hash chain.

Each store keeps its own anchor (the first and last ``seq`` and hash it acknowledged):
SQLite in its ``audit_meta`` table, in the same transaction as each batch; JSONL in a
``<path>.anchor`` file replaced after each batch's ``fsync``. :func:`verify_sink` checks a
store end to end against it, so a store cut short is told from one that is merely short.

The hash chain detects edits, removals and reorderings made without recomputing hashes.
Someone able to rewrite the whole store, anchor included, can recompute every hash (SHA-256
has no key): keep a copy of a recent ``(seq, hash)`` elsewhere (``trail.anchor`` or the last
entry) for evidence that survives that.

Errors and lifecycle (every sink here keeps the contract written on :class:`AuditSink`): a
failing write raises the sink's own error (:exc:`sqlite3.Error`, :exc:`OSError`), then the
sink is broken: it refuses writes with :exc:`anyio.BrokenResourceError` but can still be
read. ``close()`` is idempotent; a closed sink refuses writes and reads alike with
:exc:`anyio.ClosedResourceError` (``"the sink at '...' is closed"``). The audit consumer
never closes a sink: close it after the consumer's block.
"""

from __future__ import annotations

import os

from ._base import AuditSink
from ._jsonl import JsonlContents, JsonlSink, read_jsonl, verify_jsonl
from ._sqlite import SqliteSink, is_sqlite_file, verify_sqlite

__all__ = [
    "AuditSink",
    "JsonlContents",
    "JsonlSink",
    "SqliteSink",
    "read_jsonl",
    "verify_sink",
]


def verify_sink(path: str | os.PathLike[str]) -> int | None:
    """Verify a SQLite or JSONL audit store end to end.

    The format is recognised from the file's first bytes (SQLite's header, else JSONL).

    :returns: ``None`` when the store is intact: its entries run from the store's first
        ``seq`` to the last one it acknowledged, each carrying its correct hash and linked to
        its predecessor (hashes are checked only for stores written with a hash chain).
        Otherwise the first bad ``seq``: an altered entry's, the missing one where an entry
        was removed or two were swapped, the one after the last entry when the tail was cut
        (the anchor says more was written), or where a corrupt or torn line stands.
    :raises FileNotFoundError: if there is no such file.
    :raises sqlite3.DatabaseError: if a SQLite file is not an audit store.
    """
    path = os.fspath(path)
    if is_sqlite_file(path):
        return verify_sqlite(path)
    return verify_jsonl(path)
