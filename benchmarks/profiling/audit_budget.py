"""The per-entry budget of workload D's ``queued`` path next to its floor, stage by stage.

``python -m benchmarks.profiling.audit_budget``: on D's event mix (1,024 events, best of 9
passes, ns per event), the three synchronous stages a queued entry goes through, each timed
alone in a loop, for the bus + auditor and for the floor:

* publish: ``EventBus.publish`` with the auditor's subscription attached (the ring write and
  the envelope stamping) vs ``DequeFloor.publish`` with one subscriber (a deque append);
* take: ``Subscription.receive_nowait`` on a filled subscription vs ``deque.popleft``;
* record: ``Auditor._record`` (map, redact, encode, append; with and without the hash chain)
  vs ``FloorRecorder.record`` (match, Struct, deque append).

What the sum leaves out is the scheduling both pay once per burst of 50 (the publisher's
``sleep(0)``, waking and parking the consumer task); compare the sums with D's entries/s
(``1e9 / entries_per_s`` ns per entry) to see it. Nothing in ``audit/`` or ``eventbus/`` is
changed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from audit import AuditMapper, AuditTrail
from audit._consumer import Auditor
from benchmarks.audit import TRAIL_CAPACITY, FloorRecorder, audit_events
from benchmarks.common import CAPACITY
from benchmarks.floors import DequeFloor
from eventbus import EventBus

PASSES = 9


def timed(fn: Any, items: list[Any]) -> float:
    """ns per item of one pass of ``fn(item)``."""
    t0 = time.perf_counter_ns()
    for x in items:
        fn(x)
    return (time.perf_counter_ns() - t0) / len(items)


def auditor(bus: EventBus[Any], chain: bool) -> Auditor:
    return Auditor(
        bus,
        AuditTrail(TRAIL_CAPACITY, hash_chain=chain),
        mapper=MAPPER,  # warm, as in a trial: every class resolved on its first event
        mode="queued",
        max_buffer_size=len(EVENTS),
        name="budget",
        sink=None,
        resume=False,
        on_sink_error="raise",
        sink_batch_size=512,
        sink_buffer_size=16_384,
    )


EVENTS = audit_events(1024)
MAPPER = AuditMapper()


async def main() -> None:
    n = len(EVENTS)
    rows: dict[str, list[float]] = {}

    def add(label: str, ns: float) -> None:
        rows.setdefault(label, []).append(ns)

    for _ in range(PASSES):
        # the bus: publish with the auditor's subscription, take, record
        async with EventBus[Any](max_buffer_size=CAPACITY) as bus:
            sub = bus.subscribe(max_buffer_size=n, name="audit")
            add("bus: publish (envelope + ring write)", timed(bus.publish, EVENTS))
            take = sub.receive_nowait
            t0 = time.perf_counter_ns()
            envelopes = [take() for _ in range(n)]
            add("bus: take (receive_nowait, into a list)", (time.perf_counter_ns() - t0) / n)
            sub.close()
        for chain in (False, True):
            aud = auditor(bus, chain)
            aud._last_seq = envelopes[0].seq - 1
            label = f"audit: _record, {'chain' if chain else 'no chain'}"
            add(label, timed(aud._record, envelopes))
        # the floor: publish to one deque subscriber, popleft, record
        floor = DequeFloor(n)
        fsub = floor.subscribe()
        add("floor: publish (deque append)", timed(floor.publish, EVENTS))
        q: deque[Any] = fsub.queue
        t0 = time.perf_counter_ns()
        events = [q.popleft() for _ in range(n)]
        add("floor: take (popleft, into a list)", (time.perf_counter_ns() - t0) / n)
        rec = FloorRecorder(TRAIL_CAPACITY)
        add("floor: record (match, Struct, deque)", timed(rec.record, events))
        t0 = time.perf_counter_ns()
        _ = [None for _ in range(n)]
        empty = (time.perf_counter_ns() - t0) / n
        add("(empty list comprehension, included in both takes)", empty)

    bestof = {label: min(v) for label, v in rows.items()}
    width = max(map(len, bestof))
    for label, ns in bestof.items():
        print(f"{label:<{width}}  {ns:7.0f} ns")
    audit = sum(bestof[k] for k in bestof if k.startswith("bus:"))
    audit += bestof["audit: _record, no chain"]
    floor_sum = sum(bestof[k] for k in bestof if k.startswith("floor:"))
    print(f"{'sum, queued no chain':<{width}}  {audit:7.0f} ns")
    print(f"{'sum, floor':<{width}}  {floor_sum:7.0f} ns")
    print(f"{'ratio of the sums (floor / queued)':<{width}}  {floor_sum / audit:7.2f}")


if __name__ == "__main__":
    asyncio.run(main())
