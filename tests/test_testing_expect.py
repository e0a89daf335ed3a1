"""``eventbus.testing.expect``: listen from the call, await after the action."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import msgspec
import pytest

from eventbus import EventBus
from eventbus.testing import expect

pytestmark = pytest.mark.anyio


class Ping(msgspec.Struct, frozen=True, tag="ping"):
    n: int = 0


class Pong(msgspec.Struct, frozen=True, tag="pong"):
    n: int = 0


async def test_an_event_published_between_expect_and_await_is_not_missed() -> None:
    bus = EventBus[msgspec.Struct]()
    arrived = expect(bus, Ping)
    published = bus.publish(Ping(n=1))  # before anyone awaits
    with anyio.fail_after(5):
        assert await arrived is published


async def test_only_events_published_after_expect_count() -> None:
    bus = EventBus[Ping]()
    bus.publish(Ping(n=1))
    arrived = expect(bus, Ping, timeout=0.01)
    assert not arrived.done
    with pytest.raises(AssertionError, match=r"^expected a Ping within 0.01s; 0 envelope"):
        await arrived


async def test_waits_for_an_event_published_by_another_task() -> None:
    bus = EventBus[msgspec.Struct]()

    async def worker() -> None:
        await anyio.wait_all_tasks_blocked()
        bus.publish(Pong(n=1))
        bus.publish(Ping(n=2))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            envelope = await expect(bus, Ping)
    assert envelope.event == Ping(n=2)
    assert envelope.seq == 2


async def test_where_selects_the_first_matching_event() -> None:
    bus = EventBus[Ping]()
    arrived = expect(bus, Ping, where=lambda e: e.n > 2)
    for n in range(6):
        bus.publish(Ping(n=n))
    envelope = await arrived
    assert envelope.event == Ping(n=3)
    assert await arrived is envelope  # awaiting again gives the same envelope


async def test_it_stops_listening_once_matched() -> None:
    bus = EventBus[Ping]()
    arrived = expect(bus, Ping)
    bus.publish(Ping(n=1))
    assert arrived.done
    assert bus._taps == ()


async def test_timeout_message_shows_what_arrived_instead() -> None:
    bus = EventBus[msgspec.Struct]()
    arrived = expect(bus, Ping, where=lambda e: e.n == 99, timeout=0.01)
    for n in range(5):
        bus.publish(Ping(n=n))
    bus.publish(Pong())
    bus.publish(Pong())
    with pytest.raises(AssertionError) as info:
        await arrived
    message = str(info.value)
    assert message.startswith("expected a Ping matching where within 0.01s; 7 envelope(s)")
    # the nearest rejected events, not all of them
    assert "seq=3 kind='ping' event=Ping(n=2)" in message
    assert "seq=5 kind='ping' event=Ping(n=4)" in message
    assert "Ping(n=1)" not in message
    assert "other kinds: pong x2" in message
    assert bus._taps == ()


async def test_timeout_message_says_when_the_bus_is_closed() -> None:
    bus = EventBus[Ping]()
    arrived = expect(bus, Ping, timeout=0.01)
    bus.close()
    with pytest.raises(AssertionError, match=r"the bus is closed"):
        await arrived


async def test_a_raising_where_is_reported_by_await() -> None:
    bus = EventBus[Ping]()

    def boom(event: Ping) -> bool:
        raise LookupError("no such agent")

    arrived = expect(bus, Ping, where=boom)
    bus.publish(Ping())
    with pytest.raises(AssertionError, match=r"where predicate raised LookupError: no such agent"):
        await arrived


async def test_a_cancelled_expectation_fails_at_once() -> None:
    bus = EventBus[Ping]()
    arrived = expect(bus, Ping, timeout=60)
    arrived.cancel()
    bus.publish(Ping())
    with anyio.fail_after(5), pytest.raises(AssertionError, match=r"was cancelled first"):
        await arrived


async def test_bad_arguments_are_rejected_with_messages_naming_them() -> None:
    bus = EventBus[Ping]()
    with pytest.raises(TypeError, match=r"^bus must be an EventBus, got NoneType$"):
        expect(None, Ping)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^event_type must be a msgspec.Struct class, got int$"):
        expect(bus, int)  # type: ignore[type-var]
    with pytest.raises(ValueError, match=r"^timeout must be > 0, got 0$"):
        expect(bus, Ping, timeout=0)
    with pytest.raises(TypeError, match=r"^timeout must be a number, got str$"):
        expect(bus, Ping, timeout="1")  # type: ignore[arg-type]
    assert bus._taps == ()


async def test_a_timeout_too_large_for_a_float_waits_without_end() -> None:
    # expect(timeout=10**400) raised OverflowError from inside anyio when awaited.
    bus = EventBus[Ping]()
    arrived = expect(bus, Ping, timeout=10**400)
    bus.publish(Ping(n=1))
    with anyio.fail_after(5):
        assert (await arrived).event == Ping(n=1)


@pytest.mark.parametrize(("where", "got"), [(3, "int"), ("x", "str")])
async def test_a_where_that_is_not_callable_is_rejected_at_the_call(
    where: object, got: str
) -> None:
    bus = EventBus[Ping]()
    with pytest.raises(TypeError, match=rf"^where must be callable, got {got}$"):
        expect(bus, Ping, where=where)  # type: ignore[arg-type]
    assert bus._taps == ()
