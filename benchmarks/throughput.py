"""Workload A: fan-out throughput.

N events to S subscribers, each consuming in its own task (or, for callback systems, each a
handler). The publisher publishes bursts of ``BATCH`` events, then yields once to the loop; the
trial ends when every consumer has seen the end of the stream. Measured per trial:

* ``deliveries_per_s``: S x N / (first publish .. last consumer done);
* ``publish_ns``: time spent inside the publish calls only, per event (for blinker, whose
  ``send_async`` runs the receivers inline, that includes the deliveries).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .common import (
    BATCH,
    CAPACITY,
    Config,
    interleaved,
    perf_ns,
    progress,
    publish_bursts,
    run_fresh,
    scaled,
    with_system,
)
from .events import event_pool
from .systems import System, consume_count


def _counter(box: list[int]) -> Any:
    async def handler(*_args: Any, **_kwargs: Any) -> None:
        box[0] += 1

    return handler


async def trial(system_cls: type[System], subscribers: int, events: int) -> dict[str, Any]:
    """One trial in the running loop; returns ``deliveries_per_s``, ``publish_ns``, ``lost``."""
    return await with_system(system_cls, _trial, subscribers, events)  # type: ignore[no-any-return]


async def _trial(system: System, subscribers: int, events: int) -> dict[str, Any]:
    pool = event_pool(1000)
    counts = [0] * subscribers
    box = [0]
    tasks = []
    if system.style == "iter":
        for i in range(subscribers):
            tasks.append(asyncio.create_task(consume_count(system.subscribe(), counts, i)))
    else:
        for _ in range(subscribers):
            system.add_handler(_counter(box))
    await asyncio.sleep(0)  # consumers start and wait

    start = perf_ns()
    in_publish = await publish_bursts(
        system.publish, system.apublish, pool, events, system.after_batch
    )
    await system.end()
    await asyncio.gather(*tasks)
    elapsed = perf_ns() - start
    delivered = sum(counts) + box[0]
    return {
        "deliveries_per_s": delivered / (elapsed / 1e9),
        "publish_ns": in_publish / events,
        "lost": subscribers * events - delivered,
    }


def run(cfg: Config, systems: list[type[System]]) -> dict[str, Any]:
    """Run workload A for every S, interleaved and repeated; returns the JSON-able result."""
    cases: dict[str, Any] = {}
    for s in cfg.a_subscribers:
        base = max(BATCH, cfg.a_deliveries // s)
        sizes = {sys.name: scaled(base, sys, s) for sys in systems}
        case: dict[str, Any] = {
            "events": sizes,
            "deliveries_per_s": {sys.name: [None] * cfg.repeats for sys in systems},
            "publish_ns": {sys.name: [None] * cfg.repeats for sys in systems},
            "lost": {sys.name: 0 for sys in systems},
            "errors": {},
        }
        for sys in systems:  # warm-up: imports, caches, specialisation; not recorded
            try:
                run_fresh(60, trial, sys, s, min(sizes[sys.name], 2000))
            except Exception as exc:  # a peer failing must not stop the run
                case["errors"][sys.name] = f"warm-up: {type(exc).__name__}: {exc}"
        for rep, sys in interleaved(systems, cfg.repeats):
            if sys.name in case["errors"]:
                continue
            try:
                r = run_fresh(cfg.trial_timeout, trial, sys, s, sizes[sys.name])
            except Exception as exc:
                case["errors"][sys.name] = f"{type(exc).__name__}: {exc}"
                continue
            case["deliveries_per_s"][sys.name][rep] = r["deliveries_per_s"]
            case["publish_ns"][sys.name][rep] = r["publish_ns"]
            case["lost"][sys.name] += r["lost"]
        progress(f"  A S={s} done")
        cases[str(s)] = case
    return {"batch": BATCH, "capacity": CAPACITY, "cases": cases}
