import asyncio
import cProfile
import pstats
import sys

from benchmarks import latency, throughput
from benchmarks.common import quiet_logs
from benchmarks.systems import by_name

quiet_logs()
name, wl, s, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
(system,) = by_name([name])


def coro():
    if wl == "A":
        return throughput.trial(system, s, n)
    return latency.trial(system, s, n, 10)


asyncio.run(coro())  # warm
pr = cProfile.Profile()
pr.enable()
r = asyncio.run(coro())
pr.disable()
print(r)
st = pstats.Stats(pr)
st.sort_stats("tottime").print_stats(18)
