"""An in-process broadcast event bus for async agent supervisors, on anyio (asyncio and trio).

Every event published on an :class:`EventBus` is stamped once into an :class:`Envelope` and
enqueued into every matching :class:`Subscription`. Each subscription has its **own bounded
queue** and its own overflow policy, so one slow consumer never slows the publisher or the
other consumers, and every envelope it loses is counted.

.. code-block:: python

    async with EventBus() as bus:
        with bus.subscribe(name="printer") as sub:
            bus.publish(AgentStarted(id=agent_id))   # synchronous, never blocks
            envelope = await sub.receive()
            print(envelope.seq, envelope.kind, envelope.event)

``publish`` is synchronous and never awaits: it stamps ``seq`` (bus-wide, from 1, no gaps),
``event_id``, ``ts_ns`` and ``kind``, then appends the envelope to each matching queue. It
runs no consumer code: consumers are tasks that ``receive``, never callbacks, so a consumer
may publish from inside its own loop without recursion or deadlock. A subscription sees only
events published after ``subscribe`` returned.

Lagging
-------
When a subscription's queue is full, its overflow policy decides, *at publish time*:

* ``"drop_oldest"`` (default): the oldest buffered envelope is evicted;
* ``"drop_newest"``: the new envelope is not queued for that subscription.

Either way the subscription's ``lagged`` count grows by one at once, so a stuck consumer's
losses are visible in :meth:`Subscription.statistics` immediately (tokio only reports lag when
the receiver next receives). Lag is logged through structlog once per burst, never once per
event: ``subscription_lagged`` at the first loss since the consumer last received, and
``subscription_lag_recovered`` (with the number lost in the burst) when it receives again.
Events removed by a subscription's ``kinds`` or ``where`` filter are not lag.

For every open subscription, at every moment::

    matched since subscribe == delivered + lagged + buffered

Handling lag is the consumer's choice: compare ``envelope.seq`` with the last one seen, or read
``statistics().lagged``.

Backpressure
------------
``overflow="block"`` makes a subscription lossless. Because ``publish`` never waits, it raises
:exc:`anyio.WouldBlock` when any matching ``block`` subscription is full, *before* enqueuing
anywhere (all or nothing; no ``seq`` is consumed). ``await bus.apublish(event)`` waits until
every matching ``block`` subscription has room, then stamps and enqueues to all at once.

Closing
-------
``bus.close()`` is synchronous and idempotent; ``async with EventBus() as bus`` calls it on
exit. Publishing or subscribing afterwards raises :exc:`anyio.ClosedResourceError`, and so do
``apublish`` calls waiting for room. Each subscription first yields what it still holds, then
raises :exc:`anyio.EndOfStream`, so ``async for`` loops end cleanly. Closing a subscription
(``close()``, ``aclose()``, leaving ``with``) unsubscribes it and frees its queue at once;
receiving from it afterwards raises :exc:`anyio.ClosedResourceError`.

Cancel safety
-------------
A cancelled ``receive()`` takes nothing: the envelope it would have returned is returned by the
next receive, never lost and never delivered twice. A cancelled ``apublish()`` published
nothing. ``receive()`` is deliberately *not* a checkpoint on every call: when envelopes are
ready it takes one without touching the event loop, and it yields to the scheduler (and
delivers cancellation) at least once every 64 ready envelopes and whenever it has to wait.

Threads
-------
A bus belongs to the event loop it is first used in (first ``publish``, ``subscribe`` or
``async with``) and to that loop's thread. From any other thread call
:meth:`EventBus.publish_threadsafe`, which hands the publish to the loop and returns the
envelope; plain ``publish`` from a foreign thread raises :exc:`RuntimeError`. When the loop has
stopped or closed, ``publish_threadsafe`` from another thread raises
:exc:`anyio.RunFinishedError` instead of hanging. On the loop's own thread both are a plain
``publish``, which does not check the loop: after the run ended there, the envelope goes to
subscriptions nobody can receive from any more (close the bus when its loop ends).

Trio running as a guest of an asyncio loop (``trio.lowlevel.start_guest_run``) shares that
loop's thread: a bus first used by its trio tasks belongs to trio, and they wait on it as trio
tasks (the backend is told the way anyio tells it, by asking trio first). Use one bus per side
rather than one shared by asyncio and trio tasks.

Causation
---------
Inside ``with bus.caused_by(envelope):`` a publish that does not give ids gets
``causation_id = envelope.event_id`` and ``correlation_id = envelope.correlation_id or
envelope.event_id``. A subscription created with ``track_causation=True`` opens that scope for
the envelope its consumer last received.

Errors
------
The bus reuses anyio's exceptions: :exc:`anyio.ClosedResourceError`, :exc:`anyio.EndOfStream`,
:exc:`anyio.WouldBlock`, :exc:`anyio.RunFinishedError`; bad arguments raise :exc:`ValueError`
or :exc:`TypeError`.
"""

from ._bus import (
    BusStatistics,
    EventBus,
    OverflowPolicy,
    Subscription,
    SubscriptionStatistics,
)
from ._envelope import Envelope
from .events import AnyKernelEvent, Category, KernelEvent, Primitive, category_for_kind

__all__ = [
    "AnyKernelEvent",
    "BusStatistics",
    "Category",
    "Envelope",
    "EventBus",
    "KernelEvent",
    "OverflowPolicy",
    "Primitive",
    "Subscription",
    "SubscriptionStatistics",
    "category_for_kind",
]
