"""The envelope every published event travels in."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

__all__ = ["Envelope"]

T_co = TypeVar("T_co", covariant=True)


class Envelope(msgspec.Struct, Generic[T_co], frozen=True, gc=False):
    """One published event, stamped once by :meth:`EventBus.publish <eventbus.EventBus.publish>`.

    The bus builds exactly one envelope per publish and enqueues that same object into every
    matching subscription, so subscribers can compare envelopes by identity or by ``seq``.

    Fields:

    ``seq``
        Bus-wide sequence number: starts at 1, strictly increasing, no gaps. A refused publish
        (closed bus, :exc:`anyio.WouldBlock`) consumes no number.
    ``event_id``
        Unique, time-ordered text id: the bus's id (its creation time in milliseconds as 12 hex
        digits, then 64 random bits as 16, then ``-``) followed by ``seq`` as 14 fixed-width
        hex digits. Ids of one bus sort in publish order, ids of different buses never collide
        in practice, and ids sort by bus creation time first. It is *not* a UUID: building a
        UUID per event would cost more than the rest of ``publish``.
    ``ts_ns``
        Wall-clock time of the publish, from :func:`time.time_ns`.
    ``kind``
        The event's tag (``event_type`` on the wire); for an untagged struct, its class name.
    ``event``
        The event itself, not copied.
    ``correlation_id``, ``causation_id``
        Optional ids that tie events into a causal tree; see :meth:`EventBus.caused_by
        <eventbus.EventBus.caused_by>`.
    ``origin``
        The node id of the process that first published the event, when it crossed a process
        boundary (bridges set it); ``None`` for local events.
    ``replayed``
        ``True`` when the envelope was republished from a session log rather than live.

    Envelopes are immutable, and hashable when their event is (an event holding a list or a
    dict, such as tool arguments, is not); they are deliberately excluded from the cyclic
    garbage collector (``gc=False``), so an event must not hold a reference back to its own
    envelope.
    """

    seq: int
    event_id: str
    ts_ns: int
    kind: str
    event: T_co
    correlation_id: str | None = None
    causation_id: str | None = None
    origin: str | None = None
    replayed: bool = False
