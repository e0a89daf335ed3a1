import statistics
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import prototype as proto

from benchmarks import latency, throughput
from benchmarks.common import quiet_logs, run_fresh
from benchmarks.systems import by_name

quiet_logs()
which = sys.argv[1].split(",")
proto.apply(which)
fi, ours = by_name(["floor_i", "eventbus"])
for s, n in ((1, 300000), (10, 30000), (100, 3000)):
    rs = []
    for _ in range(5):
        a = run_fresh(60, throughput.trial, ours, s, n)["deliveries_per_s"]
        b = run_fresh(60, throughput.trial, fi, s, n)["deliveries_per_s"]
        rs.append(a / b)
    print(f"A S={s}: deliveries ratio to floor_i {statistics.median(rs):.2f}")
for s in (1, 10):
    r50, r99 = [], []
    for _ in range(5):
        a = run_fresh(60, latency.trial, ours, s, 2000, 200)
        b = run_fresh(60, latency.trial, fi, s, 2000, 200)
        r50.append(a["p50_ns"] / b["p50_ns"])
        r99.append(a["p99_ns"] / b["p99_ns"])
    print(
        f"B S={s}: p50 ratio {statistics.median(r50):.2f}, p99 ratio {statistics.median(r99):.2f}"
    )
