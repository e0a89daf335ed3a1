"""Publishing from worker threads.

Run it with ``python examples/threads.py`` (add ``trio`` to run it on trio).

A bus belongs to the event loop it is first used in, and to that loop's thread. Blocking work
(a synchronous SDK, a subprocess wrapper, a CPU-bound parser) runs in worker threads, and
those threads report through :meth:`EventBus.publish_threadsafe`: it hands the publish to the
loop and returns the stamped envelope, so each thread's events keep their order. A plain
``publish()`` from a worker thread raises :exc:`RuntimeError` instead of corrupting the bus.
"""

from __future__ import annotations

import sys

import anyio
import anyio.to_thread
import msgspec

from eventbus import EventBus

WORKERS = 4
STEPS = 250


class StepDone(msgspec.Struct, frozen=True, tag="step_done"):
    """A worker thread finished one step of its blocking job."""

    worker: int
    step: int


def blocking_job(bus: EventBus[StepDone], worker: int) -> None:
    """Runs in a worker thread: blocking work, reported step by step."""
    if worker == 0:
        try:
            bus.publish(StepDone(worker=worker, step=-1))  # wrong: not the loop's thread
        except RuntimeError as exc:
            print(f"worker 0: publish() from a worker thread refused: {exc}")
    for step in range(STEPS):
        # ... the blocking work would be here ...
        bus.publish_threadsafe(StepDone(worker=worker, step=step))


async def main() -> None:
    async with EventBus[StepDone]() as bus:
        # Lossless for this example: a buffer as large as the whole run.
        sub = bus.subscribe(name="collector", max_buffer_size=WORKERS * STEPS)
        last_step = dict.fromkeys(range(WORKERS), -1)

        async def collect() -> None:
            async for envelope in sub:
                event = envelope.event
                assert event.step == last_step[event.worker] + 1, "per-thread order is kept"
                last_step[event.worker] = event.step

        async with anyio.create_task_group() as tg:
            tg.start_soon(collect)
            async with anyio.create_task_group() as workers:
                for worker in range(WORKERS):
                    workers.start_soon(anyio.to_thread.run_sync, blocking_job, bus, worker)
            bus.close()  # every worker is done: let the collector drain and stop

        stats = sub.statistics()
        print(f"published {bus.statistics().published} events from {WORKERS} threads")
        print(f"collector delivered={stats.delivered} lagged={stats.lagged}")
        print(f"last step per worker: {last_step}")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
