"""The sink protocol and what the sinks share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol, runtime_checkable

import msgspec

from .._actions import AuditAction
from .._entry import AuditEntry, check_chain

__all__ = ["AuditSink"]

# Entries on disk: one compact JSON object per entry (JSONL), actions as tagged objects (SQLite).
encode_entry: Final = msgspec.json.Encoder().encode
decode_entry: Final = msgspec.json.Decoder(AuditEntry).decode
encode_action: Final = msgspec.json.Encoder().encode
decode_action: Final = msgspec.json.Decoder(AuditAction).decode


@runtime_checkable
class AuditSink(Protocol):
    """Durable storage for audit entries, written by the audit consumer from a worker thread.

    Implementations must be safe to call from any one thread at a time (the consumer calls
    them through ``anyio.to_thread.run_sync``, never two at once).
    """

    def write(self, entries: Sequence[AuditEntry]) -> None:
        """Store ``entries`` (consecutive seqs, oldest first) durably, all or nothing.

        Blocking. When it returns, the batch survives a crash. When it raises, what was
        committed before is intact, and the sink refuses further writes
        (:exc:`anyio.BrokenResourceError`): a failed store is never retried blindly.
        """

    def load_tail(self, n: int) -> list[AuditEntry]:
        """The newest ``n`` committed entries, oldest first (blocking)."""

    def close(self) -> None:
        """Release the store; idempotent."""


def check_store(
    entries: Iterable[AuditEntry],
    *,
    first: tuple[int, str] | None,
    last: tuple[int, str] | None,
) -> tuple[int | None, AuditEntry | None]:
    """Verify a store's entries (oldest first) against its own anchor.

    :param first: ``(first_seq, prev_hash of the first entry)`` from the store's anchor, or
        ``None`` to take the first entry's place on trust.
    :param last: ``(last_seq, last_hash)`` the store acknowledged, or ``None`` to skip the
        tail check.
    :returns: ``(bad, newest)``: the first bad seq (``newest.seq + 1`` for a store cut short)
        or ``None``, and the newest entry checked.
    """
    anchor = None if first is None else (first[0] - 1, first[1])
    chained = None if first is None else bool(first[1])
    bad, newest = check_chain(entries, anchor, chained)
    if bad is not None or last is None:
        return bad, newest
    if newest is None:
        return (None if last[0] == 0 else (first[0] if first else 1)), None
    if newest.seq < last[0]:
        return newest.seq + 1, newest
    if newest.seq == last[0] and newest.hash != last[1]:
        return newest.seq, newest
    # Entries past the anchor (newest.seq > last_seq) were written but their batch was not
    # acknowledged (a crash between the data and the anchor): they chain, so they stand.
    return None, newest
