"""The benchmark harness of kernel-eventbus: ``python -m benchmarks --quick`` (or ``--full``).

It measures this project's :class:`eventbus.EventBus` side by side with two pure-Python floors
(:mod:`benchmarks.floors`) and the Python peers (:mod:`benchmarks.systems`), on the workloads
of issue 7: A fan-out throughput (:mod:`benchmarks.throughput`), B latency
(:mod:`benchmarks.latency`), C one stalled subscriber (:mod:`benchmarks.stall`), E codecs
(:mod:`benchmarks.codecs`) and F many idle subscriptions (:mod:`benchmarks.scale`). Workload D
(the audit path) is added as one more module once ``attach_audit_trail`` exists.

Results go to ``benchmarks/results/<date>-<mode>.md`` and a ``.json`` twin; see
``benchmarks/README.md``. Not part of the installed library.
"""

__all__: list[str] = []
