"""Property-based tests: the lag invariant and ordering hold after every step.

A random sequence of subscribe / publish / receive / close operations runs against the bus and
against a tiny reference model of per-subscription queues. After every step, for every open
subscription::

    matched since subscribe == delivered + lagged + buffered

each subscription's delivered seqs are strictly increasing, and the bus agrees with the model
on exactly which envelopes every queue holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from anyio import ClosedResourceError, EndOfStream, WouldBlock
from hypothesis import given, settings
from hypothesis import strategies as st

from eventbus import Envelope, EventBus, Subscription


class Red(msgspec.Struct, frozen=True, tag="red"):
    n: int


class Blue(msgspec.Struct, frozen=True, tag="blue"):
    n: int


@dataclass
class Model:
    sub: Subscription[Any]
    cap: int
    policy: str
    kinds: tuple[type, ...] | None
    even_only: bool
    queue: list[int] = field(default_factory=list)
    matched: int = 0
    lagged: int = 0
    delivered: list[int] = field(default_factory=list)

    def matches(self, envelope: Envelope[Any]) -> bool:
        if self.kinds is not None and type(envelope.event) not in self.kinds:
            return False
        return not self.even_only or envelope.event.n % 2 == 0


subscribe_op = st.tuples(
    st.just("subscribe"),
    st.integers(1, 4),
    st.sampled_from(["drop_oldest", "drop_newest", "block"]),
    st.sampled_from([None, (Red,), (Blue,), (Red, Blue)]),
    st.booleans(),
)
publish_op = st.tuples(st.just("publish"), st.sampled_from([Red, Blue]), st.integers(0, 9))
receive_op = st.tuples(st.just("receive"), st.integers(0, 7))
close_op = st.tuples(st.just("close_sub"), st.integers(0, 7))
operations = st.lists(
    st.one_of(subscribe_op, publish_op, publish_op, publish_op, receive_op, receive_op, close_op)
    | st.just(("close_bus",)),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_lag_invariant_and_ordering_hold_after_every_step(ops: list[tuple[Any, ...]]) -> None:
    bus = EventBus[Any]()
    models: list[Model] = []
    published = 0
    for op in ops:
        name = op[0]
        if name == "subscribe":
            _, cap, policy, kinds, even_only = op
            if bus.closed:
                continue
            where = (lambda e: e.event.n % 2 == 0) if even_only else None
            sub = bus.subscribe(max_buffer_size=cap, overflow=policy, kinds=kinds, where=where)
            models.append(Model(sub, cap, policy, kinds, even_only))
        elif name == "publish":
            _, cls, n = op
            if bus.closed:
                continue
            event = cls(n=n)
            probe = Envelope(published + 1, "", 0, "", event)
            open_models = [m for m in models if not m.sub.closed and m.matches(probe)]
            full_block = any(m.policy == "block" and len(m.queue) == m.cap for m in open_models)
            try:
                envelope = bus.publish(event)
            except WouldBlock:
                assert full_block
                continue
            assert not full_block
            published += 1
            assert envelope.seq == published
            for m in open_models:
                m.matched += 1
                if len(m.queue) < m.cap:
                    m.queue.append(envelope.seq)
                elif m.policy == "drop_oldest":
                    m.queue.pop(0)
                    m.queue.append(envelope.seq)
                    m.lagged += 1
                else:
                    m.lagged += 1
        elif name == "receive":
            if not models:
                continue
            m = models[op[1] % len(models)]
            try:
                got = m.sub.receive_nowait().seq
            except WouldBlock:
                assert not m.queue and not bus.closed and not m.sub.closed
            except EndOfStream:
                assert not m.queue and bus.closed and not m.sub.closed
            except ClosedResourceError:
                assert m.sub.closed
            else:
                assert got == m.queue.pop(0)
                m.delivered.append(got)
        elif name == "close_sub":
            if models:
                m = models[op[1] % len(models)]
                m.sub.close()
                m.queue.clear()
        else:
            bus.close()

        assert bus.statistics().published == published
        assert bus.statistics().open_subscriptions == sum(not m.sub.closed for m in models)
        for m in models:
            assert m.delivered == sorted(set(m.delivered))
            if m.sub.closed:
                continue
            stats = m.sub.statistics()
            assert stats.delivered == len(m.delivered)
            assert stats.lagged == m.lagged
            assert stats.buffered == len(m.queue)
            assert m.matched == stats.delivered + stats.lagged + stats.buffered
            assert stats.high_water_mark <= m.cap
