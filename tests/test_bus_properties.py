"""Property-based tests: the lag invariant and ordering hold after every step.

A random sequence of subscribe / publish / receive / close operations runs against the bus and
against a tiny reference model of per-subscription queues. After every step, for every open
subscription::

    matched since subscribe == delivered + lagged + buffered

each subscription's delivered seqs are strictly increasing, and the bus agrees with the model
on exactly which envelopes every queue holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
import pytest
from anyio import ClosedResourceError, EndOfStream, WouldBlock
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

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


# -- the same model, with what the ring path special-cases ----------------------------------
#
# Capacities up to 9 (rings of 1 to 16 slots, resized as subscriptions come and go),
# track_causation, taps added and removed between publishes (they change publish's route),
# publish_envelope with seq jumps, the three ways to receive (receive_nowait, receive,
# async for), statistics of closed subscriptions, exact high-water marks and the lag logs.


@dataclass
class RichModel(Model):
    track: bool = False
    hwm: int = 0
    burst: int = 0  # lost since the consumer last received


@dataclass
class TapModel:
    remove: Any
    seqs: list[int] = field(default_factory=list)
    expected: list[int] = field(default_factory=list)
    removed: bool = False

    def record(self, envelope: Envelope[Any]) -> None:
        self.seqs.append(envelope.seq)


rich_subscribe_op = st.tuples(
    st.just("subscribe"),
    st.integers(1, 9),
    st.sampled_from(["drop_oldest"] * 4 + ["drop_newest", "block"]),
    st.sampled_from([None, None, None, (Red,), (Red, Blue)]),
    st.booleans(),
    st.booleans(),
)
rich_receive_op = st.tuples(
    st.just("receive"), st.integers(0, 7), st.sampled_from(["nowait", "receive", "anext"])
)
envelope_op = st.tuples(st.just("publish_envelope"), st.integers(0, 5000), st.booleans())
tap_op = st.just(("add_tap",)) | st.tuples(st.just("remove_tap"), st.integers(0, 3))
burst_op = st.tuples(st.just("burst"), st.integers(2, 12))
rich_operations = st.lists(
    st.one_of(
        rich_subscribe_op,
        publish_op,
        publish_op,
        publish_op,
        burst_op,
        rich_receive_op,
        rich_receive_op,
        rich_receive_op,
        close_op,
        envelope_op,
        tap_op,
    )
    | st.just(("close_bus",)),
    min_size=10,
    max_size=150,
)


def _lag_logs(logs: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (e["event"], e["name"], e.get("lagged"), e.get("max_buffer_size"))
        for e in logs
        if e["event"] in ("subscription_lagged", "subscription_lag_recovered")
    )


@pytest.mark.anyio
@settings(max_examples=200, deadline=None)
@given(rich_operations)
async def test_every_subscription_behaves_as_a_private_queue_whatever_path_serves_it(
    ops: list[tuple[Any, ...]],
) -> None:
    bus = EventBus[Any]()
    donor = EventBus[Any]()
    root = donor.publish(Red(n=-1))
    models: list[RichModel] = []
    taps: list[TapModel] = []
    published = 0
    id_prefix: str | None = None
    expected_logs: list[tuple[Any, ...]] = []
    with anyio.fail_after(5), capture_logs() as logs, bus.caused_by(root):
        cause: Envelope[Any] = root  # what a publish without ids descends from
        steps = (
            step
            for op in ops
            for step in ([("publish", Red, 0)] * op[1] if op[0] == "burst" else [op])
        )
        for op in steps:
            seen_logs = len(logs)
            expected_logs.clear()
            name = op[0]
            if name == "subscribe":
                _, cap, policy, kinds, even_only, track = op
                where = (lambda e: e.event.n % 2 == 0) if even_only else None
                if bus.closed:
                    with pytest.raises(ClosedResourceError):
                        bus.subscribe(max_buffer_size=cap)
                    continue
                sub = bus.subscribe(
                    max_buffer_size=cap,
                    overflow=policy,
                    kinds=kinds,
                    where=where,
                    track_causation=track,
                )
                models.append(RichModel(sub, cap, policy, kinds, even_only, track=track))
            elif name in ("publish", "publish_envelope"):
                if name == "publish":
                    event = op[1](n=op[2])
                    seq = published + 1
                else:
                    event = Blue(n=op[1] % 10)
                    seq = published + 1 + op[1] if op[2] else published + 1
                probe = Envelope(seq, "", 0, "", event)
                open_models = [m for m in models if not m.sub.closed and m.matches(probe)]
                full_block = any(
                    m.policy == "block" and len(m.queue) == m.cap for m in open_models
                )
                try:
                    if bus.closed:
                        with pytest.raises(ClosedResourceError):
                            bus.publish(event)
                        continue
                    if name == "publish":
                        envelope = bus.publish(event)
                    else:
                        stamped = msgspec.structs.replace(
                            donor.publish(event), seq=seq, causation_id="elsewhere"
                        )
                        envelope = bus.publish_envelope(stamped, keep_seq=op[2])
                        assert envelope.event_id == stamped.event_id
                        assert envelope.causation_id == "elsewhere"
                except WouldBlock:
                    assert full_block
                    continue
                assert not full_block
                assert envelope.seq == seq
                published = seq
                if name == "publish":
                    # Ids: the bus id, then the seq as 14 hex digits, whatever jumps happened.
                    assert envelope.event_id[-14:] == f"{seq:014x}"
                    id_prefix = id_prefix or envelope.event_id[:-14]
                    assert envelope.event_id[:-14] == id_prefix
                    assert envelope.causation_id == cause.event_id
                    assert envelope.correlation_id == (cause.correlation_id or cause.event_id)
                for t in taps:
                    if not t.removed:
                        t.expected.append(seq)
                for m in open_models:
                    m.matched += 1
                    if len(m.queue) < m.cap:
                        m.queue.append(seq)
                        m.hwm = max(m.hwm, len(m.queue))
                        continue
                    if m.policy == "drop_oldest":
                        m.queue.pop(0)
                        m.queue.append(seq)
                    m.lagged += 1
                    if not m.burst:
                        expected_logs.append(("subscription_lagged", m.sub.name, None, m.cap))
                    m.burst += 1
            elif name == "receive":
                if not models:
                    continue
                m = models[op[1] % len(models)]
                how = op[2]
                if how != "nowait" and not m.queue and not m.sub.closed and not bus.closed:
                    how = "nowait"  # it would wait (one task only here): WouldBlock instead
                try:
                    if how == "nowait":
                        got = m.sub.receive_nowait()
                    elif how == "receive":
                        got = await m.sub.receive()
                    else:
                        got = await m.sub.__anext__()
                except WouldBlock:
                    assert how == "nowait"
                    assert not m.queue and not bus.closed and not m.sub.closed
                except EndOfStream:
                    assert how != "anext"
                    assert not m.queue and bus.closed and not m.sub.closed
                except StopAsyncIteration:
                    assert how == "anext"
                    assert not m.queue and bus.closed and not m.sub.closed
                except ClosedResourceError:
                    assert m.sub.closed
                else:
                    assert got.seq == m.queue.pop(0)
                    m.delivered.append(got.seq)
                    if m.burst:
                        expected_logs.append(
                            ("subscription_lag_recovered", m.sub.name, m.burst, None)
                        )
                        m.burst = 0
                    if m.track:
                        cause = got
            elif name == "close_sub":
                if models:
                    m = models[op[1] % len(models)]
                    m.sub.close()
                    m.queue.clear()
                    m.burst = 0
            elif name == "add_tap":
                tap = TapModel(remove=None)
                tap.remove = bus.add_tap(tap.record)
                taps.append(tap)
            elif name == "remove_tap":
                if taps:
                    tap = taps[op[1] % len(taps)]
                    tap.remove()
                    tap.removed = True
            else:
                bus.close()

            assert _lag_logs(logs[seen_logs:]) == sorted(expected_logs)
            assert bus.statistics().published == published
            assert bus.statistics().open_subscriptions == sum(not m.sub.closed for m in models)
            for t in taps:
                assert t.seqs == t.expected
            for m in models:
                assert m.delivered == sorted(set(m.delivered))
                stats = m.sub.statistics()
                assert stats.delivered == len(m.delivered)
                assert stats.lagged == m.lagged
                assert stats.buffered == len(m.queue)
                if m.sub.closed:  # what it held was discarded: neither delivered nor lagged
                    assert stats.high_water_mark <= m.cap
                    continue
                assert m.matched == stats.delivered + stats.lagged + stats.buffered
                assert stats.high_water_mark == m.hwm
                assert [e.seq for e in m.sub._peek(m.cap)] == m.queue
