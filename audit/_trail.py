"""The ring-buffered, hash-chained :class:`AuditTrail`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Final

from eventbus._bus import _check_positive_int

from ._actions import AuditAction, EventsDropped
from ._entry import GENESIS_HASH, AuditEntry, _digest, check_chain, verify_chain

if TYPE_CHECKING:
    from .sinks import AuditSink

__all__ = ["AuditTrail", "TrailStatistics"]

#: The oxios default capacity.
DEFAULT_CAPACITY: Final = 100_000
#: ``kind`` of the entries that stand for a gap.
DROPPED_KIND: Final = "audit:events_dropped"

_time_ns = time.time_ns


@dataclass(frozen=True, slots=True)
class TrailStatistics:
    """A point-in-time view of an :class:`AuditTrail`, returned by its ``statistics()``.

    Attributes:
        appended: Entries appended since the trail was created (restored ones excluded).
        evicted: Entries pushed out of the ring by newer ones.
        dropped: Events the audit consumer lost, the sum of the trail's ``EventsDropped``
            counts (evicted ones included).
        unmapped: Entries for events no mapping function covered (recorded as
            ``Other(detail=kind)``).
        restored: Entries loaded from a sink by :meth:`AuditTrail.restore`.
        capacity: The most entries the trail holds.
        length: The entries it holds now.
    """

    appended: int
    evicted: int
    dropped: int
    unmapped: int
    restored: int
    capacity: int
    length: int


class AuditTrail:
    """A bounded, append-only, queryable record of audit entries, oldest first.

    :param capacity: the most entries kept (default 100,000, as in oxios). Appending to a full
        trail evicts the oldest entry in O(1).
    :param hash_chain: give each entry a SHA-256 ``hash`` chained through ``prev_hash``
        (default ``True``; costs one hash of the entry per append).
    :raises ValueError: if ``capacity`` is < 1.
    :raises TypeError: if ``capacity`` is not an int.

    ``seq`` is trail-wide: it starts at 1, grows by one per entry and is never reused, also
    after eviction; :meth:`restore` continues it from a sink. When the head of the chain is
    evicted, the trail keeps an anchor (the ``seq`` and ``hash`` of the newest evicted entry)
    so :meth:`verify` still checks the window it holds.

    A trail is not thread-safe: append and read it from one event loop (the audit consumer
    does). It has no lock and never awaits.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, hash_chain: bool = True) -> None:
        self._capacity = _check_positive_int("capacity", capacity)
        self._chain = bool(hash_chain)
        self._entries: deque[AuditEntry] = deque(maxlen=self._capacity)
        self._seq = 0
        self._base_seq = 0  # last seq restored from a sink
        self._prev = GENESIS_HASH if self._chain else ""
        self._anchor: tuple[int, str] = (0, self._prev)
        self._evicted = 0
        self._dropped = 0
        self._unmapped = 0
        self._restored = 0

    def __repr__(self) -> str:
        return (
            f"<AuditTrail entries={len(self._entries)}/{self._capacity} last_seq={self._seq} "
            f"hash_chain={self._chain}>"
        )

    @property
    def capacity(self) -> int:
        """The most entries the trail holds."""
        return self._capacity

    @property
    def hash_chain(self) -> bool:
        """Whether entries carry a chained hash."""
        return self._chain

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest entry ever appended (0 for a new trail)."""
        return self._seq

    @property
    def anchor(self) -> tuple[int, str]:
        """``(seq, hash)`` of the entry just before the oldest held one.

        ``(0, GENESIS_HASH)`` while nothing was evicted (``(0, "")`` without a hash chain).
        """
        return self._anchor

    # -- appending ---------------------------------------------------------------------------

    def append(
        self,
        actor: str,
        action: AuditAction,
        resource: str = "",
        *,
        ts_ns: int | None = None,
        kind: str = "",
        event_seq: int | None = None,
        event_id: str | None = None,
        category: str | None = None,
        primitive: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> AuditEntry:
        """Append an entry written by hand (the audit consumer appends the bus's events).

        :param ts_ns: when it happened (default: now).
        :returns: the entry, with its ``seq``, ``recorded_ns`` and hashes filled in.

        The caller is responsible for what ``resource`` contains: it is stored as given,
        without redaction or bounding (see :meth:`AuditMapper.resource
        <audit.AuditMapper.resource>`).
        """
        return self._append(
            _time_ns() if ts_ns is None else ts_ns,
            actor,
            action,
            resource,
            event_seq,
            event_id,
            kind,
            category,
            primitive,
            correlation_id,
            causation_id,
        )

    def _append(
        self,
        ts_ns: int,
        actor: str,
        action: AuditAction,
        resource: str,
        event_seq: int | None,
        event_id: str | None,
        kind: str,
        category: str | None,
        primitive: str | None,
        correlation_id: str | None,
        causation_id: str | None,
        recorded_ns: int | None = None,
    ) -> AuditEntry:
        seq = self._seq + 1
        if recorded_ns is None:
            recorded_ns = _time_ns()
        prev = self._prev
        if self._chain:
            digest = self._prev = _digest(
                seq,
                ts_ns,
                recorded_ns,
                actor,
                action,
                resource,
                event_seq,
                event_id,
                kind,
                category,
                primitive,
                correlation_id,
                causation_id,
                prev,
            )
        else:
            digest = ""
        entry = AuditEntry(
            seq,
            ts_ns,
            recorded_ns,
            actor,
            action,
            resource,
            event_seq,
            event_id,
            kind,
            category,
            primitive,
            correlation_id,
            causation_id,
            prev,
            digest,
        )
        entries = self._entries
        if len(entries) == self._capacity:
            oldest = entries[0]  # evicted by the append below
            self._anchor = (oldest.seq, oldest.hash)
            self._evicted += 1
        entries.append(entry)
        self._seq = seq
        if type(action) is EventsDropped:
            self._dropped += action.count
        return entry

    def _append_gap(self, ts_ns: int, count: int, first_seq: int, last_seq: int) -> AuditEntry:
        """Append the entry of ``count`` envelopes lost with bus seq ``first_seq..last_seq``."""
        return self._append(
            ts_ns,
            "system",
            EventsDropped(count=count, first_seq=first_seq, last_seq=last_seq),
            "",
            None,
            None,
            DROPPED_KIND,
            None,
            None,
            None,
            None,
        )

    # -- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[AuditEntry]:
        """Iterate over a snapshot of the entries, oldest first (appends do not disturb it)."""
        return iter(tuple(self._entries))

    def entries(self) -> list[AuditEntry]:
        """A list snapshot of the entries held, oldest first."""
        return list(self._entries)

    def last(self, n: int) -> list[AuditEntry]:
        """The newest ``n`` entries (fewer if the trail holds fewer), oldest first.

        :raises ValueError: if ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        newest = list(islice(reversed(self._entries), n))
        newest.reverse()
        return newest

    def query(
        self,
        *,
        actor: str | None = None,
        action: type[AuditAction] | tuple[type[AuditAction], ...] | None = None,
        kind: str | None = None,
        category: str | None = None,
        since_seq: int | None = None,
        correlation_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[AuditEntry]:
        """The entries held that match every given filter, oldest first.

        :param actor: exactly this actor.
        :param action: an action class (or a tuple of them): entries whose action is one.
        :param kind: exactly this event kind.
        :param category: exactly this category label (``"syscall"``, ``"mm"``, ...).
        :param since_seq: entries with ``seq >= since_seq`` (found by index, not by scan).
        :param correlation_id: exactly this correlation id.
        :param since_ns: entries whose event happened at or after this time (``ts_ns``).
        :param until_ns: entries whose event happened before this time.

        Runs in time linear in the entries after ``since_seq``; it is a scan, not an index.
        """
        entries = self._entries
        start = 0
        if since_seq is not None and entries:
            start = max(0, since_seq - entries[0].seq)
            if start >= len(entries):
                return []
        source = islice(entries, start, None) if start else iter(tuple(entries))
        result = []
        for e in source:
            if (
                (actor is None or e.actor == actor)
                and (action is None or isinstance(e.action, action))
                and (kind is None or e.kind == kind)
                and (category is None or e.category == category)
                and (correlation_id is None or e.correlation_id == correlation_id)
                and (since_ns is None or e.ts_ns >= since_ns)
                and (until_ns is None or e.ts_ns < until_ns)
            ):
                result.append(e)
        return result

    def statistics(self) -> TrailStatistics:
        """Return a frozen snapshot of the trail's counters (see :class:`TrailStatistics`)."""
        return TrailStatistics(
            appended=self._seq - self._base_seq,
            evicted=self._evicted,
            dropped=self._dropped,
            unmapped=self._unmapped,
            restored=self._restored,
            capacity=self._capacity,
            length=len(self._entries),
        )

    def verify(self) -> int | None:
        """Check the entries held against the hash chain and the anchor.

        :returns: ``None`` if intact, else the first ``seq`` at which the chain breaks: the
            seq of an altered entry, the missing seq where an entry was removed, the expected
            seq where two were swapped (see :func:`~audit.verify_chain`), or the seq after the
            newest entry if entries were cut from the end. Without a hash chain only ``seq``
            order is checked.
        """
        bad, newest = check_chain(self._entries, self._anchor, self._chain)
        if bad is not None:
            return bad
        # The trail also knows its own head: an entry cut from the end is caught too.
        if newest is None:
            return None if self._seq == self._anchor[0] else self._anchor[0] + 1
        if newest.seq != self._seq:
            return newest.seq + 1
        if self._chain and newest.hash != self._prev:
            return newest.seq
        return None

    # -- restoring ---------------------------------------------------------------------------

    def restore(self, sink: AuditSink) -> int:
        """Reload the newest ``capacity`` entries from ``sink`` and continue its seq and chain.

        Call it at startup, before entries are written to the sink (the audit consumer does
        this with ``resume=True``). Entries already appended to this trail are not lost: they
        are renumbered after the restored ones and re-chained.

        It reads the sink synchronously (blocking I/O); from async code prefer
        ``attach_audit_trail(..., resume=True)``, which reads in a worker thread.

        :returns: the number of entries restored.
        :raises ValueError: if the sink's entries do not form an intact chain (a store
            tampered with or torn in the middle; see :func:`~audit.sinks.verify_sink`), were
            written with the other ``hash_chain`` setting, or if this trail has already
            evicted entries, been restored, or holds entries the sink holds too (it was
            attached to that store before: it continues it without a restore).
        :raises anyio.ClosedResourceError: if the sink is closed (nothing is restored); the
            sink's other read errors propagate too.
        """
        self._restore_entries(sink.load_tail(self._capacity))
        return self._restored

    def _continuation(self, newest: AuditEntry) -> list[AuditEntry] | None:
        """What this trail appended after a store's ``newest`` entry, oldest first (``[]`` if
        it ends there too), or ``None`` if the trail does not continue that store: it holds
        another entry at that seq, has evicted the entries after it, or has not reached it.

        The trail continues the store when it holds ``newest`` itself (the same entry, at the
        same seq), or, with a hash chain, when ``newest`` is the entry it last evicted (its
        anchor): every entry it holds then chains onto the store.
        """
        entries = self._entries
        if not entries:  # (a new trail: a trail holds its newest entry once it has one)
            return None
        offset = newest.seq - entries[0].seq
        if offset >= 0:
            if offset < len(entries) and entries[offset] == newest:
                return list(islice(entries, offset + 1, None))
            return None
        if offset == -1 and self._chain and self._anchor == (newest.seq, newest.hash):
            return list(entries)
        return None

    def _restore_entries(self, loaded: list[AuditEntry]) -> list[AuditEntry]:
        """Put ``loaded`` (oldest first) before the entries held; return those, renumbered."""
        if self._evicted or self._restored:
            raise ValueError("restore needs a trail that has not evicted entries or restored")
        if not loaded:
            return []
        if self._entries:
            # Entries the store holds too (a trail attached to it before): re-appending
            # them after the store's own would record every one of them twice.
            held = self._entries[0]
            offset = held.seq - loaded[0].seq
            if 0 <= offset < len(loaded) and loaded[offset] == held:
                raise ValueError(
                    f"this trail already holds the sink's entries from seq {held.seq}: "
                    "restoring would record them twice; attach it without resume=True (it "
                    "then writes the store the entries it lacks), or restore a new trail"
                )
        chained = bool(loaded[0].hash)
        bad = verify_chain(loaded, chained=chained)
        if bad is not None:
            raise ValueError(f"the sink's entries are not an intact chain: first bad seq {bad}")
        if chained != self._chain:
            raise ValueError(
                f"the sink's entries were written with hash_chain={chained}, "
                f"this trail has hash_chain={self._chain}"
            )
        pending = list(self._entries)
        last = loaded[-1]
        self._entries.clear()
        self._anchor = (loaded[0].seq - 1, loaded[0].prev_hash)
        self._seq = self._base_seq = last.seq
        self._prev = last.hash
        self._restored = len(loaded)
        for entry in loaded:
            if len(self._entries) == self._capacity:
                oldest = self._entries[0]
                self._anchor = (oldest.seq, oldest.hash)
                self._evicted += 1
            self._entries.append(entry)
        # Re-appending the pending entries counts their EventsDropped again.
        self._dropped = sum(e.action.count for e in loaded if type(e.action) is EventsDropped)
        return [
            self._append(
                e.ts_ns,
                e.actor,
                e.action,
                e.resource,
                e.event_seq,
                e.event_id,
                e.kind,
                e.category,
                e.primitive,
                e.correlation_id,
                e.causation_id,
                e.recorded_ns,
            )
            for e in pending
        ]
