"""Publishing from other threads, and what happens when the bus's loop is gone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import msgspec
import pytest

from eventbus import Envelope, EventBus, Subscription


class Ping(msgspec.Struct, frozen=True, tag="ping"):
    n: int = 0


def call_in_thread(func: Callable[[], object]) -> object:
    """Run ``func`` in a fresh thread and return its result or exception, never hanging."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(func())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the call hung"
    return outcome[0]


@pytest.mark.anyio
async def test_publish_threadsafe_hands_the_publish_to_the_loop() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    envelopes = [
        await anyio.to_thread.run_sync(lambda n=n: bus.publish_threadsafe(Ping(n=n)))
        for n in range(3)
    ]
    assert [e.seq for e in envelopes] == [1, 2, 3]
    assert [sub.receive_nowait() for _ in range(3)] == envelopes


@pytest.mark.anyio
async def test_publish_threadsafe_on_the_loop_thread_simply_publishes() -> None:
    bus = EventBus[Ping]()
    sub = bus.subscribe()
    envelope = bus.publish_threadsafe(Ping(), correlation_id="c")
    assert sub.receive_nowait() is envelope
    assert envelope.correlation_id == "c"


@pytest.mark.anyio
async def test_plain_publish_from_a_foreign_thread_names_publish_threadsafe() -> None:
    bus = EventBus[Ping]()
    bus.subscribe()
    with pytest.raises(RuntimeError, match=r"use publish_threadsafe\(\) from other threads"):
        await anyio.to_thread.run_sync(bus.publish, Ping())
    with pytest.raises(RuntimeError, match=r"^subscribe\(\) was called from a thread"):
        await anyio.to_thread.run_sync(bus.subscribe)
    assert bus.statistics().published == 0


@pytest.mark.anyio
async def test_many_threads_publishing_at_once_lose_nothing() -> None:
    bus = EventBus[Ping](10_000)
    sub = bus.subscribe()

    def worker(base: int) -> None:
        for n in range(100):
            bus.publish_threadsafe(Ping(n=base + n))

    async with anyio.create_task_group() as tg:
        for t in range(4):
            tg.start_soon(anyio.to_thread.run_sync, worker, t * 1000)
    envelopes = [sub.receive_nowait() for _ in range(400)]
    assert [e.seq for e in envelopes] == list(range(1, 401))
    assert sorted(e.event.n for e in envelopes) == sorted(
        t * 1000 + n for t in range(4) for n in range(100)
    )


def test_publish_threadsafe_before_the_bus_saw_a_loop_is_a_clear_error() -> None:
    bus = EventBus[Ping]()
    outcome = call_in_thread(lambda: bus.publish_threadsafe(Ping()))
    assert isinstance(outcome, RuntimeError)
    assert "publish_threadsafe() needs the bus's event loop" in str(outcome)


def test_publish_threadsafe_after_an_asyncio_loop_stopped_raises_instead_of_hanging() -> None:
    bus = EventBus[Ping]()
    loop = asyncio.new_event_loop()

    async def use() -> None:
        bus.subscribe()

    try:
        loop.run_until_complete(use())  # the loop is now stopped but not closed
        outcome = call_in_thread(lambda: bus.publish_threadsafe(Ping()))
        assert isinstance(outcome, anyio.RunFinishedError)
        loop.close()
        outcome = call_in_thread(lambda: bus.publish_threadsafe(Ping()))
        assert isinstance(outcome, anyio.RunFinishedError)
    finally:
        loop.close()
    assert bus.statistics().published == 0


def test_publish_threadsafe_after_a_trio_run_finished_raises() -> None:
    bus = EventBus[Ping]()

    async def use() -> None:
        bus.subscribe()

    anyio.run(use, backend="trio")
    outcome = call_in_thread(lambda: bus.publish_threadsafe(Ping()))
    assert isinstance(outcome, anyio.RunFinishedError)


def test_publish_threadsafe_while_the_asyncio_loop_runs_in_another_thread() -> None:
    bus = EventBus[Ping]()
    ready = threading.Event()
    received: list[Envelope[Ping]] = []

    async def serve() -> None:
        with bus.subscribe() as sub:
            ready.set()
            received.append(await sub.receive())

    loop_thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    loop_thread.start()
    assert ready.wait(10)
    envelope = bus.publish_threadsafe(Ping(n=9))
    loop_thread.join(10)
    assert received == [envelope]


def abandon_a_parked_receive(sub: Subscription[Any]) -> None:
    """Park a ``sub.receive()`` in an asyncio loop of its own, then close that loop under it."""
    abandoned: list[asyncio.Task[Any]] = []

    async def abandon() -> None:
        abandoned.append(asyncio.get_running_loop().create_task(sub.receive()))
        await asyncio.sleep(0)  # the task parks; the loop then ends without resolving it

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(abandon())
    finally:
        loop.close()
    abandoned[0]._log_destroy_pending = False  # type: ignore[attr-defined]  # (on purpose)


def test_a_bus_outlives_an_event_loop_whose_consumer_was_left_waiting() -> None:
    bus = EventBus[Ping]()
    abandon_a_parked_receive(bus.subscribe())

    async def reuse() -> list[int]:
        with bus.subscribe() as second:
            got: list[int] = []

            async def consume() -> None:
                got.append((await second.receive()).seq)

            task = asyncio.get_running_loop().create_task(consume())
            await asyncio.sleep(0)
            bus.publish(Ping())
            await asyncio.wait_for(task, 5)
            return got

    assert asyncio.run(reuse()) == [1]
