"""Durable sinks for the audit trail: SQLite (embedded default) and JSON Lines (export).

A sink is given to the audit consumer (``attach_audit_trail(..., sink=...)``), which writes
every entry it appends to it in batches, from a worker thread (``anyio.to_thread``), off the
publishers' path. ``AuditTrail.restore(sink)`` (or the consumer's ``resume=True``) reloads the
newest entries at startup and continues the ``seq`` and the hash chain.

Each store keeps its own anchor (the first and last ``seq`` and hash it acknowledged):
SQLite in its ``audit_meta`` table, in the same transaction as each batch; JSONL in a
``<path>.anchor`` file replaced after each batch's ``fsync``. :func:`verify_sink` checks a
store end to end against it, so a store cut short is told from one that is merely short.
Keep a JSONL store and its anchor file together: without the anchor only the hash chain
can be checked, and entries cut from either end of the file go undetected. A sink refuses to
open a store that does not end where its anchor says (entries cut from its end, its newest
entry replaced), or whose anchor is damaged: writing would advance the anchor past the
damage, the only evidence of it.

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
from ._jsonl import JsonlContents, JsonlSink, read_jsonl
from ._sqlite import SqliteSink
from ._verify import check_sink

__all__ = [
    "AuditSink",
    "JsonlContents",
    "JsonlSink",
    "SqliteSink",
    "read_jsonl",
    "verify_sink",
]


def verify_sink(path: str | os.PathLike[str]) -> int | None:
    """Verify a SQLite or JSONL audit store end to end: its hash chain and its anchor.

    The format is recognised from the file's first bytes (SQLite's header, else JSONL).

    The chain shows each entry unaltered and linked to the one before it. The store's anchor
    (its first and last acknowledged ``seq`` and hash) shows where the store starts and
    ends, so that entries cut from either end are found too. A SQLite store keeps its
    anchor inside it (``audit_meta``). A JSONL store keeps it in ``<path>.anchor``: without
    that file (deleted, or not copied with the store) only the chain can be checked, from
    the first entry, taken on trust: entries cut from the end or from the start, or every
    entry (an empty file), cannot be detected, and such a store is reported intact.

    :returns: ``None`` when the store is intact: its entries run from the store's first
        ``seq`` to the last one it acknowledged or beyond (entries of a batch written but
        not yet acknowledged chain on, and stand), each carrying its correct hash and
        linked to its predecessor (hashes are checked only for stores written with a hash
        chain). A JSONL store's torn final line (one without its newline) that starts like
        an entry (``{"seq":``, as every line a sink writes does, or a prefix of that) is no
        damage when it follows the last entry the anchor acknowledged, or when there is no
        anchor file
        (nothing was acknowledged): it is a write cut short by a crash or one a writer is
        making right now, never acknowledged, so it is neither verified nor counted, and a
        :class:`JsonlSink` opening the store cuts it off (:func:`read_jsonl` reports its
        size). Otherwise the first bad ``seq``: an altered entry's, the missing one where an
        entry was removed or two were swapped, the one after the last complete entry when
        the anchor acknowledged more (the tail was cut, or the acknowledged newest entry
        is torn, even if it lost only its newline), where a complete line stands that is
        no entry (or one longer than 64 MiB, never read whole), or a torn one that does not
        start like one (no write of a sink left it); the first entry's (1 for no entry)
        when the anchor itself is damaged: unreadable, larger than 4096 bytes (never read
        whole), or a part of it missing.
    :raises FileNotFoundError: if there is no such file.
    :raises PermissionError: if this process may not read the file.
    :raises sqlite3.DatabaseError: if a SQLite file is not an audit store, or SQLite cannot
        read it (:exc:`sqlite3.OperationalError`, see below).

    SQLite stores: a verify changes no entry and no anchor, also while a sink in another
    process is writing the store. It reads one snapshot, which includes what a writer
    committed to the ``-wal`` file and has not yet checkpointed into the database.

    - A store nobody has open is left with no ``-wal`` or ``-shm`` file beside it. (Should a
      writer open it, commit and close while the verify runs, the verify's connection,
      closing last, checkpoints those commits into the file as any SQLite connection does.)
      A process that may not write the store or its folder, or any process when a stale
      ``-shm`` is left beside the store without its ``-wal``, reads such a store with
      SQLite's ``immutable=1``, without locks and creating nothing (sound because nobody
      has it open). A writer that opens it meanwhile changes the file only when it
      checkpoints, so the file's identity, size and timestamps are compared before and
      after the read, which is done again once if they changed. (A checkpoint that keeps
      the size and falls within the file system's timestamp granularity of the file's
      previous change would go unnoticed.)
    - The companions of a store a writer has open, or of one a crash left with its
      ``-wal``, stay in place: that ``-wal`` is read, never folded into the store. Reading
      it needs read access to the ``-wal`` and ``-shm``, and write access to the folder if
      the ``-shm`` is missing (it is then created, and left); without that access it raises
      a :exc:`sqlite3.OperationalError` that names what is missing.

    JSONL stores: a verify reads the anchor file before the entries, and a writer replaces
    the anchor only after its batch is synced, so a writer in another process appending
    meanwhile only makes the file longer than the anchor says: its batch reads as entries
    past the anchor and at most one torn line, and the store as intact. (A sink *opening*
    the store meanwhile cuts a torn tail off before it appends: a verify reading that tail
    at that instant can see its bytes run on into the new ones, a line that is no entry,
    and report it. Verify again; a second read sees the new lines whole.)
    """
    return check_sink(path).bad
