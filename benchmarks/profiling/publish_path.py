"""What each part of ``EventBus.publish`` costs on workload B's critical path (S=1).

``python -m benchmarks.profiling.publish_path [--repeats 9]``: workload B (S=1) trials of
``EventBus`` next to subclasses whose ``publish`` keeps only part of the real one, with the real
ring subscription as the consumer (so only the publish side varies):

* ``lean``: stamp the envelope, write the ring, wake the parked consumer: the least a ring bus
  that stamps envelopes does;
* ``lean+guard``: ``lean`` plus the thread guard (``self._owner != get_ident()``);
* ``lean+route``: ``lean`` plus the route lookup (kind, queue subscriptions, mode) and the
  envelope's correlation/causation fields;
* ``lean+attention``: ``lean`` plus the attention test that decides between the inline wake and
  ``_ring_attention`` (lag logging, trio waiters).

These subclasses are measuring devices only: they skip checks the real bus needs and reach into
its private state. Medians of per-repeat ratios to floor (i)'s p50, interleaved. The point: a
few tens of nanoseconds of warm cost each become roughly twice that on B's cold path, where
every publish runs after the event loop has touched other memory.
"""

from __future__ import annotations

import argparse
import statistics
from threading import get_ident
from typing import Any

from benchmarks import latency
from benchmarks.common import quiet_logs, run_fresh
from benchmarks.systems import OurBus, System, by_name
from eventbus import Envelope, EventBus
from eventbus import _bus as bus_module

_ID_LOW = bus_module._ID_LOW
_time_ns = bus_module._time_ns


# Each variant's publish is compiled from one template, so that every piece is inline (a call
# would cost more than some of the pieces measured) without four hand-written copies.
_TEMPLATE = """
def publish(self, event, *, correlation_id=None, causation_id=None):
{guard}{route}    seq = self._seq + 1
    low = seq & 4095
    if not low:
        self._id_high = f"{{self._id_prefix}}{{seq >> 12:011x}}"
    envelope = Envelope(seq, self._id_high + _ID_LOW[low], _time_ns(), {kind}, event{ids})
    self._seq = seq
    pos = self._ring_pos
    self._ring[pos & self._ring_mask] = envelope
    self._ring_pos = pos = pos + 1
{wake}    return envelope
"""
_GUARD = """    if self._owner != get_ident():
        self._guard("publish")
"""
_ROUTE = """    route = self._routes.get(type(event))
    if route is None:
        route = self._route(type(event))
    kind, _subs, mode = route
    if mode:
        raise AssertionError("only the ring-only route is measured")
"""
_WAKE = """    future = self._ring_future
    if future is not None:
        self._ring_future = None
        self._ring_attn = self._ring_lag_at
        future.set_result(None)
"""
_ATTENTION = """    if pos > self._ring_attn:
        future = self._ring_future
        if future is not None and pos <= self._ring_lag_at and not self._ring_waiting:
            self._ring_future = None
            self._ring_attn = self._ring_lag_at
            future.set_result(None)
        else:
            self._ring_attention(pos)
"""


def _bus_class(*, guard: bool = False, route: bool = False, attention: bool = False) -> type:
    source = _TEMPLATE.format(
        guard=_GUARD if guard else "",
        route=_ROUTE if route else "",
        kind="kind" if route else '"k"',
        ids=", correlation_id, causation_id" if route else "",
        wake=_ATTENTION if attention else _WAKE,
    )
    namespace: dict[str, Any] = {
        "Envelope": Envelope,
        "_ID_LOW": _ID_LOW,
        "_time_ns": _time_ns,
        "get_ident": get_ident,
    }
    exec(compile(source, f"<publish_path guard={guard} route={route}>", "exec"), namespace)
    return type("PartialBus", (EventBus,), {"__slots__": (), "publish": namespace["publish"]})


def _system(cls: type, name: str) -> type[System]:
    class Variant(OurBus):
        def make_bus(self, capacity: int) -> Any:
            return cls(max_buffer_size=capacity)

    Variant.name = Variant.label = name
    return Variant


VARIANTS: tuple[type[System], ...] = (
    _system(_bus_class(), "lean"),
    _system(_bus_class(guard=True), "lean+guard"),
    _system(_bus_class(route=True), "lean+route"),
    _system(_bus_class(attention=True), "lean+attention"),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling.publish_path")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    quiet_logs()
    floor, ours = by_name(["floor_i", "eventbus"])
    systems = [ours, *VARIANTS]
    ratios: dict[str, list[float]] = {s.name: [] for s in systems}
    for _ in range(args.repeats):
        base = run_fresh(60, latency.trial, floor, 1, 2000, 200)["p50_ns"]
        for system in systems:
            p50 = run_fresh(60, latency.trial, system, 1, 2000, 200)["p50_ns"]
            ratios[system.name].append(p50 / base)
    print("| publish | B S=1 p50 vs floor (i) |")
    print("| --- | --- |")
    for system in systems:
        print(f"| {system.name} | {statistics.median(ratios[system.name]):.3f}x |")


if __name__ == "__main__":
    main()
