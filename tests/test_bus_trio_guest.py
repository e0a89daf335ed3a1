"""Trio as a guest on an asyncio loop (``trio.lowlevel.start_guest_run``).

The asyncio loop is running while a trio task runs, so a bus that asked asyncio first
handed trio tasks asyncio futures to await, which trio refuses ("trio.run received
unrecognized yield message <Future pending>").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import trio
import trio.testing

from eventbus import EventBus

T = TypeVar("T")


class Ping(msgspec.Struct, frozen=True, tag="ping"):
    n: int = 0


class Pong(msgspec.Struct, frozen=True, tag="pong"):
    n: int = 0


def run_as_guest(
    trio_main: Callable[[], Awaitable[T]],
    host_side: Callable[[], Awaitable[Any]] | None = None,
) -> T:
    """Run ``trio_main`` in trio as a guest of ``asyncio.run``; ``host_side`` runs meanwhile
    as an asyncio task of the host loop. Returns what ``trio_main`` returned."""

    async def host() -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=done.set_result,
        )
        other = None if host_side is None else asyncio.create_task(host_side())
        outcome = await asyncio.wait_for(done, 10)
        if other is not None:
            await asyncio.wait_for(other, 10)
        result: T = outcome.unwrap()
        return result

    return asyncio.run(host())


def test_a_trio_guest_consumes_what_it_publishes_on_every_subscription_kind() -> None:
    async def main() -> dict[str, list[int]]:
        got: dict[str, list[int]] = {"ring": [], "kinds": [], "block": []}
        with trio.fail_after(5):
            async with EventBus[Any]() as bus:
                subs = {
                    "ring": bus.subscribe(),
                    "kinds": bus.subscribe(kinds=[Ping]),
                    "block": bus.subscribe(overflow="block", max_buffer_size=1),
                }

                async def consume(name: str) -> None:
                    async for envelope in subs[name]:
                        if isinstance(envelope.event, Ping):
                            got[name].append(envelope.event.n)
                        if len(got[name]) == 3:
                            return

                async with trio.open_nursery() as nursery:
                    for name in subs:
                        nursery.start_soon(consume, name)
                    await trio.testing.wait_all_tasks_blocked()  # every consumer parked
                    await bus.apublish(Pong())  # not for the kinds= subscriber
                    for n in range(3):
                        await bus.apublish(Ping(n=n))  # waits for the block subscriber
        return got

    assert run_as_guest(main) == {"ring": [0, 1, 2], "kinds": [0, 1, 2], "block": [0, 1, 2]}


def test_a_trio_guest_receives_what_a_worker_thread_publishes_threadsafe() -> None:
    async def main() -> list[int]:
        with trio.fail_after(5):
            async with EventBus[Ping]() as bus:
                sub = bus.subscribe(kinds=[Ping])
                ring = bus.subscribe()
                got: list[int] = []

                async def consume() -> None:
                    for _ in range(3):
                        got.append((await sub.receive()).event.n)
                        got.append((await ring.receive()).event.n)

                def worker() -> None:
                    for n in range(3):
                        bus.publish_threadsafe(Ping(n=n))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(consume)
                    await trio.testing.wait_all_tasks_blocked()  # parked in receive
                    await trio.to_thread.run_sync(worker)
                return got

    assert run_as_guest(main) == [0, 0, 1, 1, 2, 2]


def test_the_asyncio_host_keeps_its_own_bus_while_a_trio_guest_runs() -> None:
    # Host tasks run between the guest's ticks: they must still park on asyncio futures.
    async def guest() -> int:
        with trio.fail_after(5):
            async with EventBus[Ping]() as bus:
                sub = bus.subscribe()
                for n in range(50):
                    bus.publish(Ping(n=n))
                    await trio.lowlevel.checkpoint()
                    assert (await sub.receive()).event.n == n
        return 50

    async def host_side() -> list[int]:
        async with EventBus[Ping]() as bus:
            sub = bus.subscribe()
            received: list[int] = []

            async def consume() -> None:
                async for envelope in sub:
                    received.append(envelope.event.n)
                    if len(received) == 50:
                        return

            task = asyncio.create_task(consume())
            for n in range(50):
                await asyncio.sleep(0)  # (a checkpoint: let the guest tick in between)
                bus.publish(Ping(n=n))
            await asyncio.wait_for(task, 5)
            assert received == list(range(50))
            return received

    assert run_as_guest(guest, host_side) == 50
