"""Publishing a session log back into a bus."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import Any

import msgspec

from .._bus import EventBus
from .._envelope import Envelope

__all__ = ["replay"]

_replace = msgspec.structs.replace


async def replay(
    log: Iterable[Envelope[Any]], bus: EventBus[Any], *, keep_seq: bool = True
) -> int:
    """Publish a log's envelopes into ``bus``, in order, as they were recorded.

    Each envelope is published with :meth:`EventBus.publish_envelope` as a copy with
    ``replayed=True``; everything else is the recorded envelope's: ``event_id``, ``ts_ns``,
    ``kind``, ``correlation_id``, ``causation_id``, ``origin`` and the event itself. With
    ``keep_seq`` (default) the ``seq`` is kept too (``publish_envelope(..., keep_seq=True)``
    moves the bus's sequence to it), so a subscriber cannot tell the replay from the live
    run except by ``envelope.replayed``. A lossy log's gaps stay gaps in ``seq``.

    :param log: a :class:`SessionLog` from :func:`read_log`, or any iterable of envelopes.
    :param bus: the bus to publish into.
    :param keep_seq: keep the recorded ``seq`` (default). With ``False`` the bus numbers the
        envelopes itself (from its next ``seq``), which replays into a bus that has already
        published, or a log whose ``seq`` restarts (a file appended to by several runs).
    :returns: the number of envelopes published.
    :raises ValueError: with ``keep_seq``, *before anything is published*, if the bus has
        already handed out a ``seq`` at or past the log's first one (replay into a fresh bus,
        or pass ``keep_seq=False``) or the log starts below seq 1 (no bus numbers so); and,
        when it gets there, at the first envelope whose ``seq`` is not greater than the
        previous one's (envelopes before it were published).
    :raises anyio.ClosedResourceError: if the bus closes.

    Backpressure: each envelope goes through :meth:`EventBus.apublish_envelope`, so when a
    ``block`` subscription is full it waits for room, like :meth:`EventBus.apublish`, and a
    lossless consumer of the replay bus (a recorder, a lossless audit trail) sees every
    envelope. It yields to the scheduler at least once every 64 envelopes. Cancel safety: if
    cancelled, the envelopes published so far stay published and no envelope is published
    twice.
    """
    iterator = iter(log)
    first = next(iterator, None)
    if first is None:
        return 0
    if keep_seq:
        if first.seq < 1:
            raise ValueError(
                f"the log starts at seq {first.seq}, and a bus numbers its envelopes from 1: "
                "pass keep_seq=False to renumber"
            )
        last = bus.statistics().published
        if first.seq <= last:
            raise ValueError(
                f"the bus has already published seq {last} and the log starts at seq "
                f"{first.seq}: replay into a fresh bus, or pass keep_seq=False to renumber"
            )
    count = 0
    for envelope in chain((first,), iterator):
        await bus.apublish_envelope(_replace(envelope, replayed=True), keep_seq=keep_seq)
        count += 1
    return count
