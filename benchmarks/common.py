"""What every workload shares: configuration, fresh-loop trials, interleaving, statistics."""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from .systems import System

perf_ns = time.perf_counter_ns

#: Events published between two yields to the event loop in workloads A and C. Smaller than
#: every system's queue (256, bubus's 50-slot queue) so a keeping-up consumer never loses one.
BATCH = 50

#: The capacity of every bounded subscriber queue (the bus's default).
CAPACITY = 256


@dataclass(frozen=True)
class Config:
    """Sizes of one harness run; ``quick`` and ``full`` are the two presets."""

    mode: str
    repeats: int
    a_deliveries: int  # per trial: events = a_deliveries / S
    a_subscribers: tuple[int, ...] = (1, 10, 100)
    b_events: int = 2000
    b_warmup: int = 200
    b_subscribers: tuple[int, ...] = (1, 10)
    c_events: int = 1_000_000
    c_guard_bytes: int = 256 * 2**20  # a growing peer is stopped past this much traced memory
    c_stall_seconds: float = 1.0  # no publish progress for this long: the publisher is blocked
    c_time_limit: float = 60.0
    c_subprocess: bool = True
    d_events: int = 100_000  # per trial, per audit variant
    d_sqlite_events: int = 15_000  # with the SQLite sink (it syncs each batch); < its buffer
    e_events: int = 2000
    f_sizes: tuple[int, ...] = (1000, 5000, 10_000)
    f_events: int = 50
    trial_timeout: float = 120.0
    extra: dict[str, Any] = field(default_factory=dict)


FULL = Config(mode="full", repeats=5, a_deliveries=300_000)
QUICK = Config(
    mode="quick",
    repeats=5,
    a_deliveries=30_000,
    b_events=300,
    b_warmup=50,
    c_events=50_000,
    d_events=10_000,
    d_sqlite_events=4000,
    e_events=500,
    f_sizes=(200, 1000, 2000),
    f_events=20,
)
TINY = Config(
    mode="tiny",
    repeats=1,
    a_deliveries=600,
    a_subscribers=(1, 3),
    b_events=20,
    b_warmup=2,
    b_subscribers=(1, 2),
    c_events=2000,
    c_stall_seconds=0.3,
    c_time_limit=20.0,
    c_subprocess=False,
    d_events=300,
    d_sqlite_events=200,
    e_events=20,
    f_sizes=(10, 20),
    f_events=5,
    trial_timeout=30.0,
)


def scaled(n: int, system: type[System], fanout: int = 1, minimum: int = 10) -> int:
    """``n`` events scaled down for a slow system (see ``System.scale``/``max_deliveries``)."""
    n = int(n * system.scale)
    if system.max_deliveries is not None:
        n = min(n, system.max_deliveries // fanout)
    return max(minimum, n)


def run_fresh(timeout: float, make: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    """Run ``make(*args)`` in a fresh loop after a full collection; fail after ``timeout`` s."""
    gc.collect()

    async def guarded() -> Any:
        return await asyncio.wait_for(make(*args), timeout)

    return asyncio.run(guarded())


async def with_system(
    system_cls: type[System], body: Callable[..., Coroutine[Any, Any, Any]], *args: Any
) -> Any:
    """Build the system in the running loop, run ``body(system, *args)``, always close it."""
    system = system_cls(CAPACITY)
    try:
        return await body(system, *args)
    finally:
        await system.close()


async def publish_bursts(
    publish: Callable[[Any], Any] | None,
    apublish: Callable[[Any], Coroutine[Any, Any, Any]] | None,
    pool: list[Any],
    events: int,
    after_batch: Callable[[], Coroutine[Any, Any, Any]] | None = None,
) -> int:
    """Publish ``events`` events from ``pool`` in bursts of :data:`BATCH` (``publish`` when
    the system has one, else ``await apublish``), awaiting ``after_batch()`` between bursts.

    :returns: the nanoseconds spent inside the publish calls.
    """
    pause = after_batch or _yield
    in_publish = 0
    done = 0
    size = len(pool)
    while done < events:
        j = done % size
        batch = pool[j : j + min(BATCH, events - done, size - j)]
        t0 = perf_ns()
        if publish is not None:
            for event in batch:
                publish(event)
        else:
            assert apublish is not None
            for event in batch:
                await apublish(event)
        in_publish += perf_ns() - t0
        done += len(batch)
        await pause()
    return in_publish


async def _yield() -> None:
    await asyncio.sleep(0)


def interleaved(systems: list[type[System]], repeats: int) -> Iterator[tuple[int, type[System]]]:
    """Every system once per repeat, the order rotated each repeat so none always goes first."""
    for rep in range(repeats):
        k = rep % len(systems)
        for system in systems[k:] + systems[:k]:
            yield rep, system


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of per-repeat values."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def ratios(ours: list[float | None], other: list[float | None]) -> list[float] | None:
    """Per-repeat ``ours / other`` (repeats where either failed are left out)."""
    out = [a / b for a, b in zip(ours, other, strict=False) if a is not None and b]
    return out or None


def percentile(sorted_values: list[int], q: float) -> float:
    """The ``q``-quantile (0..1) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[k])


def quiet_logs() -> None:
    """Keep the systems' logs off stdout and cheap: the harness is the application here.

    structlog keeps only errors (the bus logs lag once per burst, at warning level), and the
    peers' stdlib loggers only critical records; their messages are still built, as they
    would be in an application that keeps them.
    """
    import logging

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    for name in ("bubus", "aiopubsub", "pyee", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def progress(message: str) -> None:
    """One line of progress on stderr (stdout carries the summary)."""
    print(message, file=sys.stderr, flush=True)
