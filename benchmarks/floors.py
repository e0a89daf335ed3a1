"""The two pure-Python floors: the least work a bounded, lag-counting broadcast can do.

Neither stamps an envelope, filters, logs or checks threads; they deliver the event object
itself. They are the limit the bus is measured against, not designs to ship.

* :class:`DequeFloor` (floor i): one ``deque(maxlen=C)`` per subscriber, drop-oldest with a lag
  count at publish time, and one future per subscriber, created only when its consumer waits.
* :class:`RingFloor` (floor ii): tokio's broadcast shape: one shared ring of ``C`` slots, a
  global sequence, a cursor per subscriber; lag is what the cursor fell behind by more than
  ``C``. Publishing is O(1) in the number of subscribers, plus waking those that wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class DequeSub:
    """A floor (i) subscriber: ``async for event in sub``; ``lagged`` counts drops."""

    __slots__ = ("_bus", "lagged", "queue", "waiter")

    def __init__(self, bus: DequeFloor, capacity: int) -> None:
        self._bus = bus
        self.queue: deque[Any] = deque(maxlen=capacity)
        self.lagged = 0
        self.waiter: asyncio.Future[None] | None = None

    def __aiter__(self) -> DequeSub:
        return self

    async def __anext__(self) -> Any:
        queue = self.queue
        while not queue:
            if self._bus.closed:
                raise StopAsyncIteration
            self.waiter = waiter = asyncio.get_running_loop().create_future()
            await waiter
        return queue.popleft()


class DequeFloor:
    """Floor (i): per-subscriber bounded deques, drop-oldest, lag counted at publish."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.subs: list[DequeSub] = []
        self.closed = False

    def subscribe(self) -> DequeSub:
        sub = DequeSub(self, self.capacity)
        self.subs.append(sub)
        return sub

    def publish(self, event: Any) -> None:
        cap = self.capacity
        for sub in self.subs:
            queue = sub.queue
            if len(queue) == cap:
                sub.lagged += 1
            queue.append(event)
            waiter = sub.waiter
            if waiter is not None:
                sub.waiter = None
                waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        for sub in self.subs:
            waiter = sub.waiter
            if waiter is not None:
                sub.waiter = None
                waiter.set_result(None)


class RingSub:
    """A floor (ii) subscriber: a cursor into the shared ring."""

    __slots__ = ("_bus", "cursor", "lagged")

    def __init__(self, bus: RingFloor) -> None:
        self._bus = bus
        self.cursor = bus.tail
        self.lagged = 0

    def pending_lag(self) -> int:
        """Events lost so far, counted as tokio does only when the receiver next receives."""
        return self.lagged + max(0, self._bus.tail - self.cursor - self._bus.capacity)

    def __aiter__(self) -> RingSub:
        return self

    async def __anext__(self) -> Any:
        bus = self._bus
        while self.cursor == bus.tail:
            if bus.closed:
                raise StopAsyncIteration
            waiter = bus.waiter
            if waiter is None:
                waiter = bus.waiter = asyncio.get_running_loop().create_future()
            await waiter
        cursor = self.cursor
        behind = bus.tail - cursor
        if behind > bus.capacity:
            self.lagged += behind - bus.capacity
            cursor = bus.tail - bus.capacity
        self.cursor = cursor + 1
        return bus.ring[cursor & bus.mask]


class RingFloor:
    """Floor (ii): one shared ring of ``capacity`` slots (a power of two) and a global tail."""

    def __init__(self, capacity: int) -> None:
        if capacity & (capacity - 1):
            raise ValueError(f"capacity must be a power of two, got {capacity}")
        self.capacity = capacity
        self.mask = capacity - 1
        self.ring: list[Any] = [None] * capacity
        self.tail = 0
        self.closed = False
        # One future shared by every waiting subscriber: a publish wakes them all at once.
        self.waiter: asyncio.Future[None] | None = None

    def subscribe(self) -> RingSub:
        return RingSub(self)

    def publish(self, event: Any) -> None:
        tail = self.tail
        self.ring[tail & self.mask] = event
        self.tail = tail + 1
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)
