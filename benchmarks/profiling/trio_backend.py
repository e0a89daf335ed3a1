"""Workloads A and B on trio: the bus next to trio's own memory channels.

``python -m benchmarks.profiling.trio_backend [--repeats 5] [--events 2000]``: the harness runs
on asyncio only (issue 7's targets are for the asyncio loop), so this script measures what a
trio user gets. The reference is the trio idiom for the same job, one
``trio.open_memory_channel(256)`` per subscriber fed with ``send_nowait``, and with an
awaited ``send`` only when that channel is full (a channel's ``receive`` is a checkpoint per
item, so its consumers fall behind a burst; the publisher then waits, it never drops). The bus
runs with plain subscriptions (the shared ring) and with ``kinds=`` filtered ones (private
queues); its ``publish`` never waits.

* A: ``S`` consumers, ``N`` events published in bursts of ``BATCH``, one checkpoint between
  bursts: deliveries/s, median over repeats.
* B: one event at a time, every consumer parked first (``wait_all_tasks_blocked``), a sample is
  ``perf_counter_ns`` from just before the publish to the consumer's receipt: p50 and p99.

Each trial is a fresh ``trio.run``; systems run interleaved within a repeat. Ratios are to the
memory channels of the same repeat (< 1 is faster for B, slower for A).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import trio
import trio.testing

from benchmarks.common import BATCH, CAPACITY, quiet_logs
from benchmarks.events import BenchEvent, event_pool

perf_ns = time.perf_counter_ns


class _Channels:
    """One memory channel per subscriber; ``publish`` is a ``send_nowait`` to each."""

    def __init__(self) -> None:
        self.senders: list[Any] = []

    def subscribe(self) -> Any:
        send, receive = trio.open_memory_channel[Any](CAPACITY)
        self.senders.append(send)
        return receive

    def publish(self, event: Any) -> None:
        for send in self.senders:
            send.send_nowait(event)

    async def burst(self, events: list[Any]) -> None:
        for event in events:
            for send in self.senders:
                try:
                    send.send_nowait(event)
                except trio.WouldBlock:
                    await send.send(event)

    def close(self) -> None:
        for send in self.senders:
            send.close()


class _Bus:
    def __init__(self, kinds: bool) -> None:
        from eventbus import EventBus

        self.bus: Any = EventBus(max_buffer_size=CAPACITY)
        self.kinds = kinds
        self.publish = self.bus.publish

    def subscribe(self) -> Any:
        return self.bus.subscribe(kinds=[BenchEvent]) if self.kinds else self.bus.subscribe()

    async def burst(self, events: list[Any]) -> None:
        publish = self.publish
        for event in events:
            publish(event)

    def close(self) -> None:
        self.bus.close()


SYSTEMS: dict[str, Callable[[], Any]] = {
    "trio_channels": _Channels,
    "eventbus": lambda: _Bus(kinds=False),
    "eventbus_kinds": lambda: _Bus(kinds=True),
}


async def throughput(make: Callable[[], Any], subscribers: int, events: int) -> float:
    """Workload A on trio: deliveries/s (``events`` rounded down to whole bursts); raises
    ``AssertionError`` if a delivery is lost."""
    pool = event_pool(1000)
    system = make()
    counts = [0] * subscribers

    async def consume(iterable: Any, index: int) -> None:
        async for _ in iterable:
            counts[index] += 1

    async with trio.open_nursery() as nursery:
        for i in range(subscribers):
            nursery.start_soon(consume, system.subscribe(), i)
        await trio.testing.wait_all_tasks_blocked()
        bursts = [pool[i : i + BATCH] for i in range(0, 1000, BATCH)]
        burst = system.burst
        start = perf_ns()
        for i in range(events // BATCH):
            await burst(bursts[i % len(bursts)])
            await trio.lowlevel.checkpoint()
        system.close()
    elapsed = perf_ns() - start
    events -= events % BATCH
    assert counts == [events] * subscribers, counts
    return subscribers * events / (elapsed / 1e9)


async def latency(make: Callable[[], Any], subscribers: int, events: int) -> tuple[int, int]:
    """Workload B on trio: (p50, p99) in ns over ``subscribers`` x ``events`` samples."""
    pool = event_pool(1000)
    system = make()
    samples: list[int] = []
    t0 = 0
    left = 0
    done = trio.Event()

    async def consume(iterable: Any) -> None:
        nonlocal left
        async for _ in iterable:
            samples.append(perf_ns() - t0)
            left -= 1
            if left == 0:
                done.set()

    async with trio.open_nursery() as nursery:
        for _ in range(subscribers):
            nursery.start_soon(consume, system.subscribe())
        publish = system.publish
        for i in range(events):
            await trio.testing.wait_all_tasks_blocked()
            left = subscribers
            done = trio.Event()
            t0 = perf_ns()
            publish(pool[i % 1000])
            await done.wait()
        system.close()
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling.trio_backend")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--events", type=int, default=2000, help="events per B trial")
    parser.add_argument("--deliveries", type=int, default=300_000, help="per A trial")
    args = parser.parse_args(argv)
    quiet_logs()
    print(f"trio {trio.__version__}, {args.repeats} repeats; ratios to trio_channels")
    print("| workload | " + " | ".join(SYSTEMS) + " |")
    print("| --- |" + " --- |" * len(SYSTEMS))
    for s in (1, 10, 100):
        rates: dict[str, list[float]] = {name: [] for name in SYSTEMS}
        for _ in range(args.repeats):
            for name, make in SYSTEMS.items():
                rates[name].append(trio.run(throughput, make, s, args.deliveries // s))
        _row(f"A S={s} deliveries/s", rates, higher=True)
    for s in (1, 10):
        p50: dict[str, list[float]] = {name: [] for name in SYSTEMS}
        p99: dict[str, list[float]] = {name: [] for name in SYSTEMS}
        for _ in range(args.repeats):
            for name, make in SYSTEMS.items():
                a, b = trio.run(latency, make, s, args.events)
                p50[name].append(a)
                p99[name].append(b)
        _row(f"B S={s} p50 ns", p50, higher=False)
        _row(f"B S={s} p99 ns", p99, higher=False)


def _row(label: str, values: dict[str, list[float]], *, higher: bool) -> None:
    base = values["trio_channels"]
    cells = []
    for vals in values.values():
        ratio = statistics.median(v / b for v, b in zip(vals, base, strict=True))
        figure = statistics.median(vals)
        shown = f"{figure / 1e6:.2f} M/s" if higher else f"{figure:,.0f}"
        cells.append(f"{shown} ({ratio:.2f}x)")
    print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
