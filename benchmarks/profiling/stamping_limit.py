"""What stamping an envelope costs against floor (i), with everything else taken away.

``python -m benchmarks.profiling.stamping_limit``: workload A (S=1) and B (S=1) trials of
floor (i), of ``eventbus.EventBus`` and of a *minimal stamping bus*: floor (ii)'s shared ring
and one shared future, a consumer with a one-comparison fast path, and a publish that does
nothing but stamp. No thread guard, no routes, filters, taps, causation or lag logging; only
the stamp varies:

* ``envelope``: ``Envelope(seq, event_id, time_ns(), kind, event)``, what the bus stamps;
* ``no_id``: the same without building the id string;
* ``no_id_no_time``: without the id and without reading the clock;
* ``tuple``: a bare ``(seq, time_ns(), event)`` instead of an envelope;
* ``bare``: the event itself (floor (ii) plus a seq counter).

Each variant runs interleaved with floor (i) and the bus, 5 repeats, medians of the per-repeat
ratios. It shows how far below issue 7's S=1 targets (A >= 0.6x, B <= 1.2x) any bus that
stamps a wall-clock time into an envelope per publish stays in CPython: the envelope, the id
and the clock read each cost tens of ns (allocation, and deallocation when the ring slot is
reused) that floor (i)'s ``deque.append`` of a pooled event never pays.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from benchmarks import latency, throughput
from benchmarks.common import quiet_logs, run_fresh
from benchmarks.systems import BusSystem, System, by_name
from eventbus import Envelope

_ID_LOW = tuple(f"{n:03x}" for n in range(4096))
_PREFIX = "0123456789abcdef0123456789ab-"


class _Sub:
    __slots__ = ("_bus", "_cursor", "_hwm", "_limit")

    def __init__(self, bus: _Bus) -> None:
        self._bus = bus
        self._cursor = bus.pos
        self._limit = 0
        self._hwm = 0

    def __aiter__(self) -> _Sub:
        return self

    async def __anext__(self) -> Any:
        # Ready and within the high-water mark and the budget: one test. A woken consumer
        # takes in the same frame, with no builtin call (a max() here cost B S=1 ~0.07x).
        bus = self._bus
        pos = self._cursor
        ready = bus.pos - pos
        while ready <= 0:
            if bus.closed:
                raise StopAsyncIteration
            future = bus.future
            if future is None:
                future = bus.future = asyncio.get_running_loop().create_future()
            await future
            ready = bus.pos - pos
        if not (ready <= self._hwm and pos < self._limit):
            if ready > self._hwm:
                self._hwm = ready
            self._limit = pos + 64
        self._cursor = pos + 1
        return bus.ring[pos & bus.mask]


class _Bus:
    def __init__(self, stamp: str) -> None:
        self.ring: list[Any] = [None] * 256
        self.mask = 255
        self.pos = 0
        self.seq = 0
        self.id_high = _PREFIX + "0" * 11
        self.future: asyncio.Future[None] | None = None
        self.closed = False
        self.publish = getattr(self, f"_publish_{stamp}")

    def subscribe(self) -> _Sub:
        return _Sub(self)

    def _store(self, item: Any) -> None:
        pos = self.pos
        self.ring[pos & self.mask] = item
        self.pos = pos + 1
        future = self.future
        if future is not None:
            self.future = None
            future.set_result(None)

    def _publish_envelope(self, event: Any) -> None:
        self.seq = seq = self.seq + 1
        low = seq & 4095
        if not low:
            self.id_high = f"{_PREFIX}{seq >> 12:011x}"
        self._store(Envelope(seq, self.id_high + _ID_LOW[low], time.time_ns(), "k", event))

    def _publish_no_id(self, event: Any) -> None:
        self.seq = seq = self.seq + 1
        self._store(Envelope(seq, _PREFIX, time.time_ns(), "k", event))

    def _publish_no_id_no_time(self, event: Any) -> None:
        self.seq = seq = self.seq + 1
        self._store(Envelope(seq, _PREFIX, 0, "k", event))

    def _publish_tuple(self, event: Any) -> None:
        self.seq = seq = self.seq + 1
        self._store((seq, time.time_ns(), event))

    def _publish_bare(self, event: Any) -> None:
        self.seq += 1
        self._store(event)

    def close(self) -> None:
        self.closed = True
        if self.future is not None:
            self.future.set_result(None)
            self.future = None


def _system(stamp: str) -> type[System]:
    class Minimal(BusSystem):
        name = f"minimal_{stamp}"
        label = f"minimal stamping bus ({stamp})"

        def make_bus(self, capacity: int) -> Any:
            return _Bus(stamp)

    return Minimal


def main() -> None:
    quiet_logs()
    floor, ours = by_name(["floor_i", "eventbus"])
    stamps = sys.argv[1:] or ["envelope", "no_id", "no_id_no_time", "tuple", "bare"]
    systems = [ours, *(_system(s) for s in stamps)]
    a: dict[str, list[float]] = {s.name: [] for s in systems}
    b: dict[str, list[float]] = {s.name: [] for s in systems}
    for _ in range(5):
        base_a = run_fresh(60, throughput.trial, floor, 1, 300_000)["deliveries_per_s"]
        base_b = run_fresh(60, latency.trial, floor, 1, 2000, 200)["p50_ns"]
        for system in systems:
            r = run_fresh(60, throughput.trial, system, 1, 300_000)
            a[system.name].append(r["deliveries_per_s"] / base_a)
            r = run_fresh(60, latency.trial, system, 1, 2000, 200)
            b[system.name].append(r["p50_ns"] / base_b)
    print("| system | A S=1 deliveries/s vs floor (i) | B S=1 p50 vs floor (i) |")
    print("| --- | --- | --- |")
    for system in systems:
        print(
            f"| {system.label} | {statistics.median(a[system.name]):.2f}x "
            f"| {statistics.median(b[system.name]):.2f}x |"
        )


if __name__ == "__main__":
    main()
