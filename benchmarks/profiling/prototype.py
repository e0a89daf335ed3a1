"""Prototype of suggested changes, patched at run time (eventbus/ is not edited)."""

import asyncio
from threading import get_ident

import anyio.lowlevel
from anyio import ClosedResourceError, EndOfStream

from eventbus import _bus
from eventbus._envelope import Envelope


class FutureWaiter:
    """A one-shot wake-up: a bare asyncio future instead of anyio.Event (1.26 us to create)."""

    __slots__ = ("_f",)

    def __init__(self):
        self._f = asyncio.get_running_loop().create_future()

    def set(self):
        f = self._f
        if not f.done():
            f.set_result(None)

    def wait(self):
        return self._f


async def _receive_slow(self):
    if self._queue:
        await anyio.lowlevel.checkpoint()
        self._budget = 64
    while True:
        if self._queue:
            self._budget -= 1
            return self._take()
        if self._closed:
            raise ClosedResourceError
        if self._bus._closed:
            raise EndOfStream
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = FutureWaiter()
        await waiter.wait()
        self._budget = 64


async def __anext__(self):
    queue = self._queue
    if queue and self._budget and not self._slow_take:
        self._budget -= 1
        self._delivered += 1
        return queue.popleft()
    try:
        return await self._receive_slow()
    except EndOfStream:
        raise StopAsyncIteration from None


def apply(which):
    if "wake" in which:
        _bus.Subscription._receive_slow = _receive_slow
    if "anext" in which:
        _bus.Subscription.__anext__ = __anext__


_time_ns = _bus._time_ns
_cause = _bus._cause


def publish_lazy_id(self, event, *, correlation_id=None, causation_id=None):
    """As publish, but event_id is the shared bus prefix (stands in for a lazily built id),
    and the hwm update moves off the publish loop; everything else unchanged."""
    if self._thread_id != get_ident():
        self._wrong_thread("publish")
    if self._closed:
        raise ClosedResourceError
    route = self._routes.get(type(event))
    if route is None:
        route = self._route(type(event))
    if (correlation_id is None or causation_id is None) and (cause := _cause.get()) is not None:
        if causation_id is None:
            causation_id = cause.event_id
        if correlation_id is None:
            correlation_id = cause.correlation_id or cause.event_id
    seq = self._seq + 1
    envelope = Envelope(
        seq, self._id_prefix, _time_ns(), route[0], event, correlation_id, causation_id
    )
    targets = self._select(route[1], envelope) if route[2] else route[1]
    self._seq = seq
    for sub in targets:
        queue = sub._queue
        if len(queue) >= sub._max and not sub._overflow():
            continue
        queue.append(envelope)
        waiter = sub._waiter
        if waiter is not None:
            sub._waiter = None
            waiter.set()
    return envelope


_orig_apply = apply


def apply(which):
    _orig_apply(which)
    if "lean" in which:
        _bus.EventBus.publish = publish_lazy_id
