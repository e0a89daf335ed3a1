"""The tokio-style assertions of ``eventbus.testing`` on subscriptions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from eventbus import EventBus
from eventbus.testing import assert_closed, assert_empty, assert_lagged, assert_received

pytestmark = pytest.mark.anyio


class Ping(msgspec.Struct, frozen=True, tag="ping"):
    n: int = 0


class Pong(msgspec.Struct, frozen=True, tag="pong"):
    n: int = 0


# -- assert_received ------------------------------------------------------------------------


async def test_assert_received_takes_and_returns_the_next_envelope() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    first, second = bus.publish(Ping(n=1)), bus.publish(Ping(n=2))
    assert assert_received(sub) is first
    assert assert_received(sub, Ping(n=2)) is second
    assert sub.statistics().delivered == 2


async def test_assert_received_checks_the_class_or_equality() -> None:
    bus = EventBus[msgspec.Struct]()
    sub = bus.subscribe(name="consumer")
    bus.publish(Ping(n=1))
    bus.publish(Pong(n=2))
    bus.publish(Ping(n=3))
    assert assert_received(sub, Ping).event == Ping(n=1)
    with pytest.raises(AssertionError) as info:
        assert_received(sub, Ping(n=3))
    assert str(info.value) == (
        "expected to receive Ping(n=3) from 'consumer', "
        "but received seq=2 kind='pong' event=Pong(n=2)\n"
        "  a match is buffered further on: seq=3 kind='ping' event=Ping(n=3)"
    )


async def test_assert_received_says_when_no_match_is_buffered() -> None:
    bus = EventBus[msgspec.Struct]()
    sub = bus.subscribe(name="consumer")
    bus.publish(Pong())
    bus.publish(Pong())
    with pytest.raises(AssertionError, match=r"\n  no match among the 1 still buffered$"):
        assert_received(sub, Ping)


async def test_assert_received_fails_when_nothing_is_buffered() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(name="consumer", max_buffer_size=1)
    bus.publish(Ping())
    bus.publish(Ping())
    assert_received(sub)
    with pytest.raises(AssertionError) as info:
        assert_received(sub, Ping)
    assert str(info.value) == (
        "expected to receive a Ping from 'consumer', but nothing is buffered "
        "(delivered=1 lagged=1 buffered=0 max_buffer_size=1 overflow='drop_oldest')"
    )


async def test_assert_received_fails_on_a_closed_bus_or_subscription() -> None:
    bus = EventBus[Ping]()
    sub, other = bus.subscribe(name="a"), bus.subscribe(name="b")
    other.close()
    with pytest.raises(AssertionError, match=r"from 'b', but the subscription is closed$"):
        assert_received(other)
    bus.close()
    with pytest.raises(AssertionError, match=r"but the bus is closed and the subscription is"):
        assert_received(sub)


async def test_assert_received_accepts_a_tag_string_as_subscribe_kinds_does() -> None:
    bus = EventBus[msgspec.Struct]()
    sub = bus.subscribe(name="consumer")
    first = bus.publish(Ping(n=1))
    bus.publish(Ping(n=2))
    bus.publish(Pong(n=3))
    assert assert_received(sub, "ping") is first
    with pytest.raises(AssertionError) as info:
        assert_received(sub, "pong")
    assert str(info.value) == (
        "expected to receive an envelope of kind 'pong' from 'consumer', "
        "but received seq=2 kind='ping' event=Ping(n=2)\n"
        "  a match is buffered further on: seq=3 kind='pong' event=Pong(n=3)"
    )


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        (5, r"^expected must be None, an event class, a tag string or an event, got int$"),
        (
            dict,
            r"^expected must be None, an event class, a tag string or an event, "
            r"got the class dict$",
        ),
        (
            {"n": 1},
            r"^expected must be None, an event class, a tag string or an event, got dict$",
        ),
    ],
    ids=["int", "class", "dict"],
)
async def test_assert_received_rejects_an_expected_of_another_type_and_takes_nothing(
    expected: object, message: str
) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    bus.publish(Ping(n=1))
    with pytest.raises(TypeError, match=message):
        assert_received(sub, expected)  # type: ignore[call-overload]
    assert sub.statistics().buffered == 1


async def test_assert_received_rejects_an_envelope_and_names_its_event() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    published = bus.publish(Ping(n=1))
    with pytest.raises(
        TypeError, match=r"^expected must be an event, not an Envelope: pass its .event$"
    ):
        assert_received(sub, published)  # type: ignore[call-overload]
    assert assert_received(sub, published.event) is published


@pytest.mark.parametrize(
    "helper",
    [assert_received, assert_empty, assert_closed, lambda sub: assert_lagged(sub, 0)],
    ids=["assert_received", "assert_empty", "assert_closed", "assert_lagged"],
)
async def test_subscription_helpers_reject_what_is_not_a_subscription(
    helper: Callable[[Any], object],
) -> None:
    bus = EventBus[Ping]()
    with pytest.raises(TypeError, match=r"^sub must be a Subscription, got EventBus$"):
        helper(bus)
    with pytest.raises(TypeError, match=r"^sub must be a Subscription, got the class EventBus$"):
        helper(EventBus)


# -- assert_empty ---------------------------------------------------------------------------


async def test_assert_empty_passes_on_an_open_empty_subscription() -> None:
    bus = EventBus[msgspec.Struct]()
    sub = bus.subscribe(kinds=[Pong])
    bus.publish(Ping())  # filtered out
    assert_empty(sub)


async def test_assert_empty_shows_the_first_buffered_envelopes_and_takes_none() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(name="consumer")
    for n in range(5):
        bus.publish(Ping(n=n))
    with pytest.raises(AssertionError) as info:
        assert_empty(sub)
    assert str(info.value) == (
        "expected 'consumer' to be empty, but 5 envelope(s) are buffered:\n"
        "    seq=1 kind='ping' event=Ping(n=0)\n"
        "    seq=2 kind='ping' event=Ping(n=1)\n"
        "    seq=3 kind='ping' event=Ping(n=2)\n"
        "    ... and 2 more"
    )
    assert sub.statistics().buffered == 5


async def test_assert_empty_fails_when_closed() -> None:
    bus = EventBus[Ping]()
    sub, other = bus.subscribe(name="a"), bus.subscribe(name="b")
    other.close()
    with pytest.raises(AssertionError, match=r"^expected 'b' to be empty, but it is closed$"):
        assert_empty(other)
    bus.close()
    with pytest.raises(AssertionError, match=r"^expected 'a' to be empty, but the bus is closed"):
        assert_empty(sub)


# -- assert_lagged --------------------------------------------------------------------------


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
async def test_assert_lagged_checks_the_running_total(overflow: str) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(name="slow", max_buffer_size=2, overflow=overflow)  # type: ignore[arg-type]
    assert_lagged(sub, 0)
    for n in range(5):
        bus.publish(Ping(n=n))
    stats = assert_lagged(sub, 3)
    assert stats.buffered == 2
    with pytest.raises(AssertionError) as info:
        assert_lagged(sub, 2)
    assert str(info.value) == (
        "expected 'slow' to have lagged 2, but it lagged 3 (delivered=0 lagged=3 buffered=2 "
        f"max_buffer_size=2 overflow='{overflow}')"
    )


async def test_assert_lagged_rejects_a_negative_count() -> None:
    sub = EventBus[Ping]().subscribe()
    with pytest.raises(ValueError, match=r"^n must be >= 0, got -1$"):
        assert_lagged(sub, -1)


@pytest.mark.parametrize(
    ("n", "message"),
    [("1", r"^n must be an int, got str$"), (True, r"^n must be an int, got bool$")],
    ids=["str", "bool"],
)
async def test_assert_lagged_rejects_a_count_that_is_not_an_int(n: object, message: str) -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(max_buffer_size=1)
    bus.publish(Ping())
    bus.publish(Ping())
    with pytest.raises(TypeError, match=message):
        assert_lagged(sub, n)  # type: ignore[arg-type]


# -- assert_closed --------------------------------------------------------------------------


async def test_assert_closed_passes_on_a_closed_subscription() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    bus.publish(Ping())
    sub.close()
    assert_closed(sub)


async def test_assert_closed_passes_once_the_closed_bus_is_drained() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe(name="consumer")
    bus.publish(Ping(n=1))
    bus.close()
    with pytest.raises(AssertionError) as info:
        assert_closed(sub)
    assert str(info.value) == (
        "expected 'consumer' to be closed, but the bus is closed and 1 envelope(s) are still "
        "buffered:\n    seq=1 kind='ping' event=Ping(n=1)"
    )
    assert_received(sub, Ping(n=1))
    assert_closed(sub)


async def test_assert_closed_fails_while_the_bus_is_open() -> None:
    sub = EventBus[Ping]().subscribe(name="consumer")
    with pytest.raises(AssertionError, match=r"^expected 'consumer' to be closed, but it and its"):
        assert_closed(sub)


def test_helpers_hide_themselves_from_tracebacks() -> None:
    import eventbus.testing as testing

    for name in ("assert_received", "assert_empty", "assert_lagged", "assert_closed"):
        code = getattr(testing, name).__code__
        assert "__tracebackhide__" in code.co_varnames, name
    assert "__tracebackhide__" in testing.Expectation.wait.__code__.co_varnames


@pytest.mark.parametrize("kinds", [None, [Ping]], ids=["shared_ring", "private_queue"])
async def test_failure_messages_show_buffered_envelopes_of_either_queue_layout(
    kinds: list[type[Ping]] | None,
) -> None:
    bus = EventBus[msgspec.Struct]()
    sub = bus.subscribe(name="consumer", kinds=kinds, max_buffer_size=3)
    for n in range(5):
        bus.publish(Ping(n=n))
    with pytest.raises(AssertionError) as info:
        assert_empty(sub)
    assert str(info.value).splitlines()[1:] == [
        "    seq=3 kind='ping' event=Ping(n=2)",
        "    seq=4 kind='ping' event=Ping(n=3)",
        "    seq=5 kind='ping' event=Ping(n=4)",
    ]
    with pytest.raises(AssertionError, match=r"a match is buffered further on: seq=5 "):
        assert_received(sub, Ping(n=4))
