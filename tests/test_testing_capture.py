"""``eventbus.testing.capture_events``: an inline record of every envelope, no task needed."""

from __future__ import annotations

import anyio
import anyio.to_thread
import msgspec
import pytest

from eventbus import Envelope, EventBus
from eventbus.testing import capture_events

pytestmark = pytest.mark.anyio


class Ping(msgspec.Struct, frozen=True, tag="ping"):
    n: int = 0


class Pong(msgspec.Struct, frozen=True, tag="pong"):
    n: int = 0


class LoudPing(Ping, frozen=True, tag="loud_ping"):
    pass


async def test_records_every_envelope_published_while_active_in_seq_order() -> None:
    bus = EventBus[msgspec.Struct]()
    bus.publish(Ping(n=0))
    with capture_events(bus) as captured:
        published = [bus.publish(Ping(n=1)), bus.publish(Pong(n=2)), bus.publish(LoudPing(n=3))]
    bus.publish(Ping(n=4))
    assert captured.envelopes == published
    assert captured.events == [Ping(n=1), Pong(n=2), LoudPing(n=3)]
    assert captured.kinds == ["ping", "pong", "loud_ping"]
    assert len(captured) == 3
    assert list(captured) == published


async def test_records_in_seq_order_when_an_earlier_tap_publishes_in_reaction() -> None:
    bus = EventBus[msgspec.Struct]()

    def react(envelope: Envelope[msgspec.Struct]) -> None:
        if isinstance(envelope.event, Ping):
            bus.publish(Pong(n=envelope.event.n))

    bus.add_tap(react)  # a component of the code under test that reacts inside publish
    with capture_events(bus) as captured:
        bus.publish(Ping(n=1))
    assert [e.seq for e in captured.envelopes] == [1, 2]
    assert captured.kinds == ["ping", "pong"]


async def test_of_selects_events_by_class_including_subclasses() -> None:
    bus = EventBus[msgspec.Struct]()
    with capture_events(bus) as captured:
        bus.publish(Ping(n=1))
        bus.publish(Pong(n=2))
        bus.publish(LoudPing(n=3))
    assert captured.of(Ping) == [Ping(n=1), LoudPing(n=3)]
    assert captured.of(Pong) == [Pong(n=2)]
    assert captured.of(LoudPing) == [LoudPing(n=3)]


async def test_of_rejects_what_is_not_an_event_class() -> None:
    with (
        capture_events(EventBus[Ping]()) as captured,
        pytest.raises(TypeError, match=r"^event_type must be a msgspec.Struct class, got 'ping'$"),
    ):
        captured.of("ping")  # type: ignore[type-var]


async def test_kinds_filter_by_class_or_tag() -> None:
    bus = EventBus[msgspec.Struct]()
    with (
        capture_events(bus, kinds=[Ping]) as pings,
        capture_events(bus, kinds="pong") as pongs,
        capture_events(bus, kinds=["loud_ping", Pong]) as mixed,
    ):
        for event in (Ping(), Pong(), LoudPing()):
            bus.publish(event)
    assert pings.kinds == ["ping", "loud_ping"]
    assert pongs.kinds == ["pong"]
    assert mixed.kinds == ["pong", "loud_ping"]


async def test_kinds_that_are_neither_a_kind_nor_an_iterable_are_named_in_the_error() -> None:
    bus = EventBus[msgspec.Struct]()
    with pytest.raises(
        TypeError,
        match=r"^kinds must be an event class, a tag string or an iterable of them, got int$",
    ):
        capture_events(bus, kinds=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^kinds must be an event class, .* got int$"):
        bus.subscribe(kinds=5)  # type: ignore[arg-type]


async def test_records_what_a_lagging_subscription_loses() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=1)
    with capture_events(bus) as captured:
        for n in range(5):
            bus.publish(Ping(n=n))
    assert sub.statistics().lagged == 4
    assert [e.n for e in captured.of(Ping)] == [0, 1, 2, 3, 4]


async def test_records_from_the_call_even_without_with_until_stop() -> None:
    bus = EventBus[Ping]()
    captured = capture_events(bus)
    bus.publish(Ping(n=1))
    assert captured.active
    captured.stop()
    captured.stop()  # idempotent
    bus.publish(Ping(n=2))
    assert not captured.active
    assert captured.events == [Ping(n=1)]


async def test_clear_forgets_what_was_recorded_and_recording_goes_on() -> None:
    bus = EventBus[Ping]()
    with capture_events(bus) as captured:
        bus.publish(Ping(n=1))
        captured.clear()
        bus.publish(Ping(n=2))
    assert captured.events == [Ping(n=2)]


async def test_records_replayed_and_threadsafe_publishes() -> None:
    bus = EventBus[Ping]()
    with capture_events(bus) as captured:
        async with bus:
            replayed = Envelope(
                seq=41, event_id="x", ts_ns=1, kind="ping", event=Ping(n=9), replayed=True
            )
            bus.publish_envelope(replayed, keep_seq=True)
            await anyio.to_thread.run_sync(bus.publish_threadsafe, Ping(n=10))
    assert captured.envelopes[0] is replayed
    assert captured.events == [Ping(n=9), Ping(n=10)]
    assert captured.envelopes[1].seq == 42


async def test_bad_arguments_are_rejected_with_messages_naming_them() -> None:
    with pytest.raises(TypeError, match=r"^bus must be an EventBus, got list$"):
        capture_events([])  # type: ignore[type-var]
    with pytest.raises(ValueError, match=r"^kinds must not be empty"):
        capture_events(EventBus[Ping](), kinds=[])
    with pytest.raises(TypeError, match=r"^kinds must hold event classes or tag strings, got 1$"):
        capture_events(EventBus[Ping](), kinds=[1])  # type: ignore[list-item]


def test_works_without_an_event_loop() -> None:
    bus = EventBus[Ping]()
    with capture_events(bus) as captured:
        bus.publish(Ping(n=1))
    assert captured.kinds == ["ping"]
    assert repr(captured) == "<CapturedEvents stopped envelopes=1>"
