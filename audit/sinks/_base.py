"""The sink protocol and what the sinks share."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import msgspec
from anyio import BrokenResourceError, ClosedResourceError

from .._actions import AuditAction
from .._entry import AuditEntry, check_chain

__all__ = ["AuditSink"]

# Entries on disk: one compact JSON object per entry (JSONL), actions as tagged objects
# (SQLite), the JSONL anchor file. One encoder serves them all (msgspec's are thread-safe).
encode_json: Final = msgspec.json.Encoder().encode
decode_entry: Final = msgspec.json.Decoder(AuditEntry).decode
decode_action: Final = msgspec.json.Decoder(AuditAction).decode


@runtime_checkable
class AuditSink(Protocol):
    """Durable storage for audit entries, written by the audit consumer from a worker thread.

    Implementations must be safe to call from any one thread at a time (the consumer calls
    them through ``anyio.to_thread.run_sync``, never two at once).

    Lifecycle, the contract every sink of :mod:`audit.sinks` keeps and a custom one should:

    - A sink is open from its construction until :meth:`close`. :meth:`close` is idempotent:
      the first call releases the store (it may raise the store's error doing so, and the
      sink is closed all the same); later calls do nothing and raise nothing.
    - After :meth:`close`, :meth:`write` (even of an empty batch) and :meth:`load_tail` raise
      :exc:`anyio.ClosedResourceError` and touch nothing; what was committed stays committed.
    - A failed :meth:`write` breaks the sink: later writes (even of an empty batch) raise
      :exc:`anyio.BrokenResourceError`, while :meth:`load_tail` still reads what was
      committed. A sink both broken and closed reports it is closed.
    - A bad argument raises :exc:`ValueError` whatever the sink's state.

    The audit consumer never closes a sink it was given: close it after the consumer's
    block has exited, or its last writes fail with :exc:`anyio.ClosedResourceError`.
    """

    def write(self, entries: Sequence[AuditEntry]) -> None:
        """Store ``entries`` (consecutive seqs, oldest first) durably, all or nothing.

        Blocking. When it returns, the batch survives a crash. When it raises, what was
        committed before is intact, and the sink refuses further writes
        (:exc:`anyio.BrokenResourceError`): a failed store is never retried blindly.

        :raises anyio.ClosedResourceError: if the sink is closed.
        :raises anyio.BrokenResourceError: if an earlier write failed.
        """

    def load_tail(self, n: int) -> list[AuditEntry]:
        """The newest ``n`` committed entries, oldest first (blocking).

        :raises ValueError: if ``n`` is negative.
        :raises anyio.ClosedResourceError: if the sink is closed.
        """

    def close(self) -> None:
        """Release the store; idempotent (a second call does nothing and raises nothing).

        The sink is closed once it returns or raises.
        """


class StoreAnchor(msgspec.Struct, frozen=True):
    """What a store acknowledged: its first entry's place and its last committed entry.

    ``first_seq`` and ``first_prev_hash`` (``""`` without a hash chain) say where the store
    starts; ``last_seq`` and ``last_hash`` are advanced with each committed batch.
    """

    first_seq: int
    first_prev_hash: str
    last_seq: int
    last_hash: str


class FileSink:
    """The state both sinks keep: their file, a lock, whether closed or broken.

    Every method that reaches the store takes the lock, so :meth:`close` waits for a call
    in progress in another thread and no call starts on a released store.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        self._failed: BaseException | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else " failed" if self._failed else ""
        return f"<{type(self).__name__} {self._path!r}{state}>"

    def _closed_error(self) -> ClosedResourceError:
        return ClosedResourceError(f"the sink at {self._path!r} is closed")

    def _check_open(self) -> None:
        """Refuse any use of a closed sink (hold the lock)."""
        if self._closed:
            raise self._closed_error()

    def _check_usable(self) -> None:
        """Refuse a write to a closed sink, or to one a write failed on (hold the lock)."""
        if self._closed:
            raise self._closed_error()
        if self._failed is not None:
            raise BrokenResourceError(
                f"the sink at {self._path!r} failed earlier and accepts no more writes"
            ) from self._failed

    def _refuse_empty_write(self) -> None:
        """What :meth:`write` does with an empty batch: nothing, unless closed or broken."""
        with self._lock:
            self._check_usable()


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """What verifying a store found, all in the one read that verified it.

    Attributes:
        bad: ``None`` if the store is intact, else its first bad seq (see
            :func:`~audit.sinks.verify_sink`).
        entries: The entries an intact store holds (0 for a store that is not).
        first_seq: The seq of the first of them (``None`` for none).
        last_seq: The seq of the last of them (``None`` for none).
        torn_tail: The size in bytes of a torn final line (no newline) that follows the
            last entry the store acknowledged, in an intact JSONL store (0 otherwise): a
            write cut short or one in progress, never acknowledged, so neither verified
            nor counted in ``entries``.
    """

    bad: int | None
    entries: int
    first_seq: int | None
    last_seq: int | None
    torn_tail: int = 0

    @classmethod
    def bad_at(cls, seq: int) -> StoreCheck:
        """A store that is not intact, from ``seq`` on."""
        return cls(seq, 0, None, None)


def check_store(
    entries: Iterable[AuditEntry], anchor: StoreAnchor | None
) -> tuple[int | None, AuditEntry | None]:
    """Verify a store's entries (oldest first) against its own anchor.

    :param anchor: the store's anchor, or ``None`` (nothing acknowledged) to take the first
        entry's place on trust and skip the tail check.
    :returns: ``(bad, newest)``: the first bad seq (``newest.seq + 1`` for a store cut short)
        or ``None``, and the newest entry checked.
    """
    if anchor is None:
        return check_chain(entries, None, None)
    start = (anchor.first_seq - 1, anchor.first_prev_hash)
    bad, newest = check_chain(entries, start, bool(anchor.first_prev_hash))
    if bad is not None:
        return bad, newest
    return check_end(None if newest is None else (newest.seq, newest.hash), anchor), newest


def check_end(newest: tuple[int, str] | None, anchor: StoreAnchor) -> int | None:
    """Whether a store whose newest entry has ``(seq, hash)`` ends where its anchor says:
    ``None``, or the first bad seq (the newest entry's if it is not the one acknowledged,
    the one after it if the anchor acknowledged more, the anchor's first seq if the store
    holds no entry)."""
    if newest is None:
        return None if anchor.last_seq == 0 else anchor.first_seq
    seq, hash_ = newest
    if seq < anchor.last_seq:
        return seq + 1
    if seq == anchor.last_seq and hash_ != anchor.last_hash:
        return seq
    # Entries past the anchor (newest.seq > last_seq) were written but their batch was not
    # acknowledged (a crash between the data and the anchor): they chain, so they stand.
    return None


def refuse_a_damaged_end(path: str, newest: tuple[int, str] | None, anchor: StoreAnchor) -> None:
    """What a sink does on opening a store: refuse it if its newest entry, ``(seq, hash)``
    or ``None``, is not where its anchor says the store ends. Writing to it would advance
    the anchor past the damage, the only evidence of a cut tail or of a newest entry
    replaced with a recomputed hash.

    :raises ValueError: naming the store, the damage and the seq :func:`verify_sink` reports.
    """
    bad = check_end(newest, anchor)
    if bad is None:
        return
    if newest is not None and newest[0] == anchor.last_seq:
        what = (
            f"the newest entry of the store at {path}, seq {newest[0]}, is not the one its "
            "anchor acknowledged: it was altered"
        )
    else:
        ends = "holds no entry" if newest is None else f"ends at seq {newest[0]}"
        what = (
            f"the store at {path} {ends}, but its anchor says it committed entries up to "
            f"seq {anchor.last_seq}: entries were cut from its end"
        )
    raise ValueError(
        f"{what}: the sink will not write over that evidence (verify_sink reports seq {bad}): "
        f"keep the store at {path}, and write to a new one"
    )
