import asyncio
import time
import timeit

import anyio
import anyio.lowlevel

from benchmarks.events import event_pool
from benchmarks.floors import DequeFloor
from eventbus import EventBus

ev = event_pool(1)[0]


def t(stmt, g, n=50_000):
    return min(timeit.repeat(stmt, globals=g, number=n, repeat=5)) / n * 1e9


async def main():
    print(f"{t('E()', {'E': anyio.Event}):6.0f} ns anyio.Event()")
    print(f"{t('e.set()', {'e': anyio.Event()}):6.0f} ns anyio Event.set() already set")
    print(f"{t('E()', {'E': asyncio.Event}):6.0f} ns asyncio.Event()")
    from anyio._core._eventloop import get_async_backend

    print(f"{t('g()', {'g': get_async_backend}):6.0f} ns anyio get_async_backend()")
    import sniffio

    print(
        f"{t('g()', {'g': sniffio.current_async_library}):6.0f} ns sniffio.current_async_library()"
    )
    # a full wait/wake cycle between two tasks: publish one, consumer wakes, repeat
    for name, make in (("eventbus", lambda: EventBus()), ("floor_i", lambda: DequeFloor(256))):
        bus = make()
        sub = bus.subscribe()
        pub = bus.publish
        n = 20000
        got = 0

        async def consumer(sub=sub):
            nonlocal got
            async for _ in sub:
                got += 1

        task = asyncio.create_task(consumer())
        await asyncio.sleep(0)
        t0 = time.perf_counter_ns()
        for _ in range(n):
            pub(ev)
            await asyncio.sleep(0)  # consumer takes it and parks again
            await asyncio.sleep(0)
        dt = (time.perf_counter_ns() - t0) / n
        bus.close()
        await task
        print(
            f"{dt:6.0f} ns one publish + wake + receive + park cycle ({name}, incl. 2x sleep(0))"
        )


asyncio.run(main())
