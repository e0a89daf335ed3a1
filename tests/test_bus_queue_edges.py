"""Edge cases of subscriptions with a private queue (``kinds``, ``where``, ``drop_newest``,
``block``): the cooperative budget, parking, cancellation, closing, routes and lag logs.

The default subscription reads the bus's shared ring (see ``test_bus_ring_edges.py``); every
test here runs on the queue paths instead, on both backends.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest
from anyio import ClosedResourceError, EndOfStream, WouldBlock
from structlog.testing import capture_logs

from eventbus import Envelope, EventBus, Subscription

pytestmark = pytest.mark.anyio


class Ping(msgspec.Struct, frozen=True, tag="ping"):
    n: int = 0


class Pong(msgspec.Struct, frozen=True, tag="pong"):
    n: int = 0


# Every kind of subscription that owns a private queue, as subscribe() keyword arguments.
QUEUE_SUBSCRIPTIONS: dict[str, dict[str, Any]] = {
    "kinds": {"kinds": [Ping]},
    "where": {"where": lambda e: True},
    "drop_newest": {"overflow": "drop_newest"},
    "block": {"overflow": "block"},
}

queue_kinds = pytest.mark.parametrize(
    "options", list(QUEUE_SUBSCRIPTIONS.values()), ids=list(QUEUE_SUBSCRIPTIONS)
)


async def take(sub: Subscription[Any], how: str) -> Envelope[Any]:
    """One envelope through ``receive()`` or ``__anext__`` (what ``async for`` calls)."""
    if how == "receive":
        return await sub.receive()
    return await sub.__anext__()


receive_paths = pytest.mark.parametrize("how", ["receive", "anext"])


# -- the cooperative budget -------------------------------------------------------------------


@queue_kinds
@receive_paths
async def test_a_queue_receive_yields_every_64_ready_envelopes_and_a_cancelled_yield_takes_nothing(
    options: dict[str, Any], how: str
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=1000, **options)
    for _ in range(300):
        bus.publish(Ping())
    # 64 ready envelopes are taken without a checkpoint: a cancelled scope does not stop them;
    # the next one yields first, and the cancellation lands there, taking nothing.
    with anyio.CancelScope() as scope:
        scope.cancel()
        seqs = [(await take(sub, how)).seq for _ in range(64)]
        await take(sub, how)
    assert scope.cancelled_caught
    assert seqs == list(range(1, 65))
    stats = sub.statistics()
    assert (stats.delivered, stats.buffered) == (64, 236)
    # Outside a cancelled scope the yield passes and the envelope is taken; from there the
    # budget is 64 again, counting that one: 63 more without a yield, then the next yield.
    assert (await take(sub, how)).seq == 65
    with anyio.CancelScope() as scope:
        scope.cancel()
        seqs = [(await take(sub, how)).seq for _ in range(63)]
        await take(sub, how)
    assert scope.cancelled_caught
    assert seqs == list(range(66, 129))
    stats = sub.statistics()
    assert (stats.delivered, stats.buffered) == (128, 172)
    assert (await take(sub, how)).seq == 129


@queue_kinds
@receive_paths
async def test_a_queue_receiver_that_had_to_wait_has_a_whole_budget_again(
    options: dict[str, Any], how: str
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=200, **options)
    for _ in range(60):
        bus.publish(Ping())
    for _ in range(60):
        await take(sub, how)  # 4 short of the budget: the queue is empty now
    seqs: list[int] = []
    scope = anyio.CancelScope()

    async def receiver() -> None:
        seqs.append((await take(sub, how)).seq)  # it waits: a yield, so the count restarts
        with scope:
            scope.cancel()
            for _ in range(64):  # 63 more without a yield, then the next yield
                seqs.append((await take(sub, how)).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            await anyio.wait_all_tasks_blocked()
            for _ in range(100):
                bus.publish(Ping())
    assert scope.cancelled_caught
    assert seqs == list(range(61, 125))
    assert sub.statistics().delivered == 124


@pytest.mark.parametrize(
    "options", [{}, *QUEUE_SUBSCRIPTIONS.values()], ids=["ring", *QUEUE_SUBSCRIPTIONS]
)
async def test_receive_nowait_takes_count_toward_the_budget_of_receive(
    options: dict[str, Any],
) -> None:
    # "At least once every 64 ready envelopes": a consumer mixing receive_nowait and receive
    # still yields every 64 takes, on the ring and on private queues alike.
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=300, **options)
    for _ in range(300):
        bus.publish(Ping())
    with anyio.CancelScope() as scope:
        scope.cancel()
        seqs = []
        for _ in range(64):
            seqs.append((await sub.receive()).seq)
            seqs.append(sub.receive_nowait().seq)
    assert scope.cancelled_caught
    assert seqs == list(range(1, 65))  # the 33rd receive came after 64 takes: it yielded
    assert (await sub.receive()).seq == 65


@queue_kinds
async def test_two_receivers_yielding_at_the_budget_with_one_envelope_ready_take_it_once(
    options: dict[str, Any],
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=100, **options)
    for _ in range(65):
        bus.publish(Ping())
    for _ in range(64):
        await sub.receive()  # the budget is spent: the next receive yields before it takes
    got: list[int] = []

    async def receiver() -> None:
        got.append((await sub.receive()).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            # Both yield at the budget before either takes; the second to resume must see
            # that the first took the only envelope, and wait.
            tg.start_soon(receiver)
            tg.start_soon(receiver)
            await anyio.wait_all_tasks_blocked()
            assert got == [65]
            bus.publish(Ping())
    assert sorted(got) == [65, 66]
    assert sub.statistics().delivered == 66


# -- parking, waking, cancelling --------------------------------------------------------------


@queue_kinds
@receive_paths
async def test_a_cancelled_parked_queue_receive_takes_nothing_and_leaves_nothing_behind(
    options: dict[str, Any], how: str
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(**options)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(take, sub, how)
            await anyio.wait_all_tasks_blocked()
            assert len(sub._waiters) == 3  # parked
            tg.cancel_scope.cancel()
    assert sub._waiters == []  # no stale waiter left for the next publish to wake
    bus.publish(Ping())
    bus.publish(Ping())
    assert [(await take(sub, how)).seq, (await take(sub, how)).seq] == [1, 2]
    assert sub.statistics().delivered == 2


@queue_kinds
@receive_paths
async def test_every_parked_receiver_of_a_queue_subscription_is_woken_and_each_gets_one(
    options: dict[str, Any], how: str
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(**options)
    got: list[int] = []

    async def receiver() -> None:
        got.append((await take(sub, how)).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(receiver)
            await anyio.wait_all_tasks_blocked()
            for _ in range(3):
                bus.publish(Ping())  # one at a time: each publish must wake a receiver
                await anyio.wait_all_tasks_blocked()
    assert sorted(got) == [1, 2, 3]


@queue_kinds
@receive_paths
async def test_a_cancelled_parked_queue_receiver_does_not_swallow_the_wakeup_of_another(
    options: dict[str, Any], how: str
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(**options)
    got: list[int] = []

    async def receiver() -> None:
        got.append((await take(sub, how)).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(receiver)
                await anyio.wait_all_tasks_blocked()
                doomed.cancel_scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert len(sub._waiters) == 1
            bus.publish(Ping())
    assert got == [1]


@queue_kinds
async def test_a_shielded_queue_receive_is_not_interrupted_when_another_receiver_is_cancelled(
    options: dict[str, Any],
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(**options)
    got: list[int] = []
    outer = anyio.CancelScope()

    async def shielded() -> None:
        # (its own deadline inside the shield, so a failure cannot hang the test)
        with outer, anyio.CancelScope(shield=True), anyio.fail_after(5):
            got.append((await sub.receive()).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(shielded)
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(sub.receive)
                await anyio.wait_all_tasks_blocked()
                assert len(sub._waiters) == 2
                doomed.cancel_scope.cancel()  # an unshielded receiver of the same queue
                outer.cancel()  # and the shielded one's own enclosing scope
            await anyio.wait_all_tasks_blocked()
            assert len(sub._waiters) == 1  # the shielded receiver is still parked
            bus.publish(Ping())
    assert got == [1]
    assert not outer.cancelled_caught


# -- closing ----------------------------------------------------------------------------------


@queue_kinds
@receive_paths
async def test_closing_a_queue_subscription_fails_every_parked_receiver(
    options: dict[str, Any], how: str
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(**options)
    other = bus.subscribe(**options)
    outcomes: list[str] = []

    async def receiver(s: Subscription[Ping]) -> None:
        try:
            await take(s, how)
        except ClosedResourceError:
            outcomes.append("closed")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(receiver, sub)
            tg.start_soon(receiver, other)
            await anyio.wait_all_tasks_blocked()
            sub.close()
            await anyio.wait_all_tasks_blocked()
            assert outcomes == ["closed", "closed"]  # the other subscription's waits on
            other.close()
    assert outcomes == ["closed"] * 3


@queue_kinds
@receive_paths
async def test_a_closed_queue_subscription_on_a_closed_bus_raises_closed_resource_error(
    options: dict[str, Any], how: str
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(**options)
    bus.publish(Ping())
    bus.close()
    sub.close()
    with pytest.raises(ClosedResourceError):
        await take(sub, how)
    with pytest.raises(ClosedResourceError):
        sub.receive_nowait()


@queue_kinds
async def test_closing_the_bus_lets_parked_queue_receivers_drain_it_then_end(
    options: dict[str, Any],
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(**options)
    got: list[int] = []
    ends: list[str] = []

    async def receiving() -> None:
        try:
            while True:
                got.append((await sub.receive()).seq)
                await anyio.lowlevel.checkpoint()
        except EndOfStream:
            ends.append("end_of_stream")

    async def iterating() -> None:
        async for envelope in sub:
            got.append(envelope.seq)
            await anyio.lowlevel.checkpoint()
        ends.append("stop")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receiving)
            tg.start_soon(iterating)
            await anyio.wait_all_tasks_blocked()
            for _ in range(5):
                bus.publish(Ping())
            bus.close()
    assert sorted(got) == [1, 2, 3, 4, 5]
    assert sorted(ends) == ["end_of_stream", "stop"]
    assert sub.statistics().delivered == 5


@queue_kinds
async def test_closing_a_queue_subscription_while_its_receiver_yields_at_the_budget(
    options: dict[str, Any],
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=100, **options)
    for _ in range(70):
        bus.publish(Ping())
    for _ in range(64):
        await sub.receive()
    outcome: list[str] = []

    async def receiver() -> None:
        try:
            await sub.receive()
        except ClosedResourceError:
            outcome.append("closed")

    async def closer() -> None:
        sub.close()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)  # it yields at the budget...
            tg.start_soon(closer)  # ...and the subscription is closed meanwhile
    # Whichever ran first, the receiver finds the subscription closed and takes nothing.
    assert outcome == ["closed"]
    stats = sub.statistics()
    assert (stats.delivered, stats.buffered) == (64, 0)


# -- statistics and lag logs --------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
async def test_a_woken_queue_receiver_logs_the_burst_it_lost_as_recovered(policy: str) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=2, overflow=policy, kinds=[Ping], name="slow")  # type: ignore[arg-type]
    got: list[int] = []

    async def receiver() -> None:
        got.append((await sub.receive()).seq)

    with anyio.fail_after(5), capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            await anyio.wait_all_tasks_blocked()
            for _ in range(5):  # it is woken by the first, but runs after the fifth
                bus.publish(Ping())
    assert got == ([4] if policy == "drop_oldest" else [1])
    assert [(log["event"], log.get("lagged")) for log in logs] == [
        ("subscription_lagged", None),
        ("subscription_lag_recovered", 3),
    ]
    stats = sub.statistics()
    assert (stats.delivered, stats.lagged, stats.buffered, stats.high_water_mark) == (1, 3, 1, 2)


async def test_a_queue_receiver_at_the_budget_logs_the_burst_it_lost_as_recovered() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=64, overflow="drop_newest", kinds=[Ping], name="slow")
    with capture_logs() as logs:
        for _ in range(64):
            bus.publish(Ping())
        for _ in range(64):
            await sub.receive()
        for _ in range(70):
            bus.publish(Ping())
        assert (await sub.receive()).seq == 65  # the budget's yield, then the take
    assert [(log["event"], log.get("lagged")) for log in logs] == [
        ("subscription_lagged", None),
        ("subscription_lag_recovered", 6),
    ]


async def test_statistics_of_a_block_subscription_fed_by_apublish_count_every_envelope() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=3, overflow="block", kinds=[Ping])
    got: list[int] = []

    async def consumer() -> None:
        async for envelope in sub:
            got.append(envelope.seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            for _ in range(200):
                await bus.apublish(Ping())
            await anyio.wait_all_tasks_blocked()
            stats = sub.statistics()
            bus.close()
    assert got == list(range(1, 201))
    assert (stats.delivered, stats.lagged, stats.buffered) == (200, 0, 0)
    assert 1 <= stats.high_water_mark <= 3


# -- routes: where + block + kinds on one event type ---------------------------------------------


@pytest.mark.parametrize(
    "publish", ["publish", "publish_envelope"], ids=["publish", "publish_envelope"]
)
async def test_where_block_and_kinds_on_one_route_are_all_or_nothing(publish: str) -> None:
    bus = EventBus[msgspec.Struct]()
    donor = EventBus[msgspec.Struct]()

    def send(event: msgspec.Struct) -> Envelope[msgspec.Struct]:
        if publish == "publish":
            return bus.publish(event)
        return bus.publish_envelope(donor.publish(event))

    ring = bus.subscribe()
    evens = bus.subscribe(where=lambda e: e.event.n % 2 == 0, max_buffer_size=5)
    lossless = bus.subscribe(kinds=[Ping], overflow="block", max_buffer_size=1)
    pongs = bus.subscribe(kinds=["pong"], overflow="drop_newest", max_buffer_size=1)
    send(Ping(n=0))
    with pytest.raises(WouldBlock):
        send(Ping(n=2))  # lossless is full: evens and the ring get nothing either
    assert send(Pong(n=4)).seq == 2  # not lossless's kind: it does not block
    assert send(Pong(n=6)).seq == 3  # pongs is full: drop_newest
    stats = [s.statistics() for s in (ring, evens, lossless, pongs)]
    assert [(s.buffered, s.lagged) for s in stats] == [(3, 0), (3, 0), (1, 0), (1, 1)]
    assert bus.statistics().published == 3
    assert lossless.receive_nowait().seq == 1
    assert send(Ping(n=1)).seq == 4  # room again; evens' where refuses it
    assert [e.seq for e in evens._peek(10)] == [1, 2, 3]


async def test_routes_follow_subscribe_close_and_tap_changes() -> None:
    bus = EventBus[Ping]()
    lossless = bus.subscribe(overflow="block", max_buffer_size=1)
    bus.publish(Ping(n=1))  # the route of Ping: a room check only
    with pytest.raises(WouldBlock):
        bus.publish(Ping(n=2))
    odds = bus.subscribe(where=lambda e: e.event.n % 2 == 1)  # now a where to ask as well
    with pytest.raises(WouldBlock):
        bus.publish(Ping(n=3))
    lossless.close()  # no block subscription left: nothing blocks any more
    assert bus.publish(Ping(n=3)).seq == 2
    assert bus.publish(Ping(n=4)).seq == 3
    assert lossless.statistics().buffered == 0  # a closed subscription gets nothing
    assert [e.event.n for e in odds._peek(10)] == [3]
    odds.close()
    assert bus.publish(Ping(n=5)).seq == 4  # nobody at all: it only takes a seq
    seen: list[int] = []
    remove = bus.add_tap(lambda e: seen.append(e.seq))
    assert bus.publish(Ping(n=5)).seq == 5
    remove()
    assert bus.publish(Ping(n=7)).seq == 6
    assert seen == [5]
    late = bus.subscribe(overflow="block", max_buffer_size=1, where=lambda e: e.event.n > 5)
    assert bus.publish(Ping(n=5)).seq == 7  # refused by its where: no room needed
    assert bus.publish(Ping(n=7)).seq == 8
    with pytest.raises(WouldBlock):
        bus.publish(Ping(n=9))
    assert [e.seq for e in late._peek(10)] == [8]


# -- where predicates that change the bus (they are documented side-effect free) ------------

SENDS = pytest.mark.parametrize(
    "send", ["publish", "publish_envelope", "publish_envelope_keep_seq", "apublish"]
)


async def _send(bus: EventBus[Ping], send: str, event: Ping) -> Envelope[Ping]:
    if send == "apublish":
        return await bus.apublish(event)
    if send == "publish":
        return bus.publish(event)
    # Stamped by a donor whose seq is ahead, so keep_seq=True jumps this bus's seq.
    donor = EventBus[Ping]()
    for _ in range(5):
        donor.publish(Ping())
    return bus.publish_envelope(donor.publish(event), keep_seq=send.endswith("keep_seq"))


@SENDS
async def test_a_where_predicate_that_publishes_abandons_the_outer_publish_not_the_seq(
    send: str,
) -> None:
    bus = EventBus[Ping]()
    ring = bus.subscribe()

    def publishes_once(envelope: Envelope[Ping]) -> bool:
        if envelope.event.n == 1:
            bus.publish(Ping(n=99))
        return True

    where = bus.subscribe(where=publishes_once)
    with pytest.raises(RuntimeError, match=r"^a where predicate published to this bus; "):
        await _send(bus, send, Ping(n=1))
    after = await _send(bus, send, Ping(n=2))
    got = [(e.seq, e.event.n) for e in ring._peek(10)]
    assert got == [(e.seq, e.event.n) for e in where._peek(10)]
    assert [n for _, n in got] == [99, 2]  # the nested publish stands, the outer one is gone
    assert got[1][0] == after.seq > got[0][0]  # strictly increasing: no seq handed out twice
    assert len({e.event_id for e in ring._peek(10)}) == 2
    assert bus.statistics().published == after.seq


@SENDS
async def test_a_subscription_closed_by_a_where_predicate_gets_nothing(send: str) -> None:
    bus = EventBus[Ping]()
    doomed = bus.subscribe(kinds=[Ping], name="doomed")
    closing = bus.subscribe(where=lambda e: doomed.close() or True)
    envelope = await _send(bus, send, Ping(n=1))
    assert doomed.statistics().buffered == 0  # closed queues hold nothing
    assert [e.seq for e in closing._peek(10)] == [envelope.seq]  # the others still get it


@SENDS
async def test_a_where_predicate_that_closes_the_bus_makes_the_publish_fail(send: str) -> None:
    bus = EventBus[Ping]()
    ring = bus.subscribe()
    bus.subscribe(where=lambda e: bus.close() or True)
    with pytest.raises(ClosedResourceError, match=r"^the bus is closed$"):
        await _send(bus, send, Ping(n=1))
    assert ring.statistics().buffered == 0
    assert bus.statistics().published == 0


@pytest.mark.parametrize("change", ["subscribe", "subscribe_ring", "tap"])
async def test_a_where_predicate_that_subscribes_or_adds_a_tap_does_not_disturb_the_publish(
    change: str,
) -> None:
    bus = EventBus[Ping]()
    added: list[Subscription[Ping]] = []
    tapped: list[int] = []

    def changes_once(envelope: Envelope[Ping]) -> bool:
        if envelope.event.n == 1:
            if change == "subscribe":
                added.append(bus.subscribe(kinds=[Ping]))
            elif change == "subscribe_ring":
                added.append(bus.subscribe())
            else:
                bus.add_tap(lambda e: tapped.append(e.seq))
        return True

    where = bus.subscribe(where=changes_once)
    first = bus.publish(Ping(n=1))
    second = bus.publish(Ping(n=2))
    assert [e.seq for e in where._peek(10)] == [first.seq, second.seq]
    if change == "subscribe":  # it did not exist when the publish began
        assert [e.seq for e in added[0]._peek(10)] == [second.seq]
    elif change == "subscribe_ring":  # documented: the shared ring is written after the ask
        assert [e.seq for e in added[0]._peek(10)] == [first.seq, second.seq]
    else:  # taps run after delivery, so the new one already sees the publish that added it
        assert tapped == [first.seq, second.seq]


@pytest.mark.parametrize("how", ["apublish", "apublish_envelope"])
async def test_apublish_into_a_where_and_block_mix_waits_then_delivers_to_all_at_once(
    how: str,
) -> None:
    bus = EventBus[Ping]()
    donor = EventBus[Ping]()
    evens = bus.subscribe(where=lambda e: e.event.n % 2 == 0, overflow="block", max_buffer_size=1)
    odds = bus.subscribe(where=lambda e: e.event.n % 2 == 1, overflow="block", max_buffer_size=1)
    watcher = bus.subscribe(kinds=[Ping])

    async def send(n: int) -> Envelope[Ping]:
        if how == "apublish":
            return await bus.apublish(Ping(n=n))
        return await bus.apublish_envelope(donor.publish(Ping(n=n)))

    await send(0)
    await send(1)  # both full now
    sent: list[int] = []

    async def publisher() -> None:
        sent.append((await send(2)).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(publisher)
            await anyio.wait_all_tasks_blocked()
            assert sent == []
            odds.receive_nowait()  # room for odds only: n=2 still waits for evens
            await anyio.wait_all_tasks_blocked()
            assert sent == []
            assert watcher.statistics().buffered == 2  # nothing enqueued anywhere meanwhile
            evens.receive_nowait()
    assert sent == [3]
    assert [e.seq for e in watcher._peek(10)] == [1, 2, 3]
    assert [e.seq for e in evens._peek(10)] == [3]


# -- causation --------------------------------------------------------------------------------


@queue_kinds
async def test_track_causation_on_a_queue_subscription_links_replies_on_every_receive_path(
    options: dict[str, Any],
) -> None:
    bus = EventBus[msgspec.Struct]()
    options = {**options, "kinds": [Ping]} if "kinds" not in options else options
    sub = bus.subscribe(max_buffer_size=200, track_causation=True, **options)
    replies: list[tuple[str | None, str]] = []

    def reply(received: Envelope[msgspec.Struct]) -> None:
        pong = bus.publish(Pong())
        replies.append((pong.causation_id, received.event_id))

    async def consumer() -> None:
        reply(await sub.receive())  # woken from a park
        reply(sub.receive_nowait())
        for _ in range(70):  # the ready path, then the budget's yield
            reply(await sub.receive())
        async for envelope in sub:
            reply(envelope)
            break

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            await anyio.wait_all_tasks_blocked()
            for _ in range(73):
                bus.publish(Ping())
    assert len(replies) == 73
    assert all(cause == received for cause, received in replies)
