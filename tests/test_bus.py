"""The broadcast bus, behaviour by behaviour (the spec is ``eventbus.__doc__``)."""

from __future__ import annotations

import time
import uuid

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


class LoudPing(Ping, frozen=True, tag="loud_ping"):
    pass


class Untagged(msgspec.Struct, frozen=True):
    n: int = 0


def drain(sub: Subscription[msgspec.Struct]) -> list[int]:
    seqs = []
    while True:
        try:
            seqs.append(sub.receive_nowait().seq)
        except WouldBlock:
            return seqs


# -- construction ---------------------------------------------------------------------------


def test_default_buffer_size_is_the_oxios_default() -> None:
    assert EventBus().max_buffer_size == 256


@pytest.mark.parametrize("size", [0, -1])
def test_buffer_size_below_one_is_rejected(size: int) -> None:
    with pytest.raises(ValueError, match=rf"^max_buffer_size must be >= 1, got {size}$"):
        EventBus(size)


def test_buffer_size_must_be_an_int() -> None:
    with pytest.raises(TypeError, match=r"^max_buffer_size must be an int, got float$"):
        EventBus(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^max_buffer_size must be an int, got bool$"):
        EventBus(True)


# -- publishing -----------------------------------------------------------------------------


async def test_publish_without_subscribers_is_not_an_error() -> None:
    bus = EventBus[Ping]()
    envelope = bus.publish(Ping())
    assert envelope.seq == 1
    assert bus.statistics().published == 1


async def test_envelope_is_stamped_once_and_shared_by_every_subscription() -> None:
    bus = EventBus[Ping]()
    first, second = bus.subscribe(), bus.subscribe()
    before = time.time_ns()
    envelope = bus.publish(Ping(n=7), correlation_id="c", causation_id="x")
    after = time.time_ns()
    assert first.receive_nowait() is envelope
    assert second.receive_nowait() is envelope
    assert envelope.event == Ping(n=7)
    assert envelope.kind == "ping"
    assert before <= envelope.ts_ns <= after
    assert (envelope.correlation_id, envelope.causation_id) == ("c", "x")
    assert (envelope.origin, envelope.replayed) == (None, False)


async def test_seq_is_bus_wide_from_one_without_gaps_and_ids_sort_in_publish_order() -> None:
    bus = EventBus[msgspec.Struct]()
    envelopes = [bus.publish(Ping() if i % 2 else Pong()) for i in range(300)]
    assert [e.seq for e in envelopes] == list(range(1, 301))
    ids = [e.event_id for e in envelopes]
    assert len(set(ids)) == 300
    assert ids == sorted(ids)


async def test_event_ids_of_two_buses_differ() -> None:
    assert EventBus[Ping]().publish(Ping()).event_id != EventBus[Ping]().publish(Ping()).event_id


async def test_kind_is_the_tag_or_the_class_name_of_an_untagged_struct() -> None:
    bus = EventBus[msgspec.Struct]()
    assert bus.publish(LoudPing()).kind == "loud_ping"
    assert bus.publish(Untagged()).kind == "Untagged"


async def test_publishing_something_that_is_not_a_struct_is_a_type_error() -> None:
    bus = EventBus[Ping]()
    with pytest.raises(TypeError, match=r"^event must be a msgspec.Struct instance, got dict$"):
        bus.publish({"n": 1})  # type: ignore[arg-type]
    assert bus.statistics().published == 0


async def test_publishing_an_envelope_as_an_event_is_a_type_error() -> None:
    # An Envelope is a Struct too: wrapping it in another envelope is never what was meant.
    bus = EventBus[msgspec.Struct]()
    sub = bus.subscribe(kinds=[Ping])
    envelope = EventBus[Ping]().publish(Ping(n=1))
    message = r"^event must be an event, not an Envelope: deliver an envelope with "
    for publish in (bus.publish, bus.publish_threadsafe):
        with pytest.raises(TypeError, match=message):
            publish(envelope)
    assert bus.statistics().published == 0
    assert bus.publish_envelope(envelope).event == Ping(n=1)  # the way to deliver one
    assert sub.statistics().buffered == 1


async def test_publish_envelope_refuses_an_envelope_wrapped_in_another() -> None:
    # The hint publish gives (use publish_envelope) would be wrong here: this is that call.
    bus = EventBus[msgspec.Struct]()
    inner = EventBus[Ping]().publish(Ping(n=1))
    wrapped = msgspec.structs.replace(inner, event=inner)
    with pytest.raises(TypeError, match=r"^envelope.event must be an event, not an Envelope$"):
        bus.publish_envelope(wrapped)
    assert bus.statistics().published == 0


async def test_subscription_sees_only_events_published_after_subscribe() -> None:
    bus = EventBus[Ping]()
    bus.publish(Ping(n=1))
    sub = bus.subscribe()
    bus.publish(Ping(n=2))
    assert sub.receive_nowait().event == Ping(n=2)
    with pytest.raises(WouldBlock):
        sub.receive_nowait()


async def test_receive_waits_for_the_next_publish() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    received: list[Envelope[Ping]] = []

    async def consumer() -> None:
        received.append(await sub.receive())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            await anyio.wait_all_tasks_blocked()
            envelope = bus.publish(Ping(n=3))
    assert received == [envelope]


# -- filters --------------------------------------------------------------------------------


async def test_kinds_filter_by_class_includes_subclasses() -> None:
    bus = EventBus[msgspec.Struct]()
    sub = bus.subscribe(kinds=[Ping])
    bus.publish(Ping())
    bus.publish(Pong())
    bus.publish(LoudPing())
    assert [e.kind for e in (sub.receive_nowait(), sub.receive_nowait())] == ["ping", "loud_ping"]
    with pytest.raises(WouldBlock):
        sub.receive_nowait()


async def test_kinds_filter_by_tag_string_is_exact() -> None:
    bus = EventBus[msgspec.Struct]()
    sub = bus.subscribe(kinds=["pong", "loud_ping"])
    for event in (Ping(), Pong(), LoudPing()):
        bus.publish(event)
    assert drain(sub) == [2, 3]


async def test_where_predicate_filters_envelopes() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(where=lambda e: e.event.n % 2 == 0)
    for n in range(6):
        bus.publish(Ping(n=n))
    assert drain(sub) == [1, 3, 5]


async def test_filtered_out_events_are_not_lag() -> None:
    bus = EventBus[msgspec.Struct]()
    sub = bus.subscribe(max_buffer_size=1, kinds=[Pong], where=lambda e: e.event.n > 0)
    for _ in range(10):
        bus.publish(Ping())
        bus.publish(Pong(n=0))
    bus.publish(Pong(n=1))
    stats = sub.statistics()
    assert (stats.lagged, stats.buffered, stats.delivered) == (0, 1, 0)


async def test_a_raising_predicate_propagates_and_enqueues_nothing() -> None:
    bus = EventBus[Ping]()
    plain = bus.subscribe()

    def boom(envelope: Envelope[Ping]) -> bool:
        raise LookupError("predicate failed")

    bus.subscribe(where=lambda e: True, name="fine")
    bus.subscribe(where=boom, name="buggy")
    with pytest.raises(LookupError, match="predicate failed") as caught:
        bus.publish(Ping())
    assert caught.value.__notes__ == ["raised by the where predicate of subscription 'buggy'"]
    assert plain.statistics().buffered == 0
    assert bus.statistics().published == 0


@pytest.mark.parametrize("name", ["correlation_id", "causation_id"])
@pytest.mark.parametrize("bad", [5, uuid.UUID(int=7), b"job-7"], ids=["int", "uuid", "bytes"])
async def test_ids_that_are_not_text_are_refused_before_anything_is_published(
    name: str, bad: object
) -> None:
    # They would reach audit stores and the wire, and fail there: a verify, a sink's insert.
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    message = rf"^{name} must be a str or None, got {type(bad).__name__}$"
    with pytest.raises(TypeError, match=message):
        bus.publish(Ping(), **{name: bad})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message):
        await bus.apublish(Ping(), **{name: bad})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message):
        await anyio.to_thread.run_sync(
            lambda: bus.publish_threadsafe(Ping(), **{name: bad})  # type: ignore[arg-type]
        )
    assert bus.statistics().published == 0
    assert sub.statistics().buffered == 0
    assert bus.publish(Ping(), **{name: "job-7"}).seq == 1  # text is fine


@pytest.mark.parametrize("name", ["correlation_id", "causation_id"])
async def test_publish_envelope_refuses_ids_that_are_not_text_as_publish_does(name: str) -> None:
    # An envelope built or replaced by hand is not validated by msgspec: the bus checks it.
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    stamped = EventBus[Ping]().publish(Ping())
    bad = msgspec.structs.replace(stamped, **{name: uuid.UUID(int=7)})
    message = rf"^envelope.{name} must be a str or None, got UUID$"
    for keep_seq in (False, True):
        with pytest.raises(TypeError, match=message):
            bus.publish_envelope(bad, keep_seq=keep_seq)
        with pytest.raises(TypeError, match=message):
            await bus.apublish_envelope(bad, keep_seq=keep_seq)
    assert bus.statistics().published == 0
    assert sub.statistics().buffered == 0
    assert bus.publish_envelope(stamped).seq == 1


async def test_ids_of_a_str_subclass_are_text_too() -> None:
    class JobId(str):
        pass

    bus = EventBus[Ping]()
    envelope = bus.publish(Ping(), correlation_id=JobId("job-7"), causation_id=JobId("e-1"))
    assert (envelope.correlation_id, envelope.causation_id) == ("job-7", "e-1")


async def test_bad_subscribe_arguments_are_rejected_with_messages_naming_them() -> None:
    bus = EventBus[Ping]()
    with pytest.raises(
        ValueError, match=r"^overflow must be one of 'drop_oldest', 'drop_newest', "
    ):
        bus.subscribe(overflow="wait")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^kinds must not be empty"):
        bus.subscribe(kinds=[])
    with pytest.raises(TypeError, match=r"^kinds must hold event classes or tag strings, got 3$"):
        bus.subscribe(kinds=[3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^where must be callable, got int$"):
        bus.subscribe(where=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^max_buffer_size must be >= 1, got 0$"):
        bus.subscribe(max_buffer_size=0)
    with pytest.raises(TypeError, match=r"^name must be a str, got int$"):
        bus.subscribe(name=5)  # type: ignore[arg-type]
    assert bus.statistics().open_subscriptions == 0


# -- lagging --------------------------------------------------------------------------------


async def test_drop_oldest_evicts_the_oldest_and_counts_lag_at_publish_time() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=3)
    for n in range(10):
        bus.publish(Ping(n=n))
    stats = sub.statistics()
    assert (stats.lagged, stats.buffered, stats.delivered) == (7, 3, 0)
    assert drain(sub) == [8, 9, 10]


async def test_drop_newest_keeps_the_oldest_and_counts_lag() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=3, overflow="drop_newest")
    for n in range(10):
        bus.publish(Ping(n=n))
    assert sub.statistics().lagged == 7
    assert drain(sub) == [1, 2, 3]


async def test_a_lagging_subscription_does_not_affect_the_others() -> None:
    bus = EventBus[Ping]()
    slow = bus.subscribe(max_buffer_size=1)
    fast = bus.subscribe(max_buffer_size=100)
    for n in range(50):
        bus.publish(Ping(n=n))
    assert slow.statistics().lagged == 49
    assert drain(fast) == list(range(1, 51))


async def test_lag_is_logged_once_per_burst_not_per_event() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=2, name="slow")
    with capture_logs() as logs:
        for _ in range(10):
            bus.publish(Ping())
        sub.receive_nowait()
        sub.receive_nowait()
        for _ in range(5):
            bus.publish(Ping())
        sub.receive_nowait()
    assert [(log["event"], log["name"], log.get("lagged")) for log in logs] == [
        ("subscription_lagged", "slow", None),
        ("subscription_lag_recovered", "slow", 8),
        ("subscription_lagged", "slow", None),
        ("subscription_lag_recovered", "slow", 3),
    ]
    assert logs[0]["log_level"] == "warning"


async def test_statistics_report_every_field() -> None:
    bus = EventBus[Ping](4)
    sub = bus.subscribe(name="s", overflow="drop_newest")
    for _ in range(3):
        bus.publish(Ping())
    sub.receive_nowait()
    stats = sub.statistics()
    assert (stats.delivered, stats.lagged, stats.buffered) == (1, 0, 2)
    assert (stats.max_buffer_size, stats.high_water_mark) == (4, 3)
    assert (stats.overflow, stats.name) == ("drop_newest", "s")
    with pytest.raises(AttributeError):
        stats.delivered = 5  # type: ignore[misc]
    assert bus.statistics().published == 3
    assert bus.statistics().open_subscriptions == 1
    assert not bus.statistics().closed


async def test_subscriptions_get_distinct_default_names() -> None:
    bus = EventBus[Ping]()
    assert bus.subscribe().name != bus.subscribe().name


# -- closing --------------------------------------------------------------------------------


async def test_closed_bus_yields_what_subscriptions_hold_then_end_of_stream() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    bus.publish(Ping(n=1))
    bus.publish(Ping(n=2))
    bus.close()
    assert [e.seq async for e in sub] == [1, 2]
    with pytest.raises(EndOfStream):
        await sub.receive()
    with pytest.raises(EndOfStream):
        sub.receive_nowait()


async def test_close_wakes_waiting_consumers_with_end_of_stream() -> None:
    bus = EventBus[Ping]()
    subs = [bus.subscribe() for _ in range(3)]
    ended: list[str] = []

    async def consumer(sub: Subscription[Ping]) -> None:
        async for _ in sub:
            pass
        ended.append(sub.name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for sub in subs:
                tg.start_soon(consumer, sub)
            await anyio.wait_all_tasks_blocked()
            bus.close()
    assert sorted(ended) == sorted(s.name for s in subs)


async def test_publish_and_subscribe_after_close_raise_closed_resource_error() -> None:
    bus = EventBus[Ping]()
    bus.publish(Ping())
    bus.close()
    bus.close()  # idempotent
    with pytest.raises(ClosedResourceError):
        bus.publish(Ping())
    with pytest.raises(ClosedResourceError):
        bus.subscribe()
    assert bus.statistics().published == 1
    assert bus.statistics().closed


async def test_async_with_closes_the_bus() -> None:
    async with EventBus[Ping]() as bus:
        sub = bus.subscribe()
    assert bus.closed
    with pytest.raises(EndOfStream):
        sub.receive_nowait()


async def test_closing_a_subscription_unsubscribes_and_frees_its_queue() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    other = bus.subscribe()
    bus.publish(Ping())
    sub.close()
    sub.close()  # idempotent
    assert sub.closed
    assert sub.statistics().buffered == 0
    assert bus.statistics().open_subscriptions == 1
    bus.publish(Ping())
    assert other.statistics().buffered == 2
    with pytest.raises(ClosedResourceError):
        sub.receive_nowait()
    with pytest.raises(ClosedResourceError):
        await sub.receive()


async def test_closing_a_subscription_wakes_its_waiting_receiver() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    outcome: list[type[BaseException]] = []

    async def consumer() -> None:
        try:
            await sub.receive()
        except ClosedResourceError as exc:
            outcome.append(type(exc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            await anyio.wait_all_tasks_blocked()
            await sub.aclose()
    assert outcome == [ClosedResourceError]


async def test_subscription_context_managers_close_it() -> None:
    bus = EventBus[Ping]()
    with bus.subscribe() as sub:
        pass
    assert sub.closed
    async with bus.subscribe() as asub:
        pass
    assert asub.closed
    assert bus.statistics().open_subscriptions == 0


# -- backpressure ---------------------------------------------------------------------------


async def test_sync_publish_into_a_full_block_subscription_is_all_or_nothing() -> None:
    bus = EventBus[Ping]()
    lossless = bus.subscribe(max_buffer_size=2, overflow="block")
    other = bus.subscribe()
    bus.publish(Ping())
    bus.publish(Ping())
    with pytest.raises(WouldBlock):
        bus.publish(Ping())
    assert other.statistics().buffered == 2
    assert bus.statistics().published == 2
    assert lossless.statistics().lagged == 0
    lossless.receive_nowait()
    assert bus.publish(Ping()).seq == 3


async def test_block_only_applies_to_matching_events() -> None:
    bus = EventBus[msgspec.Struct]()
    bus.subscribe(max_buffer_size=1, overflow="block", kinds=[Ping])
    bus.publish(Ping())
    for _ in range(5):
        bus.publish(Pong())
    with pytest.raises(WouldBlock):
        bus.publish(Ping())


async def test_a_full_block_subscription_whose_where_refuses_the_event_does_not_block() -> None:
    bus = EventBus[Ping]()
    evens = bus.subscribe(max_buffer_size=1, overflow="block", where=lambda e: e.event.n % 2 == 0)
    plain = bus.subscribe(max_buffer_size=1, overflow="block", kinds=[Ping])
    bus.publish(Ping(n=0))  # both are full now
    plain.receive_nowait()
    assert bus.publish(Ping(n=1)).seq == 2  # evens is full, but its where refuses n=1
    with pytest.raises(WouldBlock):
        bus.publish(Ping(n=2))  # evens accepts n=2 and is full: nothing is enqueued
    assert plain.statistics().buffered == 1
    assert [evens.receive_nowait().event.n, plain.receive_nowait().event.n] == [0, 1]
    assert bus.publish(Ping(n=2)).seq == 3


async def test_publish_envelope_checks_block_room_like_publish() -> None:
    bus = EventBus[Ping]()
    source = EventBus[Ping]()
    lossless = bus.subscribe(max_buffer_size=1, overflow="block")
    other = bus.subscribe(kinds=[Ping])
    bus.publish_envelope(source.publish(Ping(n=1)))
    with pytest.raises(WouldBlock):
        bus.publish_envelope(source.publish(Ping(n=2)))
    assert other.statistics().buffered == 1
    lossless.receive_nowait()
    assert bus.publish_envelope(source.publish(Ping(n=3))).seq == 2


async def test_apublish_waits_for_room_and_keeps_seq_order_equal_to_enqueue_order() -> None:
    bus = EventBus[Ping]()
    lossless = bus.subscribe(max_buffer_size=2, overflow="block")
    received: list[int] = []

    async def publisher() -> None:
        for n in range(20):
            await bus.apublish(Ping(n=n))

    async def consumer() -> None:
        for _ in range(20):
            received.append((await lossless.receive()).event.n)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(publisher)
            tg.start_soon(consumer)
    assert received == list(range(20))
    assert lossless.statistics().lagged == 0


async def test_apublish_raises_closed_resource_error_when_the_bus_closes_while_it_waits() -> None:
    bus = EventBus[Ping]()
    bus.subscribe(max_buffer_size=1, overflow="block")
    bus.publish(Ping())
    outcome: list[type[BaseException]] = []

    async def publisher() -> None:
        try:
            await bus.apublish(Ping())
        except ClosedResourceError as exc:
            outcome.append(type(exc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(publisher)
            await anyio.wait_all_tasks_blocked()
            bus.close()
    assert outcome == [ClosedResourceError]


async def test_apublish_proceeds_when_the_blocking_subscription_closes() -> None:
    bus = EventBus[Ping]()
    lossless = bus.subscribe(max_buffer_size=1, overflow="block")
    bus.publish(Ping())
    result: list[int] = []

    async def publisher() -> None:
        result.append((await bus.apublish(Ping())).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(publisher)
            await anyio.wait_all_tasks_blocked()
            lossless.close()
    assert result == [2]


async def test_cancelled_apublish_publishes_nothing() -> None:
    bus = EventBus[Ping]()
    bus.subscribe(max_buffer_size=1, overflow="block")
    bus.publish(Ping())
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.apublish, Ping())
        await anyio.wait_all_tasks_blocked()  # it waits for room
        tg.cancel_scope.cancel()
    assert bus.statistics().published == 1
    assert bus._space is not None  # it really was parked, not finished or never started


@pytest.mark.parametrize("with_room", [True, False], ids=["room", "no-block-subscriber"])
async def test_a_loop_of_apublish_calls_yields_once_every_64_calls(with_room: bool) -> None:
    bus = EventBus[Ping]()
    if with_room:
        bus.subscribe(max_buffer_size=1000, overflow="block")
    published = 0
    with anyio.CancelScope() as scope:
        scope.cancel()  # delivered at the first yield
        for _ in range(200):
            await bus.apublish(Ping())
            published += 1
    assert published == 63  # the 64th call yields first, and is cancelled there
    assert bus.statistics().published == 63


# -- cancel safety and fairness ---------------------------------------------------------------


async def test_cancelled_receive_loses_nothing_and_delivers_nothing_twice() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    async with anyio.create_task_group() as tg:

        async def consumer() -> None:
            await sub.receive()

        tg.start_soon(consumer)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    bus.publish(Ping(n=1))
    bus.publish(Ping(n=2))
    assert [(await sub.receive()).seq, (await sub.receive()).seq] == [1, 2]


async def test_receive_yields_once_every_64_ready_envelopes_and_is_cancel_safe_there() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=1000)
    for _ in range(200):
        bus.publish(Ping())
    # Ready envelopes are taken without a checkpoint: a cancelled scope does not stop them...
    with anyio.CancelScope() as scope:
        scope.cancel()
        seqs = [(await sub.receive()).seq for _ in range(64)]
    assert seqs == list(range(1, 65))
    # ...until the budget is spent: the 65th receive yields, and cancellation lands there.
    with anyio.CancelScope() as scope:
        scope.cancel()
        await sub.receive()
    assert scope.cancelled_caught
    assert (await sub.receive()).seq == 65


async def test_a_consumer_draining_a_full_buffer_lets_other_tasks_run() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=10_000)
    for _ in range(6400):
        bus.publish(Ping())
    bus.close()
    ticks = 0
    seen: set[int] = set()

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            async for _ in sub:
                seen.add(ticks)
            tg.cancel_scope.cancel()
    # Without the budget the ticker would never run before the drain ends ({0}). With it, the
    # consumer yields every 64 receives (trio's scheduler may pick the consumer again).
    assert len(seen) >= 6400 // 64 // 4


# -- consumers that publish -------------------------------------------------------------------


async def test_a_consumer_publishing_from_its_own_loop_does_not_deadlock() -> None:
    bus = EventBus[msgspec.Struct]()
    pings = bus.subscribe(kinds=[Ping])
    pongs = bus.subscribe(kinds=[Pong])

    async def responder() -> None:
        async for envelope in pings:
            bus.publish(Pong(n=envelope.event.n))  # type: ignore[attr-defined]

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(responder)
            for n in range(3):
                bus.publish(Ping(n=n))
            replies = [(await pongs.receive()).event for _ in range(3)]
            bus.close()
    assert replies == [Pong(n=0), Pong(n=1), Pong(n=2)]


# -- causation ------------------------------------------------------------------------------


async def test_caused_by_links_publishes_and_explicit_ids_win() -> None:
    bus = EventBus[Ping]()
    root = bus.publish(Ping())
    with bus.caused_by(root):
        child = bus.publish(Ping())
        explicit = bus.publish(Ping(), correlation_id="mine")
        with bus.caused_by(child):
            grandchild = bus.publish(Ping())
    after = bus.publish(Ping())
    assert (child.causation_id, child.correlation_id) == (root.event_id, root.event_id)
    assert (explicit.causation_id, explicit.correlation_id) == (root.event_id, "mine")
    assert (grandchild.causation_id, grandchild.correlation_id) == (child.event_id, root.event_id)
    assert (after.causation_id, after.correlation_id) == (None, None)


@pytest.mark.parametrize("name", ["event_id", "correlation_id"])
async def test_ids_passed_on_through_causation_are_checked_where_the_cause_comes_in(
    name: str,
) -> None:
    # A cause's ids become the next publishes' ids, past publish's own check of its
    # arguments: caused_by, and publish_envelope (the way into a track_causation consumer),
    # refuse a cause whose ids are not text.
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    bad = msgspec.structs.replace(EventBus[Ping]().publish(Ping()), **{name: uuid.UUID(int=7)})
    message = rf"^envelope.{name} must be a str( or None)?, got UUID$"
    with pytest.raises(TypeError, match=message), bus.caused_by(bad):
        bus.publish(Ping())
    with pytest.raises(TypeError, match=message):
        bus.publish_envelope(bad)
    assert bus.statistics().published == 0
    assert sub.statistics().buffered == 0
    refused = pytest.raises(TypeError, match=r"^envelope must be an Envelope, got str$")
    with refused, bus.caused_by("e-1"):  # type: ignore[arg-type]
        bus.publish(Ping())
    assert bus.statistics().published == 0


async def test_track_causation_links_what_a_consumer_publishes_to_what_it_received() -> None:
    bus = EventBus[msgspec.Struct]()
    tracked = bus.subscribe(kinds=[Ping], track_causation=True)
    untracked = bus.subscribe(kinds=[Ping])
    replies: dict[str, Envelope[msgspec.Struct]] = {}

    async def consumer(name: str, sub: Subscription[msgspec.Struct]) -> None:
        await sub.receive()
        replies[name] = bus.publish(Pong())

    root = bus.publish(Ping(), correlation_id="corr")
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer, "tracked", tracked)
        tg.start_soon(consumer, "untracked", untracked)
    assert replies["tracked"].causation_id == root.event_id
    assert replies["tracked"].correlation_id == "corr"
    assert (replies["untracked"].causation_id, replies["untracked"].correlation_id) == (None, None)


# -- envelopes stamped elsewhere, taps --------------------------------------------------------


async def test_publish_envelope_keeps_ids_and_timestamps_and_takes_a_new_seq() -> None:
    source = EventBus[Ping]()
    original = source.publish(Ping(n=1), correlation_id="c")
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    bus.publish(Ping())
    forwarded = bus.publish_envelope(original)
    assert forwarded.seq == 2
    assert msgspec.structs.replace(forwarded, seq=1) == original
    assert sub.receive_nowait().seq == 1
    assert sub.receive_nowait() is forwarded


async def test_publish_envelope_with_keep_seq_preserves_it_and_rejects_going_back() -> None:
    source = EventBus[Ping]()
    envelopes = [source.publish(Ping(n=n)) for n in range(5)]
    bus = EventBus[Ping]()
    replayed = msgspec.structs.replace(envelopes[3], replayed=True)
    assert bus.publish_envelope(replayed, keep_seq=True) is replayed
    assert bus.statistics().published == 4
    with pytest.raises(
        ValueError, match=r"^envelope.seq must be greater than the bus's last seq 4"
    ):
        bus.publish_envelope(envelopes[1], keep_seq=True)
    assert bus.publish(Ping()).seq == 5


async def test_taps_run_inside_publish_and_a_failing_tap_does_not_reach_the_publisher() -> None:
    bus = EventBus[Ping]()
    seen: list[int] = []
    remove = bus.add_tap(lambda e: seen.append(e.seq))

    def broken(envelope: Envelope[Ping]) -> None:
        raise RuntimeError("tap broke")

    remove_broken = bus.add_tap(broken)
    with capture_logs() as logs:
        bus.publish(Ping())
    assert seen == [1]
    assert [log["event"] for log in logs] == ["bus_tap_failed"]
    remove()
    remove_broken()
    bus.publish(Ping())
    assert seen == [1]
    with pytest.raises(TypeError, match=r"^tap must be callable, got int$"):
        bus.add_tap(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("send", ["publish", "publish_envelope"])
async def test_a_publish_from_a_tap_reaches_every_tap_after_the_envelope_it_reacts_to(
    send: str,
) -> None:
    # Taps see envelopes in seq order (capture_events, expect and the inline audit trail rely
    # on it), also when one of them publishes in reaction to the envelope the others have not
    # seen yet.
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    donor = EventBus[Ping]()
    seen: dict[str, list[int]] = {"reacting": [], "later": []}

    def reacting(envelope: Envelope[Ping]) -> None:
        seen["reacting"].append(envelope.seq)
        if envelope.event.n < 2:
            event = Ping(n=envelope.event.n + 1)
            if send == "publish":
                reaction = bus.publish(event)
            else:
                reaction = bus.publish_envelope(donor.publish(event))
            assert reaction.seq == envelope.seq + 1  # it is published at once

    bus.add_tap(reacting)
    bus.add_tap(lambda e: seen["later"].append(e.seq))
    bus.publish(Ping(n=0))
    assert seen == {"reacting": [1, 2, 3], "later": [1, 2, 3]}
    assert drain(sub) == [1, 2, 3]
    bus.publish(Ping(n=5))  # and nothing is left over for the next publish
    assert seen == {"reacting": [1, 2, 3, 4], "later": [1, 2, 3, 4]}


async def test_a_tap_removed_after_a_tap_published_still_sees_what_was_published_before() -> None:
    # The taps a publish reaches are those added when it was made, as without a backlog.
    bus = EventBus[Ping]()
    seen: list[int] = []

    def reacting(envelope: Envelope[Ping]) -> None:
        if envelope.event.n == 1:
            bus.publish(Ping(n=2))
            remove()  # e.g. an expectation satisfied by the envelope being tapped
            bus.publish(Ping(n=3))

    bus.add_tap(reacting)
    remove = bus.add_tap(lambda e: seen.append(e.seq))
    bus.publish(Ping(n=1))
    assert seen == [1, 2]


async def test_a_tap_raising_through_the_guard_leaves_later_publishes_tapped_in_order() -> None:
    class Interrupt(BaseException):  # as KeyboardInterrupt would, from inside a tap
        pass

    bus = EventBus[Ping]()
    seen: list[int] = []

    def reacting(envelope: Envelope[Ping]) -> None:
        if envelope.event.n == 1:
            bus.publish(Ping(n=2))
            raise Interrupt

    bus.add_tap(reacting)
    bus.add_tap(lambda e: seen.append(e.seq))
    with pytest.raises(Interrupt):
        bus.publish(Ping(n=1))
    assert bus.statistics().published == 2  # both were delivered; their taps were cut short
    bus.publish(Ping(n=3))
    bus.publish(Ping(n=4))
    assert seen == [3, 4]


# -- scale ----------------------------------------------------------------------------------


async def test_ten_thousand_subscriptions_each_get_every_event() -> None:
    bus = EventBus[Ping](4)
    subs = [bus.subscribe() for _ in range(10_000)]
    for _ in range(3):
        bus.publish(Ping())
    assert all(s.statistics().buffered == 3 for s in subs)
    for sub in subs:
        sub.close()
    assert bus.statistics().open_subscriptions == 0


async def test_several_receivers_on_one_subscription_each_get_distinct_envelopes() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    got: list[int] = []

    async def receiver() -> None:
        got.append((await sub.receive()).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(receiver)
            await anyio.wait_all_tasks_blocked()
            for _ in range(3):
                bus.publish(Ping())
    assert sorted(got) == [1, 2, 3]


async def test_a_cancelled_waiter_does_not_swallow_the_wakeup_of_another() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    got: list[int] = []

    async def receiver() -> None:
        got.append((await sub.receive()).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(receiver)
                tg.start_soon(receiver)
                await anyio.wait_all_tasks_blocked()
                doomed.cancel_scope.cancel()
            bus.publish(Ping())
    assert got == [1]


async def test_a_waiting_consumer_is_woken_by_a_publish_from_another_thread() -> None:
    import anyio.to_thread

    bus = EventBus[Ping]()
    sub = bus.subscribe()
    got: list[Envelope[Ping]] = []

    async def consumer() -> None:
        got.append(await sub.receive())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            await anyio.wait_all_tasks_blocked()
            envelope = await anyio.to_thread.run_sync(bus.publish_threadsafe, Ping())
    assert got == [envelope]


@pytest.mark.parametrize("kinds", [None, [Ping]], ids=["ring", "queue"])
async def test_peek_shows_buffered_envelopes_without_taking_them(kinds: list[type] | None) -> None:
    bus = EventBus[Ping](3)
    sub = bus.subscribe(kinds=kinds)
    envelopes = [bus.publish(Ping(n=n)) for n in range(5)]
    assert sub._peek(2) == envelopes[2:4]
    assert sub._peek(10) == envelopes[2:]
    assert sub.receive_nowait() is envelopes[2]
    sub.close()
    assert sub._peek(10) == []


async def test_apublish_envelope_waits_for_room_and_keeps_the_seq() -> None:
    source = EventBus[Ping]()
    envelopes = [source.publish(Ping(n=n)) for n in range(3)]
    bus = EventBus[Ping]()
    lossless = bus.subscribe(max_buffer_size=1, overflow="block")
    received: list[int] = []

    async def consumer() -> None:
        for _ in range(3):
            received.append((await lossless.receive()).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            for envelope in envelopes:
                assert await bus.apublish_envelope(envelope, keep_seq=True) is envelope
    assert received == [1, 2, 3]


async def test_cancelling_one_waiting_consumer_leaves_the_others_waiting() -> None:
    bus = EventBus[Ping]()
    doomed_sub, kept_sub = bus.subscribe(), bus.subscribe()
    got: list[int] = []

    async def consumer(sub: Subscription[Ping]) -> None:
        got.append((await sub.receive()).seq)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(consumer, doomed_sub)
                tg.start_soon(consumer, kept_sub)
                await anyio.wait_all_tasks_blocked()
                doomed.cancel_scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert got == []  # the survivor is still parked, not woken with an error
            closed_sub = bus.subscribe()
            closed_sub.close()  # closing another subscription does not disturb it either
            await anyio.wait_all_tasks_blocked()
            bus.publish(Ping())
    assert got == [1]
    assert doomed_sub.receive_nowait().seq == 1


async def test_event_ids_stay_unique_and_sorted_across_id_blocks_and_seq_jumps() -> None:
    bus = EventBus[Ping]()
    ids = [bus.publish(Ping()).event_id for _ in range(5000)]  # crosses a 4096 block
    donor = EventBus[Ping]()
    jumped = msgspec.structs.replace(donor.publish(Ping()), seq=10_000)
    bus.publish_envelope(jumped, keep_seq=True)
    ids += [bus.publish(Ping()).event_id for _ in range(5000)]
    assert len(set(ids)) == len(ids) == 10_000
    assert ids == sorted(ids)
    assert ids[-1].endswith(f"{15_000:014x}")


# -- error messages ------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"kinds": [Ping]}], ids=["ring", "queue"])
async def test_errors_name_the_closed_subscription_the_full_one_and_the_closed_bus(
    options: dict[str, object],
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(name="worker", **options)  # type: ignore[arg-type]
    sub.close()
    with pytest.raises(ClosedResourceError, match=r"^subscription 'worker' is closed$"):
        sub.receive_nowait()
    with pytest.raises(ClosedResourceError, match=r"^subscription 'worker' is closed$"):
        await sub.receive()
    with pytest.raises(ClosedResourceError, match=r"^subscription 'worker' is closed$"):
        await anext(aiter(sub))
    bus.subscribe(name="audit", max_buffer_size=1, overflow="block")
    bus.publish(Ping())
    with pytest.raises(WouldBlock, match=r"^subscription 'audit' is full \(overflow='block'\)$"):
        bus.publish(Ping())
    bus.close()
    with pytest.raises(ClosedResourceError, match=r"^the bus is closed$"):
        bus.publish(Ping())
    with pytest.raises(ClosedResourceError, match=r"^the bus is closed$"):
        await bus.apublish(Ping())
    with pytest.raises(ClosedResourceError, match=r"^the bus is closed$"):
        bus.subscribe()
