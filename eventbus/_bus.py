"""The broadcast bus and its subscriptions. The specification is in ``eventbus.__doc__``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import operator
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from threading import get_ident
from types import TracebackType
from typing import Any, Final, Generic, Literal, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import msgspec
import structlog
from anyio import ClosedResourceError, EndOfStream, WouldBlock
from anyio.abc import UnreliableObjectReceiveStream

from ._envelope import Envelope

__all__ = [
    "BusStatistics",
    "EventBus",
    "OverflowPolicy",
    "Subscription",
    "SubscriptionStatistics",
]

T = TypeVar("T", bound=msgspec.Struct)

OverflowPolicy = Literal["drop_oldest", "drop_newest", "block"]
"""What a full subscription does with the next matching envelope; see ``eventbus`` docs."""

_log = structlog.get_logger("eventbus")

# Overflow policies as small ints: the publish loop compares them per delivery.
_DROP_OLDEST: Final = 0
_DROP_NEWEST: Final = 1
_BLOCK: Final = 2
_POLICIES: Final[dict[str, int]] = {"drop_oldest": 0, "drop_newest": 1, "block": 2}
_POLICY_NAMES: Final[tuple[OverflowPolicy, ...]] = ("drop_oldest", "drop_newest", "block")

#: A receiver takes at most this many ready envelopes before it yields to the scheduler.
COOPERATIVE_BUDGET: Final = 64

# An event id is the bus id, then seq as 14 fixed-width hex digits (so ids sort in seq order):
# the high 11 change every 4096 publishes and are cached, the low 3 come from this table.
_ID_LOW: Final = tuple(f"{n:03x}" for n in range(4096))

# The envelope whose effects are being handled in the current context (see caused_by).
_cause: ContextVar[Envelope[Any] | None] = ContextVar("eventbus_cause", default=None)

# Set for good once causation is used anywhere, so publish skips the context lookup until then.
_causation_in_use = False

_time_ns = time.time_ns
_cursor_of = operator.attrgetter("_cursor")


def _new_bus_id() -> str:
    """A time-ordered, collision-resistant bus id: 48-bit ms timestamp + 64 random bits."""
    ms = time.time_ns() // 1_000_000
    return f"{ms:012x}{int.from_bytes(os.urandom(8), 'big'):016x}-"


def _trio_lowlevel() -> Any:
    """``trio.lowlevel`` if the current task runs under trio, else ``None``."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return None
    return trio.lowlevel


async def _checkpoint(bus: EventBus[Any]) -> None:
    """anyio's checkpoint, minus its backend lookup (it is ``sleep(0)`` on asyncio)."""
    if _running_loop(bus) is None:
        await anyio.lowlevel.checkpoint()
    else:
        await asyncio.sleep(0)


def _running_loop(bus: EventBus[Any]) -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or ``None`` (trio). The bus's own loop is checked first:
    ``asyncio.get_running_loop()`` costs ~140 ns, about what parking costs without it.

    Trio is asked first, the way anyio and sniffio do: trio marks the thread while it runs
    a task, also as a guest on an asyncio loop (``trio.lowlevel.start_guest_run``), where
    that loop is running too but a trio task cannot await its futures."""
    sniffio = sys.modules.get("sniffio")  # (trio imports it)
    if sniffio is not None and sniffio.thread_local.name == "trio":
        return None
    loop = bus._loop
    if loop is not None and loop.is_running():
        return loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _kind_of(event_type: type) -> str:
    if not (isinstance(event_type, type) and issubclass(event_type, msgspec.Struct)):
        raise TypeError(f"event must be a msgspec.Struct instance, got {event_type.__name__}")
    tag = event_type.__struct_config__.tag
    if tag is None:
        return event_type.__name__
    return str(tag)


@dataclass(frozen=True, slots=True)
class BusStatistics:
    """A point-in-time view of an :class:`EventBus`, returned by :meth:`EventBus.statistics`.

    Attributes:
        published: The last ``seq`` handed out: the number of envelopes published so far,
            unless :meth:`EventBus.publish_envelope` with ``keep_seq=True`` made it jump.
        open_subscriptions: Subscriptions created and not yet closed.
        closed: Whether :meth:`EventBus.close` has been called.
    """

    published: int
    open_subscriptions: int
    closed: bool


@dataclass(frozen=True, slots=True)
class SubscriptionStatistics:
    """A point-in-time view of a :class:`Subscription`, returned by its ``statistics()``.

    For every open subscription, at every moment::

        matched == delivered + lagged + buffered

    where ``matched`` is the number of envelopes published after the subscription was created
    that passed its ``kinds`` and ``where`` filters.

    Attributes:
        delivered: Envelopes handed to the consumer by ``receive``/``receive_nowait``.
        lagged: Envelopes lost to the overflow policy (evicted by ``drop_oldest`` or refused by
            ``drop_newest``). Counted at publish time, so a stuck consumer's losses show at once.
        buffered: Envelopes waiting in the queue now (0 once the subscription is closed).
        max_buffer_size: The queue's capacity.
        high_water_mark: The most envelopes the queue has held at once.
        overflow: The overflow policy.
        name: The subscription's name, used in log events.
    """

    delivered: int
    lagged: int
    buffered: int
    max_buffer_size: int
    high_water_mark: int
    overflow: OverflowPolicy
    name: str


class Subscription(UnreliableObjectReceiveStream[Envelope[T]]):
    """One subscriber's bounded queue of envelopes, created by :meth:`EventBus.subscribe`.

    It is an :class:`anyio.abc.UnreliableObjectReceiveStream` (unreliable because the drop
    policies lose envelopes by design): ``await sub.receive()``, ``sub.receive_nowait()``,
    ``async for envelope in sub``, ``with sub:``/``async with sub:``, ``close()``/``aclose()``.

    A subscription sees only envelopes published after :meth:`EventBus.subscribe` returned,
    in ``seq`` order. It is meant to be read by one consumer task; several tasks may receive
    from it, but each envelope goes to exactly one of them (this is not a broadcast: subscribe
    again for that).

    Do not instantiate it yourself; the bus picks the implementation. Unfiltered
    ``drop_oldest`` subscriptions (the default) read a ring that the bus shares between them,
    so publishing costs them nothing per subscription; the others own a private queue. Both
    behave identically.
    """

    __slots__ = (
        "_bus",
        "_closed",
        "_delivered",
        "_hwm",
        "_kinds",
        "_lagged",
        "_max",
        "_name",
        "_policy",
        "_track",
        "_waiters",
        "_where",
    )

    def __init__(
        self,
        bus: EventBus[T],
        max_buffer_size: int,
        policy: int,
        kinds: tuple[type | str, ...] | None,
        where: Callable[[Envelope[T]], bool] | None,
        name: str,
        track_causation: bool,
    ) -> None:
        self._bus = bus
        self._max = max_buffer_size
        self._policy = policy
        self._kinds = kinds
        self._where = where
        self._name = name
        self._track = track_causation
        self._closed = False
        self._waiters: list[Any] = []  # receivers parked in _wait (futures, tasks, events)
        self._delivered = 0
        self._lagged = 0
        self._hwm = 0

    def __repr__(self) -> str:
        return (
            f"<Subscription name={self._name!r} overflow={_POLICY_NAMES[self._policy]!r} "
            f"buffered={self._buffered()}/{self._max} closed={self._closed}>"
        )

    @property
    def name(self) -> str:
        """The subscription's name (given to ``subscribe`` or generated)."""
        return self._name

    @property
    def closed(self) -> bool:
        """``True`` once :meth:`close` or :meth:`aclose` has been called."""
        return self._closed

    # -- what each implementation provides --------------------------------------------------

    def _buffered(self) -> int:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _take(self) -> Envelope[T]:
        raise NotImplementedError

    def _release(self) -> None:
        """Drop what is buffered and leave the bus (part of close)."""
        raise NotImplementedError

    # -- receiving ---------------------------------------------------------------------------

    def receive_nowait(self) -> Envelope[T]:
        """Take the oldest buffered envelope without waiting.

        :returns: the oldest envelope in the queue.
        :raises anyio.WouldBlock: if the queue is empty and the bus is open.
        :raises anyio.EndOfStream: if the queue is empty and the bus is closed.
        :raises anyio.ClosedResourceError: if this subscription has been closed.

        It never yields to the event loop and never checks for cancellation.
        """
        if self._ready():
            return self._take()
        if self._closed:
            raise ClosedResourceError(f"subscription {self._name!r} is closed")
        if self._bus._closed:
            raise EndOfStream
        raise WouldBlock

    async def receive(self) -> Envelope[T]:
        """Take the oldest buffered envelope, waiting for one if the queue is empty.

        :returns: the oldest envelope in the queue.
        :raises anyio.EndOfStream: once the bus is closed and everything buffered was taken.
        :raises anyio.ClosedResourceError: if this subscription is closed, also while waiting.

        Cancel safety: a cancelled ``receive`` takes nothing; the envelope it would have
        returned is returned by the next one.

        It is *not* a checkpoint on every call: when envelopes are ready it takes one without
        touching the event loop, and it yields (and delivers cancellation) once every
        ``COOPERATIVE_BUDGET`` (64) consecutive ready envelopes, and whenever it has to wait.
        """
        raise NotImplementedError  # each implementation has its own (its hot path)

    async def _wait(self) -> None:
        """Park the current task until _wake(); cancellable, leaves nothing behind if so.
        Not on asyncio: there the receive paths park on a future themselves (inlined)."""
        waiters = self._waiters
        trio_lowlevel = _trio_lowlevel()
        if trio_lowlevel is not None:
            task = trio_lowlevel.current_task()
            waiters.append(task)

            def abort(_: object) -> Any:
                if task in waiters:
                    waiters.remove(task)
                return trio_lowlevel.Abort.SUCCEEDED

            await trio_lowlevel.wait_task_rescheduled(abort)
            return
        event = anyio.Event()  # pragma: no cover - a backend anyio may add later
        waiters.append(event)
        await event.wait()

    def _wake(self) -> None:
        """Wake every parked receiver (called by publish only when there is one)."""
        waiters = self._waiters
        for waiter in waiters:  # FIFO
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    try:
                        waiter.set_result(None)
                    except RuntimeError:  # its loop is closed: nobody waits on it any more
                        if not waiter.get_loop().is_closed():
                            raise
            elif isinstance(waiter, anyio.Event):  # pragma: no cover
                waiter.set()
            else:
                sys.modules["trio"].lowlevel.reschedule(waiter)
        waiters.clear()

    def _log_lagged(self) -> None:
        _log.warning(
            "subscription_lagged",
            name=self._name,
            overflow=_POLICY_NAMES[self._policy],
            max_buffer_size=self._max,
        )

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Unsubscribe and free the queue at once. Idempotent.

        Envelopes still buffered are discarded (they are neither delivered nor lagged). A task
        waiting in :meth:`receive` gets :exc:`anyio.ClosedResourceError`.
        """
        if self._closed:
            return
        self._release()
        self._closed = True
        self._bus._unsubscribe(self)
        if self._waiters:
            self._wake()

    async def aclose(self) -> None:
        """Like :meth:`close`, then a checkpoint."""
        self.close()
        await anyio.lowlevel.checkpoint()

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()

    def statistics(self) -> SubscriptionStatistics:
        """Return a frozen snapshot of this subscription's counters (see the class)."""
        buffered = self._buffered()
        return SubscriptionStatistics(
            delivered=self._delivered_count(),
            lagged=self._lagged + self._pending_loss(),
            buffered=buffered,
            max_buffer_size=self._max,
            high_water_mark=max(self._hwm, buffered),
            overflow=_POLICY_NAMES[self._policy],
            name=self._name,
        )

    def _pending_loss(self) -> int:
        return 0

    def _delivered_count(self) -> int:
        return self._delivered

    def _peek(self, limit: int) -> list[Envelope[T]]:
        """Up to ``limit`` buffered envelopes, oldest first, without taking them (for
        ``eventbus.testing``'s failure messages)."""
        raise NotImplementedError

    def _matches_type(self, event_type: type, kind: str) -> bool:
        kinds = self._kinds
        if kinds is None:
            return True
        for k in kinds:
            if isinstance(k, str):
                if k == kind:
                    return True
            elif issubclass(event_type, k):
                return True
        return False


class _QueueSubscription(Subscription[T]):
    """A subscription with a private deque: filtered, ``drop_newest`` or ``block``.

    Its receive paths inline ``_take`` (they are the consumer's hot path); ``_slow_take`` says
    when a take needs more than pop + count (see ``_after_take``). The cooperative budget is a
    bound on the delivered count, ``_yield_at``, so a ready take is two comparisons and one
    count; the slow path is inlined in ``__anext__`` so that a woken consumer resumes one
    coroutine frame (``receive`` delegates to it).
    """

    __slots__ = ("_burst", "_queue", "_slow_take", "_yield_at")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._queue: deque[Envelope[T]] = deque()
        self._yield_at = COOPERATIVE_BUDGET  # the delivered count at which a take yields first
        self._burst = 0  # envelopes lost since the consumer last received
        self._slow_take = self._track or self._policy == _BLOCK

    def _buffered(self) -> int:
        return len(self._queue)

    def _ready(self) -> bool:
        return bool(self._queue)

    def _release(self) -> None:
        self._queue.clear()

    def _peek(self, limit: int) -> list[Envelope[T]]:
        return list(itertools.islice(self._queue, limit))

    def receive_nowait(self) -> Envelope[T]:
        queue = self._queue
        if queue:
            self._delivered += 1
            envelope = queue.popleft()
            if self._slow_take:
                self._after_take(envelope)
            return envelope
        return super().receive_nowait()

    async def receive(self) -> Envelope[T]:
        queue = self._queue
        delivered = self._delivered
        if queue and delivered < self._yield_at:
            self._delivered = delivered + 1
            envelope = queue.popleft()
            if self._slow_take:
                self._after_take(envelope)
            return envelope
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise EndOfStream from None

    async def __anext__(self) -> Envelope[T]:
        queue = self._queue
        delivered = self._delivered
        if queue and delivered < self._yield_at:
            self._delivered = delivered + 1
            envelope = queue.popleft()
            if self._slow_take:
                self._after_take(envelope)
            return envelope
        while True:
            if queue:
                if self._delivered >= self._yield_at:
                    await _checkpoint(self._bus)  # budget spent: let other tasks run first
                    self._yield_at = self._delivered + COOPERATIVE_BUDGET
                    continue  # another task may have taken it meanwhile
                return self._take()
            if self._closed:
                raise ClosedResourceError(f"subscription {self._name!r} is closed")
            if self._bus._closed:
                raise StopAsyncIteration
            loop = _running_loop(self._bus)
            if loop is None:
                await self._wait()  # trio
            else:
                # asyncio, inlined from _wait: one future per parked receiver, woken by _wake.
                future = loop.create_future()
                waiters = self._waiters
                waiters.append(future)
                try:
                    await future
                except BaseException:
                    if future in waiters:
                        waiters.remove(future)
                    raise
            self._yield_at = self._delivered + COOPERATIVE_BUDGET

    def _take(self) -> Envelope[T]:
        self._delivered += 1
        envelope = self._queue.popleft()
        if self._slow_take:
            self._after_take(envelope)
        return envelope

    def _after_take(self, envelope: Envelope[T]) -> None:
        if self._burst:
            _log.info("subscription_lag_recovered", name=self._name, lagged=self._burst)
            self._burst = 0
        if self._track:
            _cause.set(envelope)
        if self._policy == _BLOCK:
            self._bus._notify_space()
        self._slow_take = self._track or self._policy == _BLOCK

    def _grow(self) -> bool:
        """An envelope is about to be appended to a queue that holds its high-water mark (at
        most its capacity): raise the mark, or apply the policy if the queue is full. Returns
        whether to append."""
        n = len(self._queue)
        if n < self._max:
            self._hwm = n + 1
            return True
        self._lagged += 1
        if not self._burst:
            self._log_lagged()
            self._slow_take = True
        self._burst += 1
        if self._policy == _DROP_OLDEST:
            self._queue.popleft()
            return True
        return False


class _RingSubscription(Subscription[T]):
    """An unfiltered ``drop_oldest`` subscription: a cursor into the bus's shared ring.

    Its queue is the window ``[max(cursor, head - max_buffer_size), head)`` of ring positions:
    exactly what a private ``drop_oldest`` deque would hold, without a per-subscription append
    on publish. Its losses are derived from the cursor, so they show in ``statistics()`` at
    once; the bus logs the first loss of a burst when it publishes (see ``_ring_attention``).

    The receive fast path is two comparisons: the cursor is below ``_fast_end`` (what was
    ready when the slow path last took, capped by the cooperative budget's ``_yield_at``; -1
    for ``track_causation``, whose every take needs the slow path) and nothing was published
    since (the head is still ``_seen``), so nothing can have been overwritten and the
    high-water mark cannot have grown. The slow path takes with every check and reopens it.
    """

    __slots__ = ("_cursor", "_fast_end", "_lag_logged", "_seen", "_start", "_yield_at")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._cursor = self._bus._ring_pos  # the ring position of the next envelope to take
        self._start = self._cursor  # so delivered == cursor - start - lagged, never counted
        self._lag_logged = False
        self._yield_at = self._cursor + COOPERATIVE_BUDGET
        self._seen = -1  # the ring's head when the fast path was last opened
        self._fast_end = -1  # the fast path serves positions below this while _seen holds

    def _delivered_count(self) -> int:
        if self._closed:
            return self._delivered
        return self._cursor - self._start - self._lagged

    def _buffered(self) -> int:
        return 0 if self._closed else min(self._bus._ring_pos - self._cursor, self._max)

    def _pending_loss(self) -> int:
        if self._closed:
            return 0
        return max(self._bus._ring_pos - self._cursor - self._max, 0)

    def _ready(self) -> bool:
        return self._cursor < self._bus._ring_pos

    def _peek(self, limit: int) -> list[Envelope[T]]:
        bus = self._bus
        head = bus._ring_pos
        first = head - self._buffered()
        return [bus._ring[pos & bus._ring_mask] for pos in range(first, min(head, first + limit))]

    def _release(self) -> None:
        self._hwm = max(self._hwm, self._buffered())
        self._delivered = self._delivered_count()
        self._lagged += self._pending_loss()
        self._cursor = sys.maxsize  # never ready again
        if self._bus._ring_future is not None:
            self._bus._wake_ring()  # it may be parked on the shared future: let it see this

    def receive_nowait(self) -> Envelope[T]:
        # Its own fast path (no budget here, and it need not keep _seen): ready, and no more
        # than the high-water mark already seen, so nothing was overwritten.
        bus = self._bus
        pos = self._cursor
        if 0 < bus._ring_pos - pos <= self._hwm and not self._track:
            self._cursor = pos + 1
            return bus._ring[pos & bus._ring_mask]  # type: ignore[no-any-return]
        if pos < bus._ring_pos:
            return self._take()
        return super().receive_nowait()

    async def receive(self) -> Envelope[T]:
        bus = self._bus
        pos = self._cursor
        if pos < self._fast_end and bus._ring_pos == self._seen:
            self._cursor = pos + 1
            return bus._ring[pos & bus._ring_mask]  # type: ignore[no-any-return]
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise EndOfStream from None

    async def __anext__(self) -> Envelope[T]:
        bus = self._bus
        pos = self._cursor
        if pos < self._fast_end and bus._ring_pos == self._seen:
            self._cursor = pos + 1
            return bus._ring[pos & bus._ring_mask]  # type: ignore[no-any-return]
        # The slow path, inlined so that a woken consumer resumes one coroutine frame: most of
        # a wake-up's cost after the event loop's own.
        while True:
            pos = self._cursor
            ready = bus._ring_pos - pos
            if ready > 0:
                if pos >= self._yield_at:
                    await _checkpoint(bus)  # budget spent: let other tasks run first
                    self._yield_at = self._cursor + COOPERATIVE_BUDGET
                    continue  # another task may have taken it meanwhile
                envelope = self._take()
                self._open_fast_path()
                return envelope
            if self._closed:
                raise ClosedResourceError(f"subscription {self._name!r} is closed")
            if bus._closed:
                raise StopAsyncIteration
            bus._ring_attn = -1  # parked: the next publish must wake us
            if len(bus._ring_subs) == 1:
                # The only ring consumer is caught up: no loss before a capacity from here,
                # so no publish until then needs to look (the usual single consumer).
                bus._ring_lag_at = pos + self._max
            loop = _running_loop(bus)
            if loop is None:  # trio: a parked task per subscription, see _wake_ring
                bus._ring_waiting.append(self)
                try:
                    await self._wait()
                except BaseException:
                    # Cancelled: leave the list now, or a quiet bus would keep one entry per
                    # cancelled receive until the next publish.
                    if self in bus._ring_waiting:
                        bus._ring_waiting.remove(self)
                    raise
            else:
                # asyncio: every waiting ring subscription awaits one shared future, so a
                # publish wakes them all with a single set_result (tokio's design).
                future = bus._ring_future
                if future is None or bus._ring_loop is not loop:
                    future = bus._ring_future = loop.create_future()
                    bus._ring_loop = loop  # a future of another (ended) loop is never awaited
                task = asyncio.current_task(loop)
                requests = task.cancelling() if task is not None else 0
                try:
                    await future
                except asyncio.CancelledError:
                    # Cancelling a task cancels the future it awaits, which is shared: the
                    # other waiters then see a CancelledError that is not theirs, a spurious
                    # wake-up (they loop and park again on a new future). Only one that came
                    # with a new cancellation request for this task propagates (a request
                    # pending from before, held off by a shield, is not a new one).
                    if bus._ring_future is future:
                        bus._ring_future = None
                    if not (
                        future.cancelled() and task is not None and task.cancelling() == requests
                    ):
                        raise
                else:
                    # The usual wake-up: one envelope to take, taken here at once.
                    pos = self._cursor
                    head = bus._ring_pos
                    if 0 < head - pos <= self._hwm and not self._track:
                        end = self._yield_at = pos + COOPERATIVE_BUDGET
                        self._seen = head
                        self._fast_end = head if head < end else end
                        self._cursor = pos + 1
                        return bus._ring[pos & bus._ring_mask]  # type: ignore[no-any-return]
            self._yield_at = self._cursor + COOPERATIVE_BUDGET

    def _open_fast_path(self) -> None:
        """Let the fast path serve what is ready now, up to the budget, for as long as
        nothing is published (then no envelope can be overwritten and the high-water mark
        cannot grow); ``track_causation`` keeps it closed."""
        if self._track:
            return
        head = self._seen = self._bus._ring_pos
        end = self._yield_at
        self._fast_end = head if head < end else end

    def _take(self) -> Envelope[T]:
        """Take the envelope at the cursor (there is one): the general case, which keeps
        the high-water mark, skips what the ring overwrote and opens ``caused_by``."""
        bus = self._bus
        pos = self._cursor
        ready = bus._ring_pos - pos
        if ready > self._hwm:
            if ready > self._max:
                pos = self._catch_up(ready)
            else:
                self._hwm = ready
        envelope: Envelope[T] = bus._ring[pos & bus._ring_mask]
        self._cursor = pos + 1
        if self._track:
            _cause.set(envelope)
        return envelope

    def _catch_up(self, ready: int) -> int:
        """Skip what the ring overwrote for us, count it as lag, log the burst as recovered
        (this take ends it) and re-arm the publish-time lag log."""
        lost = ready - self._max
        self._lagged += lost
        self._hwm = self._max
        self._lag_logged = False
        _log.info("subscription_lag_recovered", name=self._name, lagged=lost)
        pos = self._cursor + lost
        bus = self._bus
        threshold = pos + 1 + self._max  # after this take, a loss starts past this head
        if threshold < bus._ring_lag_at:
            bus._ring_lag_at = threshold
            if bus._ring_attn >= 0:  # (while consumers are parked it stays -1)
                bus._ring_attn = threshold
        return pos


# A route: what one event type costs to publish: its kind, its queue subscriptions, and a mode.
# _ROUTE_RING: only the ring to write (the hot path, inlined in publish); _ROUTE_GENERAL: queue
# subscriptions or taps (EventBus._deliver); _ROUTE_SELECT: a subscription on it has a
# ``where`` predicate, which needs a selection pass before delivery; _ROUTE_ROOM: no ``where``,
# but a ``block`` subscription, whose room is checked before delivery; _ROUTE_NOBODY: no
# subscription and no tap at all (the envelope only takes a seq). See EventBus._targets.
# Routes are cached per event class and dropped whenever subscriptions or taps change.
_Route = tuple[str, tuple["_QueueSubscription[Any]", ...], int]
_ROUTE_RING: Final = 0
_ROUTE_GENERAL: Final = 1
_ROUTE_SELECT: Final = 2
_ROUTE_NOBODY: Final = 3
_ROUTE_ROOM: Final = 4


class EventBus(Generic[T]):
    """An in-process broadcast bus: every subscription gets every matching event.

    :param max_buffer_size: the default capacity of each subscription's queue (the oxios
        default, 256); ``subscribe`` may override it per subscription.
    :raises ValueError: if ``max_buffer_size`` is < 1.
    :raises TypeError: if ``max_buffer_size`` is not an int.

    The bus belongs to the event loop it is first used in (first ``publish``, ``subscribe`` or
    ``async with``) and to that loop's thread; use :meth:`publish_threadsafe` from other
    threads. ``async with EventBus() as bus:`` closes it on exit.
    """

    __slots__ = (
        "__weakref__",
        "_apublish_budget",
        "_closed",
        "_default_max",
        "_id_high",
        "_id_prefix",
        "_loop",
        "_names",
        "_owner",
        "_queue_subs",
        "_ring",
        "_ring_attn",
        "_ring_future",
        "_ring_lag_at",
        "_ring_loop",
        "_ring_mask",
        "_ring_min_max",
        "_ring_pos",
        "_ring_subs",
        "_ring_waiting",
        "_routes",
        "_seq",
        "_space",
        "_subs",
        "_tap_backlog",
        "_tapping",
        "_taps",
        "_thread_id",
        "_token",
    )

    def __init__(self, max_buffer_size: int = 256) -> None:
        self._default_max = _check_buffer_size(max_buffer_size)
        self._subs: dict[Subscription[T], None] = {}  # every open subscription
        self._queue_subs: dict[_QueueSubscription[T], None] = {}
        # The ring shared by unfiltered drop_oldest subscriptions: position p lives in
        # _ring[p & _ring_mask]; _ring_pos is the position the next envelope gets.
        self._ring_subs: dict[_RingSubscription[T], None] = {}
        self._ring: list[Any] = []
        self._ring_mask = 0  # the ring's size, a power of two, minus one
        self._ring_min_max = 1  # the smallest capacity of a ring subscription
        self._ring_pos = 0
        self._ring_lag_at = sys.maxsize  # a ring subscription loses once _ring_pos passes it
        self._ring_waiting: list[_RingSubscription[T]] = []  # parked under trio
        self._ring_future: asyncio.Future[None] | None = None  # parked under asyncio
        self._ring_loop: asyncio.AbstractEventLoop | None = None  # the loop of _ring_future
        # -1 while a ring consumer is parked (_ring_future or _ring_waiting), else
        # _ring_lag_at: a publish that moves _ring_pos past it has something to do besides
        # storing the envelope (see _ring_attention).
        self._ring_attn = sys.maxsize
        self._routes: dict[type, _Route] = {}
        self._seq = 0
        self._closed = False
        self._id_prefix = _new_bus_id()
        self._id_high = self._id_prefix + "0" * 11  # the id prefix of seqs 0..4095
        self._thread_id: int | None = None  # the loop's thread, once bound
        self._owner: int | None = None  # == _thread_id while open; the fast-path guard
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._space: anyio.Event | None = None  # set when a ``block`` queue frees a slot
        self._apublish_budget = COOPERATIVE_BUDGET
        self._names = 0
        self._taps: tuple[Callable[[Envelope[T]], object], ...] = ()
        self._tapping = False  # taps are running: a publish they make waits in the backlog
        self._tap_backlog: deque[tuple[Envelope[T], tuple[Callable[[Envelope[T]], object], ...]]]
        self._tap_backlog = deque()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<EventBus {state} published={self._seq} subscriptions={len(self._subs)}>"

    @property
    def closed(self) -> bool:
        """``True`` once :meth:`close` has been called."""
        return self._closed

    @property
    def max_buffer_size(self) -> int:
        """The default capacity of new subscriptions."""
        return self._default_max

    # -- binding to a loop -------------------------------------------------------------------

    def _bind(self) -> None:
        """Adopt the running event loop and its thread, if there is one."""
        try:
            token = anyio.lowlevel.current_token()
        except RuntimeError:  # no event loop in this thread: stay unbound
            return
        self._token = token
        self._thread_id = self._owner = get_ident()
        native = token.native_token
        self._loop = native if isinstance(native, asyncio.AbstractEventLoop) else None

    def _guard(self, method: str) -> None:
        """The slow path of the one check on every call: ``_owner`` is the loop's thread id
        only while the bus is bound and open, so closed, unbound and foreign-thread calls all
        land here."""
        if self._closed:
            raise ClosedResourceError("the bus is closed")  # (apublish comes here via publish)
        if self._thread_id is None:
            self._bind()
            return
        raise RuntimeError(
            f"{method}() was called from a thread that does not run the bus's event loop; "
            "use publish_threadsafe() from other threads"
        )

    # -- subscribing -------------------------------------------------------------------------

    def subscribe(
        self,
        *,
        max_buffer_size: int | None = None,
        overflow: OverflowPolicy = "drop_oldest",
        kinds: Iterable[type | str] | None = None,
        where: Callable[[Envelope[T]], bool] | None = None,
        name: str | None = None,
        track_causation: bool = False,
    ) -> Subscription[T]:
        """Create a subscription with its own bounded queue.

        :param max_buffer_size: the queue's capacity (default: the bus's).
        :param overflow: what happens when the queue is full: ``"drop_oldest"`` (evict the
            oldest, count one lag), ``"drop_newest"`` (refuse the new one, count one lag) or
            ``"block"`` (lossless: publishers wait, see :meth:`apublish`).
        :param kinds: only events of these classes (subclasses included) or tags. A tag is
            compared as text and is not checked against any known class (one may be defined
            later), so a misspelt tag matches nothing, silently: prefer classes.
        :param where: only envelopes for which this predicate returns true. It runs inside
            ``publish``, on the publisher's task: keep it cheap, total and side-effect free.
            An exception it raises reaches the publisher (with a note naming this
            subscription) and nothing is published, so a predicate that fails makes every
            publish of a matching event fail until the subscription is closed. What publish
            does if it has side effects: a subscription the predicate closed gets nothing; if
            it closed the bus, publish raises :exc:`anyio.ClosedResourceError`; if it
            published, that nested publish stands and the outer one raises
            :exc:`RuntimeError` having published nothing (no ``seq`` twice). A subscription
            it created is not guaranteed either way: a filtered one does not get the
            envelope being published, an unfiltered ``drop_oldest`` one (which reads the
            shared ring) does.
        :param name: a name for logs and statistics (default ``"sub<N>"``).
        :param track_causation: open :meth:`caused_by` for the envelope the consumer last
            received, so what it publishes in reaction is linked to it. Costs one
            context-variable write per receive.
        :returns: the new :class:`Subscription`; it sees only events published from now on.
        :raises anyio.ClosedResourceError: if the bus is closed.
        :raises ValueError: for a bad ``max_buffer_size``, ``overflow`` or empty ``kinds``.
        :raises TypeError: for arguments of the wrong type.

        Filtered-out events are not lag. Subscriptions filtered only by ``kinds`` cost nothing
        to events of other kinds.
        """
        if self._owner != get_ident():
            self._guard("subscribe")
        size = (
            self._default_max if max_buffer_size is None else _check_buffer_size(max_buffer_size)
        )
        policy = _POLICIES.get(overflow) if isinstance(overflow, str) else None
        if policy is None:
            raise ValueError(
                f"overflow must be one of 'drop_oldest', 'drop_newest', 'block', got {overflow!r}"
            )
        kinds_t = None if kinds is None else _check_kinds(kinds)
        if where is not None and not callable(where):
            raise TypeError(f"where must be callable, got {type(where).__name__}")
        if name is None:
            self._names += 1
            name = f"sub{self._names}"
        elif not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if track_causation:
            global _causation_in_use
            _causation_in_use = True
        args = (self, size, policy, kinds_t, where, name, bool(track_causation))
        sub: Subscription[T]
        if kinds_t is None and where is None and policy == _DROP_OLDEST:
            ring_sub = _RingSubscription[T](*args)
            self._ring_subs[ring_sub] = None
            self._resize_ring()
            self._ring_lag_at = min(self._ring_lag_at, ring_sub._cursor + size)
            self._ring_attn = min(self._ring_attn, self._ring_lag_at)
            sub = ring_sub
        else:
            queue_sub = _QueueSubscription[T](*args)
            self._queue_subs[queue_sub] = None
            sub = queue_sub
        self._subs[sub] = None
        self._routes = {}
        return sub

    def _unsubscribe(self, sub: Subscription[T]) -> None:
        if self._subs.pop(sub, 0) is not None:
            return
        if isinstance(sub, _RingSubscription):
            del self._ring_subs[sub]
            self._resize_ring()
            if not self._ring_subs:
                self._routes = {}  # no ring to write any more
            return
        del self._queue_subs[sub]  # type: ignore[arg-type]
        self._routes = {}
        if sub._policy == _BLOCK:
            self._notify_space()

    def _resize_ring(self) -> None:
        """Size the ring to the largest ring subscription's capacity rounded up to a power of
        two (positions map to slots with a mask), keeping the live window."""
        self._ring_min_max = min((s._max for s in self._ring_subs), default=1)
        size = 1 << (max((s._max for s in self._ring_subs), default=1) - 1).bit_length()
        if size == self._ring_mask + 1 and self._ring:
            return
        old, old_mask, head = self._ring, self._ring_mask, self._ring_pos
        ring: list[Any] = [None] * size if self._ring_subs else []
        if old and ring:
            for pos in range(max(head - min(size, old_mask + 1), 0), head):
                ring[pos & (size - 1)] = old[pos & old_mask]
        self._ring, self._ring_mask = ring, size - 1

    def _ring_attention(self, head: int) -> None:
        """The ring's head just passed ``_ring_attn``: wake parked consumers, and log the first
        loss of a ring subscription's burst once, then find where the next one starts."""
        if self._ring_attn < 0:  # parked consumers
            future = self._ring_future
            if future is not None:
                self._ring_future = None
                if not future.done() and not future.get_loop().is_closed():
                    future.set_result(None)  # (a cancelled waiter may have cancelled it)
            waiting = self._ring_waiting
            if waiting:
                for sub in waiting:  # FIFO: the consumer that waited longest runs first
                    if sub._waiters:
                        sub._wake()
                waiting.clear()
        lag_at = self._ring_lag_at
        if head > lag_at:
            # Where the next loss can start at the earliest: the slowest cursor plus the
            # smallest capacity, found by a loop in C; exact per subscription (below) only
            # when that bound says someone may have lost.
            lag_at = min(map(_cursor_of, self._ring_subs), default=sys.maxsize)
            lag_at += self._ring_min_max
            if head <= lag_at:
                self._ring_lag_at = self._ring_attn = lag_at
                return
            lag_at = sys.maxsize
            for sub in self._ring_subs:
                if sub._lag_logged:
                    continue
                threshold = sub._cursor + sub._max
                if head > threshold:
                    sub._lag_logged = True
                    sub._log_lagged()
                elif threshold < lag_at:
                    lag_at = threshold
            self._ring_lag_at = lag_at
        self._ring_attn = lag_at

    def _wake_ring(self) -> None:
        """Wake every parked ring consumer (close, or a subscription closed)."""
        self._ring_attention(-1)

    def _route(self, event_type: type) -> _Route:
        if isinstance(event_type, type) and issubclass(event_type, Envelope):
            raise TypeError(
                "event must be an event, not an Envelope: deliver an envelope with "
                "publish_envelope"
            )
        kind = _kind_of(event_type)
        subs = tuple(s for s in self._queue_subs if s._matches_type(event_type, kind))
        if any(s._where is not None for s in subs):
            mode = _ROUTE_SELECT
        elif any(s._policy == _BLOCK for s in subs):
            mode = _ROUTE_ROOM
        elif subs or self._taps:
            mode = _ROUTE_GENERAL
        elif self._ring_subs:
            mode = _ROUTE_RING
        else:
            mode = _ROUTE_NOBODY
        route = (kind, subs, mode)
        self._routes[event_type] = route
        return route

    # -- publishing --------------------------------------------------------------------------

    def publish(
        self,
        event: T,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Envelope[T]:
        """Stamp ``event`` into an envelope and enqueue it into every matching subscription.

        Synchronous: it never awaits, never blocks and never runs consumer code (consumers
        are tasks, not callbacks), so it may be called from a consumer of this same bus.

        :param event: a msgspec Struct instance.
        :param correlation_id: ties this event to a correlation (default: from
            :meth:`caused_by`, else ``None``).
        :param causation_id: the ``event_id`` of the event that caused this one (default:
            from :meth:`caused_by`, else ``None``).
        :returns: the envelope, the same object every subscription receives.
        :raises anyio.ClosedResourceError: if the bus is closed.
        :raises anyio.WouldBlock: if a matching ``block`` subscription is full; then nothing
            is enqueued anywhere (all or nothing) and no ``seq`` is consumed. Use
            :meth:`apublish` to wait instead.
        :raises RuntimeError: if called from a thread that does not run the bus's loop, or
            if a ``where`` predicate published (see :meth:`subscribe`).
        :raises TypeError: if ``event`` is not a msgspec Struct (or is an :class:`Envelope`:
            see :meth:`publish_envelope`), or an id is not a ``str``
            (a UUID too: pass ``str(uuid)``; stores and the wire carry text).

        Zero subscribers is not an error. An exception raised by a ``where`` predicate
        propagates, and then too nothing is enqueued. A returned envelope does *not* mean
        anyone will read it: a ``drop_*`` subscription may lose it later.
        """
        if self._owner != get_ident():
            self._guard("publish")
        # Exact str passes at the cost of two compares; anything else gets the full check
        # (a str subclass passes it too).
        if (correlation_id is not None and correlation_id.__class__ is not str) or (
            causation_id is not None and causation_id.__class__ is not str
        ):
            _check_ids(correlation_id, causation_id)
        route = self._routes.get(type(event))
        if route is None:
            route = self._route(type(event))
        if _causation_in_use and (correlation_id is None or causation_id is None):
            cause = _cause.get()
            if cause is not None:
                if causation_id is None:
                    causation_id = cause.event_id
                if correlation_id is None:
                    correlation_id = cause.correlation_id or cause.event_id
        kind, subs, mode = route
        seq = self._seq + 1
        low = seq & 4095
        if not low:
            self._id_high = f"{self._id_prefix}{seq >> 12:011x}"
        envelope: Envelope[T] = Envelope(
            seq,
            self._id_high + _ID_LOW[low],
            _time_ns(),
            kind,
            event,
            correlation_id,
            causation_id,
        )
        if mode:  # queue subscriptions, taps, or no ring
            if mode == _ROUTE_NOBODY:
                self._seq = seq
                return envelope
            if mode == _ROUTE_GENERAL:
                self._deliver(subs, envelope)
            else:  # a where predicate to ask, or a block subscription's room to check
                self._deliver(self._targets(subs, mode, envelope), envelope)
            return envelope
        # Only ring subscriptions: this is the hot path.
        self._seq = seq
        pos = self._ring_pos
        self._ring[pos & self._ring_mask] = envelope
        self._ring_pos = pos = pos + 1
        if pos > self._ring_attn:
            future = self._ring_future
            if future is not None and pos <= self._ring_lag_at and not self._ring_waiting:
                # The common case, inlined: wake the consumers parked on the future.
                self._ring_future = None
                self._ring_attn = self._ring_lag_at
                try:
                    future.set_result(None)
                except asyncio.InvalidStateError:  # a waiter's cancellation cancelled it
                    pass
                except RuntimeError:  # its loop is closed: nobody waits on it any more
                    if not future.get_loop().is_closed():
                        raise
            else:
                self._ring_attention(pos)
        return envelope

    def _deliver(self, targets: Iterable[_QueueSubscription[T]], envelope: Envelope[T]) -> None:
        """Commit ``envelope``'s seq, then enqueue it into the ring and ``targets`` (already
        selected) and run the taps."""
        self._seq = envelope.seq
        if self._ring_subs:
            pos = self._ring_pos
            self._ring[pos & self._ring_mask] = envelope
            self._ring_pos = pos = pos + 1
            if pos > self._ring_attn:
                self._ring_attention(pos)
        for sub in targets:
            queue = sub._queue
            if len(queue) >= sub._hwm and not sub._grow():  # (the mark is <= the capacity)
                continue
            queue.append(envelope)
            if sub._waiters:
                sub._wake()
        if self._taps:
            self._run_taps(envelope)

    def _run_taps(self, envelope: Envelope[T]) -> None:
        """Call every tap with ``envelope``. A publish made by a tap is delivered at once, but
        reaches the taps only after every tap has seen ``envelope``: each tap sees envelopes
        in seq order."""
        if self._tapping:
            self._tap_backlog.append((envelope, self._taps))  # the taps at its publish
            return
        self._tapping = True
        try:
            for tap in self._taps:
                try:
                    tap(envelope)
                except Exception:
                    _log.exception("bus_tap_failed", tap=repr(tap), seq=envelope.seq)
            if self._tap_backlog:
                self._run_tap_backlog()
        except BaseException:
            # Cut short (a tap raised through the guard): what taps published was delivered,
            # but no later publish may hand it to the taps out of order.
            self._tap_backlog.clear()
            raise
        finally:
            self._tapping = False

    def _run_tap_backlog(self) -> None:
        """Run the taps on what taps published, oldest first (``_run_taps`` is running)."""
        backlog = self._tap_backlog
        while backlog:
            envelope, taps = backlog.popleft()
            for tap in taps:
                try:
                    tap(envelope)
                except Exception:
                    _log.exception("bus_tap_failed", tap=repr(tap), seq=envelope.seq)

    def publish_envelope(self, envelope: Envelope[T], *, keep_seq: bool = False) -> Envelope[T]:
        """Deliver an envelope stamped elsewhere (a session log, another process).

        It keeps the envelope's ``event_id``, ``ts_ns``, ``kind``, correlation and causation
        ids, ``origin`` and ``replayed`` flag, and goes through the same filters, overflow
        policies and taps as :meth:`publish`.

        :param keep_seq: keep ``envelope.seq`` as well. The bus's sequence then jumps to it,
            so it must be greater than the last ``seq`` handed out; this is the one way a
            bus's ``seq`` can have gaps (a replay of a lossy log). With ``False`` (default)
            the envelope is copied with the bus's next ``seq``.
        :returns: the envelope delivered (the same object when ``keep_seq`` is true).
        :raises ValueError: if ``keep_seq`` is true and ``envelope.seq`` is not greater than
            the bus's last ``seq``.
        :raises anyio.ClosedResourceError, anyio.WouldBlock, RuntimeError, TypeError: as
            :meth:`publish` (the envelope's ids are checked as publish checks its arguments:
            a ``TypeError`` if one is not text).
        """
        if self._owner != get_ident():
            self._guard("publish_envelope")
        if not isinstance(envelope, Envelope):
            raise TypeError(f"envelope must be an Envelope, got {type(envelope).__name__}")
        # Exact str ids pass here, as in publish; anything else gets the full check.
        correlation_id, causation_id = envelope.correlation_id, envelope.causation_id
        if (
            envelope.event_id.__class__ is not str
            or (correlation_id is not None and correlation_id.__class__ is not str)
            or (causation_id is not None and causation_id.__class__ is not str)
        ):
            _check_envelope_ids(envelope)
        route = self._routes.get(type(envelope.event))
        if route is None:
            if isinstance(envelope.event, Envelope):  # (_route's hint would name this method)
                raise TypeError("envelope.event must be an event, not an Envelope")
            route = self._route(type(envelope.event))
        if keep_seq:
            if envelope.seq <= self._seq:
                raise ValueError(
                    f"envelope.seq must be greater than the bus's last seq {self._seq}, "
                    f"got {envelope.seq}"
                )
        else:
            envelope = msgspec.structs.replace(envelope, seq=self._seq + 1)
        targets = self._targets(route[1], route[2], envelope)
        # The seq may jump: the id prefix must follow before a tap can publish.
        self._id_high = f"{self._id_prefix}{envelope.seq >> 12:011x}"
        self._deliver(targets, envelope)
        return envelope

    def add_tap(self, tap: Callable[[Envelope[T]], object]) -> Callable[[], None]:
        """Call ``tap(envelope)`` synchronously inside every successful publish.

        A tap runs on the publisher's task, after the envelope was enqueued into the
        subscriptions, for every envelope regardless of filters; it never lags and needs no
        task. It adds its own cost to every publish, so keep it short (the audit trail's
        ``inline`` mode is one). An exception raised by a tap is logged (``bus_tap_failed``)
        and does not reach the publisher.

        Every tap sees envelopes in ``seq`` order. A tap may publish: that envelope is
        delivered to the subscriptions at once, but reaches the taps (those there when it was
        published, as always) only after the envelope being tapped has reached them all.

        :returns: a function that removes the tap (idempotent).
        :raises TypeError: if ``tap`` is not callable.
        """
        if not callable(tap):
            raise TypeError(f"tap must be callable, got {type(tap).__name__}")
        self._taps = (*self._taps, tap)
        self._routes = {}

        def remove() -> None:
            self._taps = tuple(t for t in self._taps if t is not tap)
            self._routes = {}

        return remove

    def _targets(
        self, subs: Sequence[_QueueSubscription[T]], mode: int, envelope: Envelope[T]
    ) -> Sequence[_QueueSubscription[T]]:
        """The queue subscriptions of a route (``subs``) that ``envelope`` goes to: without
        those whose ``where`` refuses it. Raises WouldBlock, before anything is enqueued, if a
        ``block`` one among them is full."""
        if mode == _ROUTE_SELECT:
            routes, seq = self._routes, self._seq
            selected = []
            sub = None
            try:  # a loop, not a comprehension: cheaper in 3.11, and it knows whose predicate
                for sub in subs:
                    if sub._where is None or sub._where(envelope):
                        selected.append(sub)
            except Exception as exc:
                if sub is not None:
                    exc.add_note(f"raised by the where predicate of subscription {sub._name!r}")
                raise
            subs = selected
            if self._routes is not routes or self._seq != seq:
                subs = self._after_predicates(selected, seq)
        elif mode != _ROUTE_ROOM:
            return subs
        for s in subs:
            if s._policy == _BLOCK and len(s._queue) >= s._max:
                raise WouldBlock(f"subscription {s._name!r} is full (overflow='block')")
        return subs

    def _after_predicates(
        self, subs: list[_QueueSubscription[T]], seq: int
    ) -> list[_QueueSubscription[T]]:
        """The selection ``subs`` after a ``where`` predicate changed the bus (any subscribe,
        close or tap change resets the routes; a publish moves the seq).

        A closed bus refuses the publish as a publish after close would be refused. A nested
        publish took the seq this publish had stamped, so this one is abandoned (the nested
        one stands). Subscriptions closed meanwhile get nothing: a closed queue holds no
        envelope.
        """
        if self._closed:
            raise ClosedResourceError("the bus is closed")
        if self._seq != seq:
            raise RuntimeError(
                "a where predicate published to this bus; predicates must not publish, "
                "so this event was not published"
            )
        return [s for s in subs if s in self._queue_subs]

    async def apublish(
        self,
        event: T,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Envelope[T]:
        """Like :meth:`publish`, but wait while a matching ``block`` subscription is full.

        Once every matching ``block`` subscription has room it stamps and enqueues to all
        at once, so ``seq`` order is enqueue order.

        :returns: the envelope.
        :raises anyio.ClosedResourceError: if the bus is closed, also while waiting.

        Cancel safety: if cancelled, the event was not published. It yields to the scheduler
        at least once every 64 calls (and whenever it waits), so a loop of ``apublish`` calls
        lets consumers run. A consumer that ``apublish``-es into a full ``block``
        subscription it reads itself waits forever: publish from consumers with
        :meth:`publish` or use a drop policy there.
        """
        if self._apublish_budget > 1:  # no yield due: try at once, without _when_room's frame
            try:
                envelope = self.publish(
                    event, correlation_id=correlation_id, causation_id=causation_id
                )
            except WouldBlock:
                pass  # full: _when_room tries again, then waits for room
            else:
                self._apublish_budget -= 1
                return envelope
        return await self._when_room(
            lambda: self.publish(event, correlation_id=correlation_id, causation_id=causation_id)
        )

    async def apublish_envelope(
        self, envelope: Envelope[T], *, keep_seq: bool = False
    ) -> Envelope[T]:
        """Like :meth:`publish_envelope`, but wait while a matching ``block`` subscription
        is full, exactly as :meth:`apublish` does.

        :returns: the envelope delivered.
        :raises anyio.ClosedResourceError: if the bus is closed, also while waiting.
        :raises ValueError, TypeError: as :meth:`publish_envelope`.
        """
        return await self._when_room(lambda: self.publish_envelope(envelope, keep_seq=keep_seq))

    async def _when_room(self, publish: Callable[[], Envelope[T]]) -> Envelope[T]:
        """Call ``publish`` until it stops raising WouldBlock; the body of the a-variants."""
        self._apublish_budget -= 1
        if self._apublish_budget <= 0:
            self._apublish_budget = COOPERATIVE_BUDGET
            await _checkpoint(self)
        while True:
            try:
                return publish()
            except WouldBlock:
                space = self._space
                if space is None:
                    space = self._space = anyio.Event()
                await space.wait()
                self._apublish_budget = COOPERATIVE_BUDGET

    def _notify_space(self) -> None:
        space = self._space
        if space is not None:
            self._space = None
            space.set()

    def publish_threadsafe(
        self,
        event: T,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Envelope[T]:
        """Publish from any thread: hand the publish to the bus's loop and wait for it.

        On the loop's own thread it simply calls :meth:`publish`, which does not check that
        the loop still runs (after the run ended, on that thread, nothing can receive the
        envelope any more: close the bus with its loop, e.g. ``async with EventBus()``).

        :returns: the envelope.
        :raises anyio.RunFinishedError: if called from another thread and the bus's loop has
            stopped or closed (it never hangs on a stopped loop).
        :raises RuntimeError: if the bus has not been used inside an event loop yet, so it
            has no loop to hand the publish to.
        :raises: whatever :meth:`publish` raises on the loop (``ClosedResourceError``,
            ``WouldBlock``, ...).
        """
        if get_ident() == self._thread_id:
            return self.publish(event, correlation_id=correlation_id, causation_id=causation_id)
        token = self._token
        if token is None:
            raise RuntimeError(
                "publish_threadsafe() needs the bus's event loop: use the bus inside a running "
                "event loop first (subscribe, publish or async with)"
            )

        def call() -> Envelope[T]:
            return self.publish(event, correlation_id=correlation_id, causation_id=causation_id)

        if self._loop is None:
            return anyio.from_thread.run_sync(call, token=token)
        result: Envelope[T] = _run_on_asyncio_loop(self._loop, call)
        return result

    # -- causation ---------------------------------------------------------------------------

    @contextmanager
    def caused_by(self, envelope: Envelope[Any]) -> Iterator[None]:
        """Within this block, publishes default their ids to descend from ``envelope``.

        A publish that does not give them gets ``causation_id = envelope.event_id`` and
        ``correlation_id = envelope.correlation_id or envelope.event_id`` (a root event starts
        a correlation). Explicit arguments always win. The scope is a context variable: it
        follows the current task (and threads started with a copied context), applies to any
        bus, and nests.

        :raises TypeError: on entering the block, if ``envelope`` is not an :class:`Envelope`
            or one of its ids is not text (as :meth:`publish` refuses such ids).
        """
        if not isinstance(envelope, Envelope):
            raise TypeError(f"envelope must be an Envelope, got {type(envelope).__name__}")
        _check_envelope_ids(envelope)
        global _causation_in_use
        _causation_in_use = True
        token = _cause.set(envelope)
        try:
            yield
        finally:
            _cause.reset(token)

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the bus. Synchronous and idempotent.

        Publishing and subscribing then raise :exc:`anyio.ClosedResourceError`; waiting
        ``apublish`` calls raise it too. Each subscription first yields everything it still
        holds, then raises :exc:`anyio.EndOfStream`, so ``async for`` loops end.
        """
        if self._closed:
            return
        self._closed = True
        self._owner = None
        self._routes = {}
        self._notify_space()
        for sub in self._subs:
            if sub._waiters:
                sub._wake()
        self._wake_ring()

    async def __aenter__(self) -> EventBus[T]:
        if self._thread_id is None:
            self._bind()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()

    def statistics(self) -> BusStatistics:
        """Return a frozen snapshot of the bus's counters (see :class:`BusStatistics`)."""
        return BusStatistics(
            published=self._seq, open_subscriptions=len(self._subs), closed=self._closed
        )


def _check_ids(correlation_id: object, causation_id: object, owner: str = "") -> None:
    """Refuse ids that are not text: an envelope carries them into audit stores and onto the
    wire, where anything else fails later and far away (a verify, a sink's insert). ``owner``
    prefixes the names in the message (``"envelope."``)."""
    for name, value in (("correlation_id", correlation_id), ("causation_id", causation_id)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{owner}{name} must be a str or None, got {type(value).__name__}")


def _check_envelope_ids(envelope: Envelope[Any]) -> None:
    """Refuse an envelope whose ids are not text. Decoded envelopes were validated by msgspec,
    one built or replaced by hand was not; as a cause (``caused_by``, a ``track_causation``
    consumer) its ids become those of later publishes, past publish's own check."""
    if not isinstance(envelope.event_id, str):
        raise TypeError(f"envelope.event_id must be a str, got {type(envelope.event_id).__name__}")
    if envelope.correlation_id is not None or envelope.causation_id is not None:
        _check_ids(envelope.correlation_id, envelope.causation_id, "envelope.")


def _check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum`` (not a bool); the project's one check of sizes
    and counts: TypeError for a wrong type, ValueError below the minimum, both naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_buffer_size(value: object) -> int:
    return _check_positive_int("max_buffer_size", value)


def _check_kinds(kinds: Iterable[type | str]) -> tuple[type | str, ...]:
    if isinstance(kinds, str | type):
        kinds = (kinds,)
    try:
        result = tuple(kinds)
    except TypeError:
        raise TypeError(
            "kinds must be an event class, a tag string or an iterable of them, "
            f"got {type(kinds).__name__}"
        ) from None
    if not result:
        raise ValueError("kinds must not be empty (pass None for every kind)")
    for k in result:
        if not (isinstance(k, str) or (isinstance(k, type) and issubclass(k, msgspec.Struct))):
            raise TypeError(f"kinds must hold event classes or tag strings, got {k!r}")
    return result


def _run_on_asyncio_loop(loop: asyncio.AbstractEventLoop, func: Callable[[], Any]) -> Any:
    """Run ``func`` on ``loop`` from another thread; never hang on a stopped loop.

    anyio's ``from_thread`` waits forever when an asyncio loop is stopped but not closed, since
    the callback is queued and never run. Here the caller polls: if the loop is no longer
    running and the callback has not started, it is cancelled and the call fails.
    """
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(func())
        except BaseException as exc:
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    if loop.is_closed() or not loop.is_running():
        raise anyio.RunFinishedError
    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:  # closed in between
        raise anyio.RunFinishedError from None
    while True:
        try:
            return future.result(timeout=0.05)
        except concurrent.futures.TimeoutError:
            if not loop.is_running() and future.cancel():
                raise anyio.RunFinishedError from None
