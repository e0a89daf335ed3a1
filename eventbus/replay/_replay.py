"""Publishing a session log back into a bus."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import anyio
import anyio.lowlevel
import msgspec
from anyio import WouldBlock

from .._bus import EventBus
from .._envelope import Envelope

__all__ = ["replay"]

_BUDGET: Final = 64  # envelopes published between two checkpoints, as apublish does

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
        or pass ``keep_seq=False``); and, when it gets there, at the first envelope whose
        ``seq`` is not greater than the previous one's (envelopes before it were published).
    :raises anyio.ClosedResourceError: if the bus closes.

    Backpressure: when a ``block`` subscription is full it waits for room, like
    :meth:`EventBus.apublish`, so a lossless consumer of the replay bus (a recorder, a
    lossless audit trail) sees every envelope. It yields to the scheduler at least once every
    64 envelopes. Cancel safety: if cancelled, the envelopes published so far stay published
    and no envelope is published twice.
    """
    iterator = iter(log)
    first = next(iterator, None)
    if first is None:
        return 0
    if keep_seq:
        last = bus.statistics().published
        if first.seq <= last:
            raise ValueError(
                f"the bus has already published seq {last} and the log starts at seq "
                f"{first.seq}: replay into a fresh bus, or pass keep_seq=False to renumber"
            )
    count = 0
    budget = _BUDGET
    envelope: Envelope[Any] | None = first
    while envelope is not None:
        copy = _replace(envelope, replayed=True)
        budget -= 1
        if budget <= 0:
            budget = _BUDGET
            await anyio.lowlevel.checkpoint()
        while True:
            try:
                bus.publish_envelope(copy, keep_seq=keep_seq)
                break
            except WouldBlock:
                await _wait_for_space(bus)
                budget = _BUDGET
        count += 1
        envelope = next(iterator, None)
    return count


async def _wait_for_space(bus: EventBus[Any]) -> None:
    # The bus wakes this event when a ``block`` subscription frees a slot or closes (the
    # mechanism ``apublish`` uses; a public ``apublish_envelope`` would replace this).
    space = bus._space
    if space is None:
        space = bus._space = anyio.Event()
    await space.wait()
