"""Session event logs: record a bus to a file, read it back, replay it, fold it into state.

An agent supervisor keeps an append-only log of its session's events so that a run can be
audited and replayed later. :class:`SessionLogRecorder` writes every envelope published on a
bus to a JSONL file; :func:`read_log` reads such a file (or a log written by the Rust
kernels) back; :func:`replay` publishes it into a bus again; the pure functions
:func:`rebuild_os_snapshot` and the turn-loop projections fold it into state, and
``audit.rebuild_audit_trail`` into an audit trail.

.. code-block:: python

    async with EventBus() as bus, SessionLogRecorder(bus, "session.jsonl"):
        await bus.apublish(Suspended(turn=3, reason="ask_user", pending_calls=("c1",)))

    log = read_log("session.jsonl")
    snapshot = rebuild_os_snapshot(log)           # no I/O, no bus
    assert snapshot.last_suspend.reason == "ask_user"

    async with EventBus() as fresh:
        with fresh.subscribe() as sub:
            await replay(log, fresh)              # same seq, ids, timestamps; replayed=True

The log format
--------------
One JSON object per line, ``\\n``-terminated, UTF-8: an :class:`~eventbus.Envelope` as
canonical JSON (:func:`eventbus.codec.encode_json`), or a gap marker
``{"gap":{"first_seq":a,"last_seq":b,"lost":n}}`` (:class:`LogGap`) standing for envelopes
not recorded: lost by a lossy recorder, skipped because their line would be one the reader
refuses (too long, too deep, unencodable), or left by a cancelled exit. Lines are in
``seq`` order. The reader also accepts Rust kernel logs without envelopes (seed 002
``event_type``-tagged events, seed 002 ``{"seq","ts_ms","kind","event"}`` envelopes, oxios
externally tagged events) and synthesises envelopes for them (``seq`` = line number).

Lossless and lossy
------------------
The recorder subscribes with ``overflow="block"`` by default: it loses nothing (only an
envelope it cannot write, or a cancelled exit, leaves a gap marker), and
publishers using ``apublish`` wait when the recorder falls behind (``publish`` raises
:exc:`anyio.WouldBlock`). A lossy recorder never slows publishers; every hole becomes a gap
marker, so a log never has a *silent* hole.

Crash safety
------------
A write cut off by a crash leaves a torn final line: :func:`read_log` skips it, counts it
(``SessionLog.torn_lines``) and logs ``session_log_torn_tail``. A bad line anywhere else is
an error naming its line number, never skipped. Lines longer than ``max_line_bytes`` are
rejected before they are decoded.

Replay
------
:func:`replay` hands copies of the recorded envelopes, with ``replayed=True``, to
:meth:`EventBus.publish_envelope(envelope, keep_seq=True) <eventbus.EventBus.publish_envelope>`,
which keeps ``event_id``, ``ts_ns``, correlation and causation ids and ``seq``, so a
consumer sees the run exactly as it was published live. A bus that has already handed out
the log's first ``seq`` is refused with :exc:`ValueError` (or pass ``keep_seq=False``).

Rebuilding state
----------------
:func:`rebuild_os_snapshot` is deepstrike's ``rebuild_os_snapshot_from_events``: the last
suspension, the last resumed turn, each sub-agent's newest process state, budget overruns,
signal dispositions, and paging, tool-gating and memory counters (:class:`OsSnapshot`).
:func:`log_has_required_categories` checks that a log file's OS events carry the categories
the catalogue gives them. :func:`active_tools`, :func:`scratchpad_step_state`,
:func:`lht_continuation_count`, :func:`last_capacity_action` and
:func:`scratchpad_summary_injected` are the turn-loop projections. All of them take envelopes
or bare events and never do I/O.
"""

from ._log import DEFAULT_MAX_LINE_BYTES, LogGap, SessionLog, read_log
from ._projections import (
    ScratchpadStepState,
    active_tools,
    last_capacity_action,
    lht_continuation_count,
    scratchpad_step_state,
    scratchpad_summary_injected,
)
from ._recorder import FsyncPolicy, RecorderStatistics, SessionLogRecorder
from ._replay import replay
from ._snapshot import (
    BudgetExceededRecord,
    OsSnapshot,
    ProcessRecord,
    SignalDisposedRecord,
    SuspendRecord,
    log_has_required_categories,
    rebuild_os_snapshot,
)

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "BudgetExceededRecord",
    "FsyncPolicy",
    "LogGap",
    "OsSnapshot",
    "ProcessRecord",
    "RecorderStatistics",
    "ScratchpadStepState",
    "SessionLog",
    "SessionLogRecorder",
    "SignalDisposedRecord",
    "SuspendRecord",
    "active_tools",
    "last_capacity_action",
    "lht_continuation_count",
    "log_has_required_categories",
    "read_log",
    "rebuild_os_snapshot",
    "replay",
    "scratchpad_step_state",
    "scratchpad_summary_injected",
]
