import asyncio
import time
import timeit
from contextvars import ContextVar
from threading import get_ident

from benchmarks.common import quiet_logs
from benchmarks.events import event_pool
from benchmarks.floors import DequeFloor
from eventbus import Envelope, EventBus

quiet_logs()
ev = event_pool(1)[0]
N = 200_000


def t(stmt, g, n=N):
    best = min(timeit.repeat(stmt, globals=g, number=n, repeat=5))
    return best / n * 1e9


async def main():
    out = {}
    bus = EventBus(max_buffer_size=N + 10)
    sub = bus.subscribe()
    pub = bus.publish
    out["EventBus.publish, S=1, no waiter (whole)"] = t("pub(ev)", {"pub": pub, "ev": ev})
    sub.close()
    bus0 = EventBus()
    pub0 = bus0.publish
    pub0(ev)
    out["EventBus.publish, S=0 (stamping + checks only)"] = t("pub(ev)", {"pub": pub0, "ev": ev})
    # One subscriber of each queue kind (no waiter): what a route's mode costs per publish.
    for label, kwargs in (
        ("kinds=", {"kinds": [type(ev)]}),
        ('overflow="block"', {"overflow": "block"}),
        ("where=", {"where": lambda e: True}),
    ):
        busq = EventBus(max_buffer_size=N + 10)
        subq = busq.subscribe(**kwargs)
        g = {"pub": busq.publish, "ev": ev, "q": subq._queue}  # type: ignore[attr-defined]
        # Each repeat starts empty, below the high-water mark of the first (a drained queue).
        out[f"EventBus.publish, one {label} subscriber"] = (
            min(timeit.repeat("pub(ev)", setup="q.clear()", globals=g, number=N // 5, repeat=5))
            / (N // 5)
            * 1e9
        )
        if label.startswith("overflow"):
            # apublish with room (the lossless path): 1,000 awaited calls per repeat.
            best = float("inf")
            for _ in range(5):
                subq._queue.clear()  # type: ignore[attr-defined]
                t0 = time.perf_counter_ns()
                for _ in range(1000):
                    await busq.apublish(ev)
                best = min(best, (time.perf_counter_ns() - t0) / 1000)
            out[f"EventBus.apublish, one {label} subscriber with room"] = best
        busq.close()
    f = DequeFloor(N + 10)
    f.subscribe()
    fp = f.publish
    out["floor_i.publish, S=1"] = t("fp(ev)", {"fp": fp, "ev": ev})
    out["get_ident() != x"] = t("gi() != x", {"gi": get_ident, "x": 1})
    cv = ContextVar("c", default=None)
    out["ContextVar.get()"] = t("cv.get()", {"cv": cv})
    out["dict.get(type(ev))"] = t("d.get(type(ev))", {"d": {type(ev): 1}, "ev": ev})
    out["time.time_ns()"] = t("tn()", {"tn": time.time_ns})
    out["prefix + str(10**15 + seq)"] = t(
        "p + str(B + 12345)", {"p": "0123456789abcdef0123456789ab-", "B": 10**15}
    )
    out["Envelope(7 positional args)"] = t(
        "E(1, 'id', 1, 'k', ev, None, None)", {"E": Envelope, "ev": ev}
    )
    out["Envelope(5 positional args, defaults for the rest)"] = t(
        "E(1, 'id', 1, 'k', ev)", {"E": Envelope, "ev": ev}
    )
    out["tuple (seq, ts, ev) for comparison"] = t("(1, 1, ev)", {"ev": ev})
    # consumer side

    async def drain_anext(sub, n):
        a = sub.__anext__
        for _ in range(n):
            await a()

    async def drain_receive(sub, n):
        r = sub.receive
        for _ in range(n):
            await r()

    def drain_nowait(sub, n):
        r = sub.receive_nowait
        for _ in range(n):
            r()

    for label, fn, is_async in (
        ("Subscription.__anext__ (async for), item ready", drain_anext, True),
        ("Subscription.receive(), item ready", drain_receive, True),
        ("Subscription.receive_nowait(), item ready", drain_nowait, False),
    ):
        best = 1e9
        for _ in range(5):
            bus3 = EventBus(max_buffer_size=N + 10)
            s3 = bus3.subscribe()
            for _ in range(N):
                bus3.publish(ev)
            s3._yield_at = 10**12  # no cooperative yield inside the measurement
            t0 = time.perf_counter_ns()
            if is_async:
                await fn(s3, N)
            else:
                fn(s3, N)
            best = min(best, (time.perf_counter_ns() - t0) / N)
        out[label] = best
    best = 1e9
    for _ in range(5):
        fl = DequeFloor(N + 10)
        fs = fl.subscribe()
        for _ in range(N):
            fl.publish(ev)
        a = fs.__anext__
        t0 = time.perf_counter_ns()
        for _ in range(N):
            await a()
        best = min(best, (time.perf_counter_ns() - t0) / N)
    out["floor_i DequeSub.__anext__, item ready"] = best
    # wake-up: anyio Event vs bare future
    import anyio

    out["anyio.Event() create + set()"] = t("e = E(); e.set()", {"E": anyio.Event}, 50_000)
    loop = asyncio.get_running_loop()
    out["loop.create_future() + set_result"] = t(
        "f = cf(); f.set_result(None)", {"cf": loop.create_future}, 50_000
    )
    for k, v in out.items():
        print(f"{v:8.0f} ns  {k}")


asyncio.run(main())
