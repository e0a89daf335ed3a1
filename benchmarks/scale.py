"""Workload F: many idle subscriptions: publish cost and memory per subscription.

For each size n (1k, 5k, 10k in full mode) a fresh system gets n idle subscriptions: for an
iterating system, subscriptions nobody reads yet; for a callback system, n no-op handlers
(built before the memory baseline, so only registration is counted). Measured per trial:

* ``bytes_per_sub``: traced memory growth of creating the n subscriptions / n (``tracemalloc``
  runs only around the subscribing, never while timing);
* ``publish_ns``: time in the publish calls per event (``f_events`` events, fewer than the
  queue capacity, so no subscription overflows);
* ``settle_ns``: time after publishing until no delivery is pending, per event: 0 for queue
  systems, the handlers' run for pyee and bubus (whose ``dispatch`` only enqueues).

``publish_ns / n`` at each size tells whether the cost per subscription stays flat (linear) or
climbs (a quadratic step).
"""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

from .common import CAPACITY, Config, interleaved, perf_ns, progress, run_fresh, with_system
from .events import event_pool
from .systems import System


def _noop(i: int) -> Any:
    async def handler(*_args: Any, **_kwargs: Any) -> None:
        pass

    handler.__name__ = handler.__qualname__ = f"noop_{i}"
    return handler


async def trial(system_cls: type[System], subscribers: int, events: int) -> dict[str, Any]:
    """One trial; returns ``bytes_per_sub``, ``publish_ns`` and ``settle_ns``."""
    return await with_system(system_cls, _trial, subscribers, events)  # type: ignore[no-any-return]


async def _trial(system: System, subscribers: int, events: int) -> dict[str, Any]:
    pool = event_pool(events)
    handlers = [_noop(i) for i in range(subscribers)] if system.style == "callback" else []
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        if system.style == "iter":
            subs = [system.subscribe() for _ in range(subscribers)]
        else:
            subs = [system.add_handler(h) for h in handlers]
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    await asyncio.sleep(0)
    publish = system.publish
    t0 = perf_ns()
    if publish is not None:
        for event in pool:
            publish(event)
    else:
        for event in pool:
            await system.apublish(event)
    t1 = perf_ns()
    await system.settle()
    t2 = perf_ns()
    del subs
    return {
        "bytes_per_sub": grown / subscribers,
        "publish_ns": (t1 - t0) / events,
        "settle_ns": (t2 - t1) / events,
    }


def run(cfg: Config, systems: list[type[System]]) -> dict[str, Any]:
    """Run workload F at each size, interleaved and repeated; returns the JSON-able result."""
    cases: dict[str, Any] = {}
    for n in cfg.f_sizes:
        sizes = {sys.name: max(2, int(cfg.f_events * sys.scale)) for sys in systems}
        case: dict[str, Any] = {
            "events": sizes,
            "bytes_per_sub": {sys.name: [None] * cfg.repeats for sys in systems},
            "publish_ns": {sys.name: [None] * cfg.repeats for sys in systems},
            "settle_ns": {sys.name: [None] * cfg.repeats for sys in systems},
            "errors": {},
        }
        for sys in systems:
            if sys.f_max_subscribers is not None and n > sys.f_max_subscribers:
                case["errors"][sys.name] = (
                    f"skipped above {sys.f_max_subscribers} subscriptions: {sys.f_skip_reason}"
                )
        for rep, sys in interleaved(systems, cfg.repeats):
            if sys.name in case["errors"]:
                continue
            try:
                r = run_fresh(cfg.trial_timeout, trial, sys, n, sizes[sys.name])
            except Exception as exc:  # a peer failing must not stop the run
                case["errors"][sys.name] = f"{type(exc).__name__}: {exc}"
                continue
            for key in ("bytes_per_sub", "publish_ns", "settle_ns"):
                case[key][sys.name][rep] = r[key]
        progress(f"  F n={n} done")
        cases[str(n)] = case
    return {"capacity": CAPACITY, "cases": cases}
