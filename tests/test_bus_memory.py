"""A subscription that never reads costs its capacity, not the stream's length."""

from __future__ import annotations

import gc
import tracemalloc

import msgspec

from eventbus import EventBus


class Tick(msgspec.Struct, frozen=True, tag="tick"):
    n: int


def test_a_stalled_subscription_stays_bounded_over_a_million_events() -> None:
    bus = EventBus[Tick]()
    stalled = bus.subscribe(max_buffer_size=256, name="stalled")
    healthy = bus.subscribe(max_buffer_size=256, name="healthy")
    events = [Tick(n=n) for n in range(1000)]  # shared: measure the bus, not the events
    for event in events:  # warm up: fill the stalled queue to its capacity
        bus.publish(event)
        healthy.receive_nowait()
    gc.collect()
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        publish, receive = bus.publish, healthy.receive_nowait
        seqs_ok = True
        for _ in range(1000):
            for event in events:
                seqs_ok &= publish(event) is receive()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Flat: what is retained does not grow with the number of events published.
    assert current - baseline < 64 * 1024
    assert peak - baseline < 256 * 1024
    assert seqs_ok  # the healthy subscription got every envelope, in order
    stats = stalled.statistics()
    assert (stats.buffered, stats.delivered) == (256, 0)
    assert stats.lagged == 1_001_000 - 256
    assert healthy.statistics().lagged == 0
