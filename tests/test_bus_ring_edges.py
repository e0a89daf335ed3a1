"""Edge cases of the shared ring that serves unfiltered ``drop_oldest`` subscriptions.

The ring path has its own receive fast path (a cursor, a high-water mark, a budget bound),
its own parking (one shared asyncio future, or a list of parked trio tasks) and its own lag
bookkeeping. Each test here drives one of those corners with real tasks and checks what a
private queue would guarantee: nothing lost, nothing delivered twice, exact statistics and
logs, and a consumer that always lets other tasks run.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import msgspec
import pytest
from anyio import ClosedResourceError, EndOfStream, WouldBlock
from structlog.testing import capture_logs
from test_bus_threads import abandon_a_parked_receive

from eventbus import Envelope, EventBus, Subscription
from eventbus.testing import assert_empty, assert_received

pytestmark = pytest.mark.anyio


class Ping(msgspec.Struct, frozen=True, tag="ping"):
    n: int = 0


class Pong(msgspec.Struct, frozen=True, tag="pong"):
    n: int = 0


def drain(sub: Subscription[Any]) -> list[int]:
    """Every seq ``sub`` holds now, taken without waiting."""
    seqs = []
    while True:
        try:
            seqs.append(sub.receive_nowait().seq)
        except (WouldBlock, EndOfStream):
            return seqs


def lag_logs(logs: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, int | None]]:
    return [
        (e["event"], e["name"], e.get("lagged"))
        for e in logs
        if e["event"] in ("subscription_lagged", "subscription_lag_recovered")
    ]


# -- cancellation of parked receivers ---------------------------------------------------------


@pytest.mark.parametrize("order", ["cancel_then_publish", "publish_then_cancel"])
@pytest.mark.parametrize("doomed_receivers", [1, 3])
async def test_cancelling_parked_receivers_around_a_publish_loses_and_duplicates_nothing(
    order: str, doomed_receivers: int
) -> None:
    bus = EventBus[Ping]()
    doomed_sub, bystander_sub = bus.subscribe(), bus.subscribe()
    doomed_got: list[int] = []
    bystander_got: list[int] = []

    async def receive_into(sub: Subscription[Ping], got: list[int], n: int) -> None:
        for _ in range(n):
            got.append((await sub.receive()).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_into, bystander_sub, bystander_got, 2)
            async with anyio.create_task_group() as doomed:
                for _ in range(doomed_receivers):
                    doomed.start_soon(receive_into, doomed_sub, doomed_got, 1)
                await anyio.wait_all_tasks_blocked()
                # No checkpoint between the two: the waiters have not run yet either way.
                if order == "cancel_then_publish":
                    doomed.cancel_scope.cancel()
                    bus.publish(Ping())
                else:
                    bus.publish(Ping())
                    doomed.cancel_scope.cancel()
            await anyio.wait_all_tasks_blocked()
            bus.publish(Ping())
    # A woken receiver may have taken seq 1 before its cancellation landed (trio), or not
    # (asyncio): either way each envelope is delivered exactly once.
    assert sorted(doomed_got + drain(doomed_sub)) == [1, 2]
    assert bystander_got == [1, 2]
    assert doomed_sub.statistics().delivered == 2
    assert doomed_sub.statistics().lagged == 0


async def test_a_shielded_receive_is_not_interrupted_when_another_consumer_is_cancelled() -> None:
    # A task whose scope was cancelled drains in a shielded finally block (a common shutdown
    # pattern): its receive must wait for the next envelope, whatever happens to the others.
    bus = EventBus[Ping]()
    doomed_sub, draining_sub = bus.subscribe(), bus.subscribe()
    drained: list[int] = []
    draining_error: list[BaseException] = []

    async def drain_on_cancel(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    task_status.started()
                    try:
                        drained.append((await draining_sub.receive()).seq)
                    except BaseException as exc:
                        draining_error.append(exc)
                        raise

    async def doomed_consumer() -> None:
        await doomed_sub.receive()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(drain_on_cancel)
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(doomed_consumer)
                await anyio.wait_all_tasks_blocked()
                doomed.cancel_scope.cancel()
            await anyio.wait_all_tasks_blocked()
            bus.publish(Ping())
    assert draining_error == []
    assert drained == [1]


async def test_receives_cancelled_on_a_quiet_bus_leave_nothing_behind() -> None:
    # A consumer polling with a timeout on a bus where nothing happens must not accumulate
    # state per timed-out receive (the next publish would also have to walk it all).
    bus = EventBus[Ping]()
    sub = bus.subscribe()

    async def receive_cancelled() -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await sub.receive()
        assert scope.cancelled_caught

    for _ in range(100):  # warm up
        await receive_cancelled()
    gc.collect()
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        for _ in range(4000):
            await receive_cancelled()
        gc.collect()  # (cancellations leave reference cycles behind; they are not the point)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - baseline < 16 * 1024
    bus.publish(Ping())
    assert sub.receive_nowait().seq == 1


# -- several receivers, closing ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["receive", "async_for"])
async def test_several_receivers_of_one_ring_subscription_share_every_envelope_once(
    how: str,
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=1000)
    got: list[list[int]] = [[], [], [], []]

    async def receiver(mine: list[int]) -> None:
        if how == "receive":
            while True:
                try:
                    mine.append((await sub.receive()).seq)
                except EndOfStream:
                    return
        else:
            async for envelope in sub:
                mine.append(envelope.seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for mine in got:
                tg.start_soon(receiver, mine)
            for burst in (1, 2, 150, 1, 200, 3):  # bursts longer than the budget, and single
                await anyio.wait_all_tasks_blocked()
                for _ in range(burst):
                    bus.publish(Ping())
            bus.close()
    seqs = [seq for mine in got for seq in mine]
    assert sorted(seqs) == list(range(1, 358))
    assert all(mine == sorted(mine) for mine in got)
    assert sub.statistics().delivered == 357


async def test_closing_a_ring_subscription_fails_its_parked_receivers_and_no_one_elses() -> None:
    bus = EventBus[Ping]()
    closing, staying = bus.subscribe(), bus.subscribe()
    errors: list[type[BaseException]] = []
    got: list[int] = []

    async def receive_from_closing() -> None:
        try:
            await closing.receive()
        except ClosedResourceError as exc:
            errors.append(type(exc))

    async def receive_from_staying() -> None:
        got.append((await staying.receive()).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_from_closing)
            tg.start_soon(receive_from_closing)
            tg.start_soon(receive_from_staying)
            await anyio.wait_all_tasks_blocked()
            closing.close()
            await anyio.wait_all_tasks_blocked()
            assert errors == [ClosedResourceError, ClosedResourceError]
            assert got == []  # still parked: closing another subscription did not wake it
            bus.publish(Ping())
    assert got == [1]
    assert closing.statistics().delivered == 0
    assert closing.statistics().lagged == 0


@pytest.mark.parametrize("kinds", [None, [Ping]], ids=["ring", "queue"])
async def test_closing_the_bus_lets_parked_consumers_take_the_last_envelope_then_end(
    kinds: list[type] | None,
) -> None:
    bus = EventBus[Ping]()
    by_receive, by_async_for = bus.subscribe(kinds=kinds), bus.subscribe(kinds=kinds)
    received: list[int] = []
    iterated: list[int] = []
    ended: list[str] = []

    async def receive_until_the_end() -> None:
        while True:
            try:
                received.append((await by_receive.receive()).seq)
            except EndOfStream:
                ended.append("receive")
                return

    async def iterate() -> None:
        async for envelope in by_async_for:
            iterated.append(envelope.seq)
        ended.append("async for")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_until_the_end)
            tg.start_soon(iterate)
            await anyio.wait_all_tasks_blocked()
            bus.publish(Ping())
            bus.close()  # before the woken consumers ran
    assert received == iterated == [1]
    assert sorted(ended) == ["async for", "receive"]


# -- the ring changing size under parked and lagging consumers -------------------------------


async def test_ring_resizes_keep_every_window_while_consumers_are_parked_or_lagging() -> None:
    bus = EventBus[Ping]()
    parked = bus.subscribe(max_buffer_size=2)
    lagging = bus.subscribe(max_buffer_size=3)
    got: list[int] = []

    async def consumer() -> None:
        async for envelope in parked:
            got.append(envelope.seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            for _ in range(5):  # lagging loses 1, 2
                await anyio.wait_all_tasks_blocked()
                bus.publish(Ping())
            await anyio.wait_all_tasks_blocked()
            big = bus.subscribe(max_buffer_size=9)  # the ring grows from 4 to 16 slots
            for _ in range(3):
                bus.publish(Ping())  # the consumer takes each; lagging ends up with 6, 7, 8
                await anyio.wait_all_tasks_blocked()
            assert [e.seq for e in lagging._peek(10)] == [6, 7, 8]
            big.close()  # back to 4 slots
            small = bus.subscribe(max_buffer_size=1)
            bus.publish(Ping())
            await anyio.wait_all_tasks_blocked()
            lagging.close()  # 2 slots
            bus.publish(Ping())
            await anyio.wait_all_tasks_blocked()
            bus.close()
    assert got == list(range(1, 11))
    assert drain(small) == [10]
    assert small.statistics().lagged == 1
    stats = lagging.statistics()
    assert (stats.delivered, stats.lagged) == (0, 6)


# -- publish's route changing under a parked consumer ----------------------------------------


async def test_a_parked_ring_consumer_is_woken_whichever_path_publish_takes() -> None:
    bus = EventBus[Ping | Pong]()
    sub = bus.subscribe()
    got: list[int] = []
    tapped: list[int] = []
    donor = EventBus[Ping | Pong]()

    async def consumer() -> None:
        async for envelope in sub:
            got.append(envelope.seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            await anyio.wait_all_tasks_blocked()
            bus.publish(Ping())  # 1: only the ring, the inlined path
            await anyio.wait_all_tasks_blocked()
            remove_tap = bus.add_tap(lambda envelope: tapped.append(envelope.seq))
            bus.publish(Ping())  # 2: a tap, the general path
            await anyio.wait_all_tasks_blocked()
            remove_tap()
            bus.publish(Pong())  # 3: only the ring again
            await anyio.wait_all_tasks_blocked()
            pongs = bus.subscribe(kinds=[Pong])
            bus.publish(Pong())  # 4: a matching queue subscription
            await anyio.wait_all_tasks_blocked()
            bus.publish(Ping())  # 5: a queue subscription that does not match
            await anyio.wait_all_tasks_blocked()
            pongs.close()
            bus.publish_envelope(donor.publish(Ping()))  # 6
            await anyio.wait_all_tasks_blocked()
            jumped = msgspec.structs.replace(donor.publish(Ping()), seq=100)
            bus.publish_envelope(jumped, keep_seq=True)  # 100
            await anyio.wait_all_tasks_blocked()
            bus.publish(Ping())  # 101
            await anyio.wait_all_tasks_blocked()
            assert got == [1, 2, 3, 4, 5, 6, 100, 101]
            bus.close()
    assert tapped == [2]
    assert sub.statistics().delivered == 8


# -- causation -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["receive", "async_for"])
async def test_track_causation_on_a_ring_subscription_links_replies_on_every_receive_path(
    how: str,
) -> None:
    bus = EventBus[Ping | Pong]()
    requests = bus.subscribe(track_causation=True, max_buffer_size=4)
    replies = bus.subscribe(kinds=[Pong], max_buffer_size=1000)
    received: list[Envelope[Ping | Pong]] = []

    async def responder() -> None:
        async def handle(envelope: Envelope[Ping | Pong]) -> None:
            if isinstance(envelope.event, Ping):
                received.append(envelope)
                bus.publish(Pong(n=envelope.event.n))

        if how == "receive":
            while True:
                try:
                    envelope = await requests.receive()
                except EndOfStream:
                    return
                await handle(envelope)
        else:
            async for envelope in requests:
                await handle(envelope)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(responder)
            await anyio.wait_all_tasks_blocked()
            bus.publish(Ping(n=1))  # wakes a parked consumer
            await anyio.wait_all_tasks_blocked()
            for n in range(2, 12):  # a burst beyond the capacity: catch-up, then fast takes
                bus.publish(Ping(n=n))
            await anyio.wait_all_tasks_blocked()
            bus.close()
    # Ping 1 woke it; of the burst 2..11 it kept the last 4 (its capacity).
    assert [e.event.n for e in received] == [1, 8, 9, 10, 11]
    assert replies.statistics().buffered == 5
    pongs = [replies.receive_nowait() for _ in range(5)]
    for request, reply in zip(received, pongs, strict=True):
        assert reply.causation_id == request.event_id
        assert reply.correlation_id == (request.correlation_id or request.event_id)


# -- lag logs --------------------------------------------------------------------------------


async def test_a_parked_ring_consumer_lag_is_logged_once_per_burst() -> None:
    bus = EventBus[Ping]()
    small = bus.subscribe(max_buffer_size=2, name="small")
    roomy = bus.subscribe(max_buffer_size=100, name="roomy")
    got: list[int] = []

    async def consumer() -> None:
        async for envelope in small:
            got.append(envelope.seq)

    async def idle_consumer() -> None:
        async for _ in roomy:
            pass

    with anyio.fail_after(5), capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            tg.start_soon(idle_consumer)
            await anyio.wait_all_tasks_blocked()
            for _ in range(6):  # one burst, published before the consumers run: loses 4
                bus.publish(Ping())
            assert lag_logs(logs) == [("subscription_lagged", "small", None)]
            assert small.statistics().lagged == 4
            await anyio.wait_all_tasks_blocked()
            assert got == [5, 6]
            assert lag_logs(logs)[1:] == [("subscription_lag_recovered", "small", 4)]
            bus.publish(Ping())  # no loss: no log
            await anyio.wait_all_tasks_blocked()
            for _ in range(3):  # a second burst: loses 1
                bus.publish(Ping())
            await anyio.wait_all_tasks_blocked()
            bus.close()
    assert got == [5, 6, 7, 9, 10]
    assert lag_logs(logs) == [
        ("subscription_lagged", "small", None),
        ("subscription_lag_recovered", "small", 4),
        ("subscription_lagged", "small", None),
        ("subscription_lag_recovered", "small", 1),
    ]
    stats = small.statistics()
    assert (stats.delivered, stats.lagged, stats.buffered, stats.high_water_mark) == (5, 5, 0, 2)


# -- statistics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kinds",
    [
        pytest.param(None, id="ring"),
        pytest.param([Ping], id="queue"),
    ],
)
async def test_a_closed_subscription_still_reports_the_high_water_mark_it_reached(
    kinds: list[type] | None,
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=8, kinds=kinds)
    for _ in range(5):
        bus.publish(Ping())
    assert sub.statistics().high_water_mark == 5
    sub.close()
    assert sub.statistics().high_water_mark == 5


# -- the cooperative budget -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["receive", "async_for"])
@pytest.mark.parametrize("replies_per_envelope", [1, 2], ids=["full", "lagging"])
async def test_a_consumer_of_an_always_full_ring_subscription_lets_other_tasks_run(
    how: str, replies_per_envelope: int
) -> None:
    # The consumer republishes what it receives, so its subscription is never empty (and with
    # two replies per envelope it lags all the time, each take a catch-up): only the budget
    # makes it yield.
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=1 if replies_per_envelope == 2 else 8)
    bus.publish(Ping())
    ticks = 0
    ticks_seen: set[int] = set()
    takes = 64 * 20

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async def consume() -> None:
        if how == "receive":
            for _ in range(takes):
                await sub.receive()
                ticks_seen.add(ticks)
                for _ in range(replies_per_envelope):
                    bus.publish(Ping())
        else:
            n = 0
            async for _ in sub:
                ticks_seen.add(ticks)
                for _ in range(replies_per_envelope):
                    bus.publish(Ping())
                n += 1
                if n == takes:
                    break

    with anyio.fail_after(5), capture_logs():  # (the lagging case logs every burst)
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await consume()
            tg.cancel_scope.cancel()
    # Without the budget the ticker never runs while the consumer loops ({0} or {1}).
    assert len(ticks_seen) >= takes // 64 // 2 // replies_per_envelope


# -- eventbus.testing on the ring -------------------------------------------------------------


async def test_testing_helpers_list_the_ring_window_after_overwrites_and_resizes() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=3, name="watched")
    for n in range(7):
        bus.publish(Ping(n=n))  # keeps 4, 5, 6 in a ring of 4 slots
    grown = bus.subscribe(max_buffer_size=20)  # 32 slots
    with pytest.raises(AssertionError, match=r"3 envelope\(s\) are buffered:") as info:
        assert_empty(sub)
    assert [line.split()[0] for line in str(info.value).splitlines()[1:]] == [
        "seq=5",
        "seq=6",
        "seq=7",
    ]
    with pytest.raises(
        AssertionError,
        match=r"received seq=5 .*Ping\(n=4\)\n  a match is buffered further on: seq=7 ",
    ):
        assert_received(sub, Ping(n=6))
    grown.close()  # back to 4 slots
    assert assert_received(sub, Ping(n=5)).seq == 6
    assert assert_received(sub, Ping(n=6)).seq == 7
    assert_empty(sub)


# -- event ids across seq jumps --------------------------------------------------------------


async def test_a_publish_from_a_tap_after_a_seq_jump_gets_an_id_from_its_own_seq() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    donor = EventBus[Ping]()

    def react(envelope: Envelope[Ping]) -> None:
        if envelope.event.n == 1:
            bus.publish(Ping(n=2))

    bus.add_tap(react)
    first = bus.publish(Ping(n=0))
    jumped = msgspec.structs.replace(donor.publish(Ping(n=1)), seq=10_000)
    bus.publish_envelope(jumped, keep_seq=True)
    last = bus.publish(Ping(n=3))
    envelopes = [sub.receive_nowait() for _ in range(4)]
    assert [e.seq for e in envelopes] == [1, 10_000, 10_001, 10_002]
    mine = [first, envelopes[2], last]  # the ones this bus stamped
    assert [e.event_id[-14:] for e in mine] == [f"{e.seq:014x}" for e in mine]
    assert [e.event_id for e in mine] == sorted(e.event_id for e in mine)


# -- a bus that outlives its event loop -------------------------------------------------------


@pytest.mark.parametrize("action", ["publish", "close_subscription", "close_bus", "trio_wakeup"])
def test_a_bus_whose_ring_consumer_was_abandoned_with_its_loop_works_in_the_next_one(
    action: str,
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    abandon_a_parked_receive(sub)

    async def reuse() -> None:
        with anyio.fail_after(5):
            await act()

    async def act() -> None:
        if action == "publish":
            assert bus.publish(Ping()).seq == 1
            assert drain(sub) == [1]
        elif action == "close_subscription":
            sub.close()
            assert sub.closed
        elif action == "close_bus":
            bus.close()
            assert drain(sub) == []
        else:
            other = bus.subscribe()
            async with anyio.create_task_group() as tg:
                tg.start_soon(other.receive)
                await anyio.wait_all_tasks_blocked()
                bus.publish(Ping())
            assert drain(sub) == [1]

    anyio.run(reuse, backend="trio" if action == "trio_wakeup" else "asyncio")
