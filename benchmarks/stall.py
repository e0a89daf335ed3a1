"""Workload C: one stalled subscriber, many events: does memory stay flat, does publishing go on?

Each system gets two healthy consumers and one stalled subscriber (it subscribes and never
reads; for a callback system, its handler never returns), registered last. The publisher
publishes ``c_events`` in bursts of ``BATCH`` with one yield between bursts, under
``tracemalloc``, and is watched:

* **blocked**: no publish progress for ``c_stall_seconds`` (the publisher waits on the stalled
  subscriber), or its publish raised (bubus refuses past 100 pending events);
* **grows**: traced memory passed ``c_guard_bytes``: the run is stopped there, and the growth
  per event is what it retained so far; nothing bounds it;
* **flat**: all events published and ``retained_per_event``, the traced-memory slope between
  the 10% mark (at least twice the queue capacity) and the end, is ~0 (at most 16 bytes); a larger
  slope is **grows** too.

Also recorded: the traced peak, the RSS growth and peak (``/proc/self/status``), what each
healthy consumer got, and the stalled subscriber's loss as the system counts it (``None`` when
it does not count loss) against the exact loss ``published - capacity``.

Each system runs in its own child process (``python -m benchmarks.stall NAME ...``), so one
system's heap does not pollute the next one's RSS.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from .common import (
    BATCH,
    CAPACITY,
    Config,
    interleaved,
    perf_ns,
    progress,
    quiet_logs,
    run_fresh,
    with_system,
)
from .events import event_pool
from .systems import System, by_name

#: Retaining more than this per event past the mark means the system grows without bound.
GROWTH_BYTES_PER_EVENT = 16.0


def _proc_status_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss_bytes() -> int:
    return _proc_status_kb("VmRSS") * 1024


def _hwm_bytes() -> int:
    return _proc_status_kb("VmHWM") * 1024


async def _consume_live(iterable: Any, counts: list[int], index: int) -> None:
    async for _ in iterable:
        counts[index] += 1


async def _stalled_handler(*_args: Any, **_kwargs: Any) -> None:
    await asyncio.Event().wait()


async def trial(
    system_cls: type[System],
    events: int,
    guard_bytes: int,
    stall_seconds: float,
    time_limit: float,
) -> dict[str, Any]:
    """One trial with ``tracemalloc`` running; see the module docstring for the result."""
    return await with_system(system_cls, _trial, events, guard_bytes, stall_seconds, time_limit)  # type: ignore[no-any-return]


async def _trial(
    system: System,
    events: int,
    guard_bytes: int,
    stall_seconds: float,
    time_limit: float,
) -> dict[str, Any]:
    pool = event_pool(1000)
    healthy = 2
    counts = [0] * healthy
    boxes = [[0] for _ in range(healthy)]
    tasks = []
    if system.style == "iter":
        for i in range(healthy):
            tasks.append(asyncio.create_task(_consume_live(system.subscribe(), counts, i)))
        stalled = system.subscribe()
    else:
        for box in boxes:

            async def handler(*_a: Any, box: list[int] = box, **_k: Any) -> None:
                box[0] += 1

            system.add_handler(handler)
        stalled = system.add_handler(_stalled_handler)
    await asyncio.sleep(0)

    state: dict[str, Any] = {"published": 0, "status": "flat", "error": None}
    mark = max(2 * CAPACITY, events // 10)
    marks: dict[str, int] = {}
    base_traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    base_rss = _rss_bytes()
    publish = system.publish
    apublish = system.apublish
    after_batch = system.after_batch
    started = time.monotonic()

    async def publisher() -> None:
        done = 0
        check = 0
        while done < events:
            j = done % 1000
            batch = pool[j : j + min(BATCH, events - done)]
            try:
                if publish is not None:
                    for event in batch:
                        publish(event)
                        done += 1
                        state["published"] = done
                else:
                    for event in batch:
                        await apublish(event)
                        done += 1
                        state["published"] = done
            except Exception as exc:
                state["status"] = "blocked"
                state["error"] = f"publish raised {type(exc).__name__}: {exc}"[:200]
                return
            if done >= mark and "traced" not in marks:
                marks["published"] = done
                marks["traced"] = tracemalloc.get_traced_memory()[0]
                marks["rss"] = _rss_bytes()
            if done - check >= 1000:
                check = done
                if tracemalloc.get_traced_memory()[0] - base_traced > guard_bytes:
                    state["status"] = "grows"
                    return
                if time.monotonic() - started > time_limit:
                    state["status"] = "too slow"
                    return
            await after_batch()

    task = asyncio.create_task(publisher())
    last = -1
    t0 = perf_ns()
    while not task.done():
        await asyncio.wait({task}, timeout=stall_seconds)
        if not task.done() and state["published"] == last:
            state["status"] = "blocked"
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        last = state["published"]
    elapsed = perf_ns() - t0
    for _ in range(20):  # let the healthy consumers take what they can
        await asyncio.sleep(0)
    end_traced, peak_traced = tracemalloc.get_traced_memory()
    end_rss = _rss_bytes()
    published = state["published"]
    retained = None
    if "traced" in marks and published > marks["published"]:
        retained = (end_traced - marks["traced"]) / (published - marks["published"])
    if state["status"] == "grows":
        retained = (end_traced - base_traced) / max(1, published)
    elif state["status"] == "flat" and retained is not None and retained > GROWTH_BYTES_PER_EVENT:
        state["status"] = "grows"
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lagged = system.lag_of(stalled)
    return {
        "status": state["status"],
        "error": state["error"],
        "events": events,
        "published": published,
        "seconds": elapsed / 1e9,
        "retained_per_event": retained,
        "traced_growth": end_traced - base_traced,
        "traced_peak": peak_traced - base_traced,
        "rss_growth": end_rss - base_rss,
        "rss_peak_growth": _hwm_bytes() - base_rss,
        "healthy_delivered": [*counts] if system.style == "iter" else [b[0] for b in boxes],
        "stalled_lagged": lagged,
        "exact_lag": max(0, published - CAPACITY),
    }


def child(name: str, events: int, guard: int, stall: float, limit: float) -> dict[str, Any]:
    """Run one system's trial in this process with ``tracemalloc`` on."""
    (system,) = by_name([name])
    tracemalloc.start()
    try:
        result: dict[str, Any] = run_fresh(limit + 60, trial, system, events, guard, stall, limit)
    finally:
        tracemalloc.stop()
    return result


def run(cfg: Config, systems: list[type[System]]) -> dict[str, Any]:
    """Run workload C once per system (memory is deterministic; time is not the measure)."""
    results: dict[str, Any] = {}
    for _rep, sys_ in interleaved(systems, 1):
        args = (sys_.name, cfg.c_events, cfg.c_guard_bytes, cfg.c_stall_seconds, cfg.c_time_limit)
        try:
            if cfg.c_subprocess:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.stall", *map(str, args)],
                    capture_output=True,
                    text=True,
                    timeout=cfg.c_time_limit + 120,
                    check=True,
                    env={**os.environ, "PYTHONPATH": os.getcwd()},
                )
                results[sys_.name] = json.loads(out.stdout.strip().splitlines()[-1])
            else:
                results[sys_.name] = child(*args)
        except subprocess.CalledProcessError as exc:
            results[sys_.name] = {"status": "error", "error": exc.stderr[-500:]}
        except Exception as exc:  # a peer failing must not stop the run
            results[sys_.name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        progress(f"  C {sys_.name}: {results[sys_.name].get('status')}")
    return {"capacity": CAPACITY, "events": cfg.c_events, "systems": results}


if __name__ == "__main__":
    quiet_logs()
    name, n, guard, stall, limit = sys.argv[1:6]
    print(json.dumps(child(name, int(n), int(guard), float(stall), float(limit))))
