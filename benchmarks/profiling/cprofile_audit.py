"""cProfile of one workload D trial: ``python -m benchmarks.profiling.cprofile_audit VARIANT N``.

VARIANT is a name from ``benchmarks.audit.VARIANTS`` (``queued``, ``inline_chain``,
``floor_queued``, ...). Prints the top functions by own time (tottime), then by cumulative.
"""

from __future__ import annotations

import cProfile
import pstats
import sys

from benchmarks import audit
from benchmarks.common import quiet_logs, run_fresh

quiet_logs()
name, n = sys.argv[1], int(sys.argv[2])
variant = audit.BY_NAME[name]
pool = audit.audit_events(1024)
run_fresh(60, audit.trial, variant, pool, 2000)  # warm-up
prof = cProfile.Profile()
prof.enable()
run_fresh(60, audit.trial, variant, pool, n)
prof.disable()
stats = pstats.Stats(prof)
stats.sort_stats("tottime").print_stats(22)
stats.sort_stats("cumulative").print_stats(25)
