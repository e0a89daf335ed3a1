"""One adapter per measured system, each written the way that system is meant to be used.

An adapter is built inside the trial's running event loop with the subscriber capacity (the
same for every bounded system). It has one of two styles:

* ``"iter"``: ``subscribe()`` returns an async iterable a consumer task reads with ``async for``
  (the floors, this bus, ``asyncio.Queue`` and anyio stream fan-out, aiopubsub);
* ``"callback"``: ``add_handler(fn)`` registers a coroutine function ``fn(*args, **kwargs)``
  the system calls per event (pyee, blinker, bubus): these have no consumer task of their own.

Publishing is ``publish(event)`` when the system has a synchronous publish, else
``await apublish(event)``. ``after_batch()`` is what the publisher awaits between bursts
(a bare ``sleep(0)`` unless the system needs more), ``end()`` makes iterating consumers stop
and waits until callback systems are done, ``settle()`` waits until no delivery is pending.
``lag_of(handle)`` returns the number of events a subscription lost, or ``None`` when the
system does not count loss.

The peers' fan-out is the most generous idiomatic form: ``put_nowait``/``send_nowait`` and only
on a full queue the awaiting call, so they pay the event loop only when they must block.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from .events import BenchEvent
from .floors import DequeFloor, RingFloor

Handler = Callable[..., Awaitable[None]]

_END = object()  # end-of-stream sentinel for the queue-based peers


class System:
    """Base adapter; see the module docstring."""

    name: ClassVar[str]
    label: ClassVar[str]
    style: ClassVar[str] = "iter"
    #: Python package that must be importable for this system (None: always available).
    requires: ClassVar[str | None] = None
    #: Fraction of each workload's event count this system runs; slow peers run fewer events
    #: so the whole harness stays within its time budget (rates are per event, so comparable).
    scale: ClassVar[float] = 1.0
    #: At most this many deliveries (events x subscribers) per trial, for the slowest peers.
    max_deliveries: ClassVar[int | None] = None
    #: Workload F skips this system above this many subscriptions, for ``f_skip_reason``.
    f_max_subscribers: ClassVar[int | None] = None
    f_skip_reason: ClassVar[str] = ""
    publish: Callable[[Any], Any] | None = None

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity

    @classmethod
    def missing(cls) -> str | None:
        """Why this system cannot run here, or ``None`` when it can."""
        if cls.requires is None or importlib.util.find_spec(cls.requires) is not None:
            return None
        return f"{cls.requires} is not installed (pip install -e '.[bench]')"

    def subscribe(self) -> Any:
        raise NotImplementedError

    def add_handler(self, fn: Handler) -> Any:
        raise NotImplementedError

    async def apublish(self, event: Any) -> None:
        raise NotImplementedError

    async def after_batch(self) -> None:
        await asyncio.sleep(0)

    async def end(self) -> None:
        raise NotImplementedError

    async def settle(self) -> None:
        await asyncio.sleep(0)

    async def close(self) -> None:
        """Release what the system runs in the background; every trial ends with it."""

    def lag_of(self, handle: Any) -> int | None:
        return None


# -- the floors and this bus ------------------------------------------------------------------


class BusSystem(System):
    """A system whose bus object has a synchronous ``publish``, ``subscribe()`` and ``close()``
    (the floors, this bus, and the profiling scripts' variants)."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.bus = self.make_bus(capacity)
        self.publish = self.bus.publish

    def make_bus(self, capacity: int) -> Any:
        raise NotImplementedError

    def subscribe(self) -> Any:
        return self.bus.subscribe()

    async def end(self) -> None:
        self.bus.close()


class FloorDeque(BusSystem):
    name = "floor_i"
    label = "floor (i) deque"

    def make_bus(self, capacity: int) -> Any:
        return DequeFloor(capacity)

    def lag_of(self, handle: Any) -> int | None:
        return int(handle.lagged)


class FloorRing(BusSystem):
    name = "floor_ii"
    label = "floor (ii) ring"

    def make_bus(self, capacity: int) -> Any:
        return RingFloor(capacity)

    def lag_of(self, handle: Any) -> int | None:
        return int(handle.pending_lag())


class OurBus(BusSystem):
    name = "eventbus"
    label = "eventbus.EventBus"

    def make_bus(self, capacity: int) -> Any:
        from eventbus import EventBus

        return EventBus(max_buffer_size=capacity)

    def lag_of(self, handle: Any) -> int | None:
        return int(handle.statistics().lagged)


class OurBusKinds(OurBus):
    """This bus with ``kinds=``-filtered subscribers (every event matches the filter): the
    private-queue path a supervisor's filtered consumers take, next to floor (i), which has
    the same shape (one bounded deque per subscriber). Not a peer: reported, no target."""

    name = "eventbus_kinds"
    label = "eventbus.EventBus, kinds= filtered"

    def subscribe(self) -> Any:
        return self.bus.subscribe(kinds=[BenchEvent])


# -- the peers --------------------------------------------------------------------------------


class _QueueIter:
    """``async for`` over an ``asyncio.Queue`` that ends at the sentinel."""

    __slots__ = ("_get",)

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self._get = queue.get

    def __aiter__(self) -> _QueueIter:
        return self

    async def __anext__(self) -> Any:
        item = await self._get()
        if item is _END:
            raise StopAsyncIteration
        return item


class AsyncioQueueFanout(System):
    name = "asyncio_queue"
    label = "asyncio.Queue fan-out"

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.queues: list[asyncio.Queue[Any]] = []

    def subscribe(self) -> Any:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.capacity)
        self.queues.append(queue)
        return _QueueIter(queue)

    async def apublish(self, event: Any) -> None:
        for queue in self.queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                await queue.put(event)

    async def end(self) -> None:
        for queue in self.queues:
            await queue.put(_END)


class AnyioStreamFanout(System):
    name = "anyio_streams"
    label = "anyio memory streams fan-out"

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.senders: list[Any] = []
        self.receivers: list[Any] = []

    def subscribe(self) -> Any:
        import anyio

        send, receive = anyio.create_memory_object_stream[Any](self.capacity)
        self.senders.append(send)
        self.receivers.append(receive)
        return receive

    async def apublish(self, event: Any) -> None:
        import anyio

        for send in self.senders:
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                await send.send(event)

    async def end(self) -> None:
        for send in self.senders:
            send.close()

    async def close(self) -> None:
        for stream in self.senders + self.receivers:
            stream.close()


class _AiopubsubIter:
    __slots__ = ("_consume",)

    def __init__(self, subscriber: Any) -> None:
        self._consume = subscriber.consume

    def __aiter__(self) -> _AiopubsubIter:
        return self

    async def __anext__(self) -> Any:
        _key, message = await self._consume()
        if message is _END:
            raise StopAsyncIteration
        return message


class Aiopubsub(System):
    name = "aiopubsub"
    label = "aiopubsub"
    requires = "aiopubsub"

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        import aiopubsub

        self._aiopubsub = aiopubsub
        self.hub = aiopubsub.Hub()
        self.key = aiopubsub.Key("bench", "event")
        self._publisher = aiopubsub.Publisher(self.hub, prefix=aiopubsub.Key("bench"))
        self._count = itertools.count()
        self.publish = self._publish

    def _publish(self, event: Any) -> None:
        self._publisher.publish(("event",), event)

    def subscribe(self) -> Any:
        subscriber = self._aiopubsub.Subscriber(self.hub, f"s{next(self._count)}")
        subscriber.subscribe(self.key)  # an unbounded asyncio.Queue per subscriber
        return _AiopubsubIter(subscriber)

    async def end(self) -> None:
        self._publisher.publish(("event",), _END)


class Pyee(System):
    name = "pyee"
    label = "pyee AsyncIOEventEmitter"
    style = "callback"
    requires = "pyee"
    scale = 0.25

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        from pyee.asyncio import AsyncIOEventEmitter

        self.ee = AsyncIOEventEmitter()
        emit = self.ee.emit
        self.publish = lambda event: emit("event", event)

    def add_handler(self, fn: Handler) -> Any:
        self.ee.on("event", fn)  # each emit schedules one task per handler
        return fn

    async def end(self) -> None:
        await self.ee.wait_for_complete()

    async def settle(self) -> None:
        await self.ee.wait_for_complete()


class Blinker(System):
    name = "blinker"
    label = "blinker send_async"
    style = "callback"
    requires = "blinker"

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        import blinker

        self.signal = blinker.Signal()
        self._send_async = self.signal.send_async

    def add_handler(self, fn: Handler) -> Any:
        self.signal.connect(fn, weak=False)  # awaited one after another inside send_async
        return fn

    async def apublish(self, event: Any) -> None:
        await self._send_async(None, event=event)

    async def end(self) -> None:
        pass


_bubus_names = itertools.count()
_bubus_event: Any = None


def _bubus_event_class() -> Any:
    global _bubus_event
    if _bubus_event is None:
        import bubus

        class BenchEnvelope(bubus.BaseEvent[None]):  # type: ignore[misc]
            """bubus events are pydantic models it mutates: one is built per dispatch."""

            payload: Any = None

        _bubus_event = BenchEnvelope
    return _bubus_event


class Bubus(System):
    name = "bubus"
    label = "bubus EventBus"
    style = "callback"
    requires = "bubus"
    scale = 0.02
    max_deliveries = 1000
    f_max_subscribers = 100
    f_skip_reason = (
        "handling one event costs bubus more per handler the more handlers it has (workload A: "
        "~2,000 deliveries/s at S=10, ~500 at S=100), and at 1,000 handlers a trial did not "
        "finish in 60 s"
    )

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        import bubus

        # Its defaults: 50-slot queue, 50 events of history, RuntimeError at 100 pending.
        self.bus = bubus.EventBus(name=f"bench_{next(_bubus_names)}")
        self._event = _bubus_event_class()
        self._last: Any = None
        self.publish = self._publish

    def _publish(self, event: Any) -> None:
        self._last = self.bus.dispatch(self._event(payload=event))

    def add_handler(self, fn: Handler) -> Any:
        index = next(_bubus_names)

        async def handler(event: Any) -> None:  # bubus wants unique handler names
            await fn(event)

        handler.__name__ = handler.__qualname__ = f"handler_{index}"
        self.bus.on(self._event, handler)
        return handler

    async def after_batch(self) -> None:
        # dispatch() raises past 50 queued events: wait for the burst to be handled.
        if self._last is not None:
            await self._last

    async def end(self) -> None:
        await self.bus.wait_until_idle()

    async def close(self) -> None:
        # Its run loop swallows cancellation while it polls its queue: only stop() ends it.
        await self.bus.stop(timeout=0, clear=True)

    async def settle(self) -> None:
        await self.bus.wait_until_idle()


SYSTEMS: tuple[type[System], ...] = (
    FloorDeque,
    FloorRing,
    OurBus,
    OurBusKinds,
    AsyncioQueueFanout,
    AnyioStreamFanout,
    Pyee,
    Blinker,
    Aiopubsub,
    Bubus,
)
"""Every system, floors first, then this bus and its variants, then the peers."""

FLOORS = ("floor_i", "floor_ii")
OURS = "eventbus"
#: This bus measured another way: reported next to the others, neither a floor nor a peer.
OUR_VARIANTS = ("eventbus_kinds",)


def by_name(names: list[str] | None = None) -> list[type[System]]:
    """The systems named (all when ``names`` is None), in :data:`SYSTEMS` order.

    :raises ValueError: for an unknown name.
    """
    if names is None:
        return list(SYSTEMS)
    known = {s.name: s for s in SYSTEMS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown systems {unknown}; known: {sorted(known)}")
    return [s for s in SYSTEMS if s.name in names]


async def consume_count(iterable: Any, counts: list[int], index: int) -> None:
    """A consumer task: count what ``iterable`` yields until it ends."""
    n = 0
    async for _ in iterable:
        n += 1
    counts[index] = n
