"""Workload B: publish -> receive latency, one event at a time.

The publisher stamps ``perf_counter_ns()`` just before each publish, then waits until all S
consumers have it; each consumer records the time since that stamp when the event reaches it.
Before each publish the publisher yields twice, so every consumer is parked waiting: a sample is
publish cost + wake-up + scheduling + receive, per (event, consumer), from idle. The first
``b_warmup`` events are not recorded. Per trial: p50 and p99 over the samples, in ns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .common import (
    Config,
    interleaved,
    percentile,
    perf_ns,
    progress,
    run_fresh,
    scaled,
    with_system,
)
from .events import event_pool
from .systems import System


class _Probe:
    __slots__ = ("done", "left", "samples", "subscribers", "t0")

    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.samples: list[int] = []
        self.t0 = 0
        self.left = 0
        self.done: asyncio.Future[None] | None = None

    def hit(self) -> None:
        self.samples.append(perf_ns() - self.t0)
        self.left -= 1
        if self.left == 0 and self.done is not None:
            self.done.set_result(None)


async def _consume(iterable: Any, probe: _Probe) -> None:
    hit = probe.hit
    async for _ in iterable:
        hit()


def _handler(probe: _Probe) -> Any:
    hit = probe.hit

    async def handler(*_args: Any, **_kwargs: Any) -> None:
        hit()

    return handler


async def trial(
    system_cls: type[System], subscribers: int, events: int, warmup: int
) -> dict[str, Any]:
    """One trial; returns ``p50_ns``, ``p99_ns`` and the sample count."""
    return await with_system(system_cls, _trial, subscribers, events, warmup)  # type: ignore[no-any-return]


async def _trial(system: System, subscribers: int, events: int, warmup: int) -> dict[str, Any]:
    pool = event_pool(1000)
    probe = _Probe(subscribers)
    tasks = []
    if system.style == "iter":
        for _ in range(subscribers):
            tasks.append(asyncio.create_task(_consume(system.subscribe(), probe)))
    else:
        for _ in range(subscribers):
            system.add_handler(_handler(probe))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    publish = system.publish
    apublish = system.apublish
    for i in range(warmup + events):
        if i == warmup:
            probe.samples.clear()
        probe.left = subscribers
        probe.done = done = loop.create_future()
        event = pool[i % 1000]
        # Let every consumer park in its wait first: a consumer still in the ready queue
        # (anyio's receive checkpoints after each item) would skip its wake-up.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        probe.t0 = perf_ns()
        if publish is not None:
            publish(event)
        else:
            await apublish(event)
        await done
    await system.end()
    await asyncio.gather(*tasks)
    samples = sorted(probe.samples)
    return {
        "p50_ns": percentile(samples, 0.50),
        "p99_ns": percentile(samples, 0.99),
        "samples": len(samples),
    }


def run(cfg: Config, systems: list[type[System]]) -> dict[str, Any]:
    """Run workload B for every S, interleaved and repeated; returns the JSON-able result."""
    cases: dict[str, Any] = {}
    for s in cfg.b_subscribers:
        sizes = {sys.name: scaled(cfg.b_events, sys, s) for sys in systems}
        case: dict[str, Any] = {
            "events": sizes,
            "p50_ns": {sys.name: [None] * cfg.repeats for sys in systems},
            "p99_ns": {sys.name: [None] * cfg.repeats for sys in systems},
            "errors": {},
        }
        for rep, sys in interleaved(systems, cfg.repeats):
            if sys.name in case["errors"]:
                continue
            warmup = min(cfg.b_warmup, sizes[sys.name])
            try:
                r = run_fresh(cfg.trial_timeout, trial, sys, s, sizes[sys.name], warmup)
            except Exception as exc:  # a peer failing must not stop the run
                case["errors"][sys.name] = f"{type(exc).__name__}: {exc}"
                continue
            case["p50_ns"][sys.name][rep] = r["p50_ns"]
            case["p99_ns"][sys.name][rep] = r["p99_ns"]
        progress(f"  B S={s} done")
        cases[str(s)] = case
    return {"warmup_events": cfg.b_warmup, "cases": cases}
