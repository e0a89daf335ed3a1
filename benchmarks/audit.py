"""Workload D: end-to-end audit entries/s through ``attach_audit_trail``, against a floor.

The same mixed catalogue events (``eventbus.events``: a tool call started with small
``tool_args``, one finished, a token-usage update, an agent started; one tool call in 16
carries an ``Authorization`` header, so the redaction path runs too) are published in bursts of
``BATCH`` with one yield to the loop between bursts, exactly like workload A, to:

* ``floor_queued``, the audit floor: floor (i)'s bus (:class:`~benchmarks.floors.DequeFloor`)
  feeding one consumer task that does a ``match`` on the event type, builds a small msgspec
  Struct entry and appends it to a ``deque(maxlen)``: the least work a queued audit consumer
  can do (no envelope, no JSON, no redaction, no hash);
* ``floor_inline``: the same work done synchronously inside the floor's publish (a callback,
  as the bus runs a tap), for the ``inline`` mode;
* ``floor_queued_json``: ``floor_queued`` that also stores the event's canonical JSON as text,
  to show how much of the gap is that essential work (reported, no target);
* ``attach_audit_trail`` in each mode (``queued``, ``inline``, ``lossless``), each with and
  without the hash chain, and ``queued`` with the hash chain and a :class:`~audit.sinks.
  SqliteSink` (a fresh database file per trial, in a temporary directory).

Per trial: ``entries_per_s`` = events / (first publish .. the auditor's ``flush()`` returned,
or the floor's consumer done), and ``publish_ns`` (time inside the publish calls, per event:
for the inline variants that includes the recording). ``lossless`` publishes with ``await
bus.apublish()`` (what a lossless publisher does); the others with ``bus.publish()``.

Correctness is checked in every trial, outside the timed part: every event became exactly one
entry (``seen`` = ``appended`` = published), nothing was dropped (``trail.statistics().
dropped == 0``, no lag, no gap, no mapping failure, nothing unmapped), the hash chain verifies,
the SQLite sink committed every entry, and the secret never reached a stored resource.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgspec

from eventbus.codec import encode_json
from eventbus.events import (
    AgentStarted,
    TokenUsageUpdate,
    ToolExecutionFinished,
    ToolExecutionStarted,
)

from .common import BATCH, CAPACITY, Config, perf_ns, progress, publish_bursts, run_fresh
from .floors import DequeFloor

#: The trail's (and the floor's deque's) capacity: smaller than a full trial, so both evict.
TRAIL_CAPACITY = 10_000

#: The value of the header one tool call in 16 carries; it must never reach the trail.
SECRET = "Bearer sk-bench-0123456789abcdef"


@dataclass(frozen=True)
class Variant:
    """One measured configuration of workload D."""

    name: str
    label: str
    mode: str | None = None  # the audit mode; None for the floors
    chain: bool = False
    sqlite: bool = False
    floor: str = "floor_queued"  # the floor its entries/s is compared with


VARIANTS: tuple[Variant, ...] = (
    Variant("floor_queued", "audit floor: floor (i) + consumer task (match, Struct, deque)"),
    Variant("floor_inline", "audit floor, inline: the same work in a publish callback"),
    Variant(
        "floor_queued_json",
        "audit floor + the event's canonical JSON as text (no redaction; reported only)",
    ),
    Variant("queued", "attach_audit_trail queued, no chain", "queued"),
    Variant("queued_chain", "attach_audit_trail queued, hash chain", "queued", chain=True),
    Variant("inline", "attach_audit_trail inline, no chain", "inline", floor="floor_inline"),
    Variant(
        "inline_chain",
        "attach_audit_trail inline, hash chain",
        "inline",
        chain=True,
        floor="floor_inline",
    ),
    Variant("lossless", "attach_audit_trail lossless, no chain (apublish)", "lossless"),
    Variant(
        "lossless_chain", "attach_audit_trail lossless, hash chain (apublish)", "lossless", True
    ),
    Variant(
        "sqlite_chain", "attach_audit_trail queued, hash chain, SqliteSink", "queued", True, True
    ),
)
BY_NAME = {v.name: v for v in VARIANTS}


# -- the events -------------------------------------------------------------------------------


def audit_events(n: int) -> list[Any]:
    """``n`` distinct catalogue events, four kinds in turn; 1 tool call in 16 holds a secret."""
    agents = [uuid.UUID(int=(i + 1) * 0x9E3779B97F4A7C15) for i in range(17)]
    tools: tuple[tuple[str, dict[str, Any]], ...] = (
        ("shell", {"command": "ls -la src", "timeout": 30}),
        ("read_file", {"path": "/work/project/src/main.py", "limit": 200}),
        ("web_search", {"query": "anyio memory object streams", "max_results": 5}),
        ("edit", {"path": "README.md", "old": "foo", "new": "bar"}),
    )
    out: list[Any] = []
    for i in range(n):
        session = f"session-{i % 5:04d}"
        r = i % 4
        if r == 0:
            tool, args = tools[(i // 4) % 4]
            if (i // 4) % 16 == 15:
                tool = "http_get"
                args = {"url": "https://api.example.com/v1", "headers": {"Authorization": SECRET}}
            out.append(
                ToolExecutionStarted(
                    session_id=session,
                    tool_name=tool,
                    tool_call_id=f"call-{i:08d}",
                    tool_args=args,
                )
            )
        elif r == 1:
            out.append(
                ToolExecutionFinished(
                    session_id=session,
                    tool_call_id=f"call-{i - 1:08d}",
                    tool_name=tools[(i // 4) % 4][0],
                    duration_ms=12 + i % 900,
                    is_error=i % 11 == 0,
                    output_summary="ok: 42 lines",
                )
            )
        elif r == 2:
            out.append(
                TokenUsageUpdate(session_id=session, input_tokens=1000 + i, output_tokens=200 + i)
            )
        else:
            out.append(AgentStarted(id=agents[i % 17]))
    return out


# -- the floor --------------------------------------------------------------------------------


class FloorEntry(msgspec.Struct, frozen=True, gc=False):
    """The floor's audit entry: a sequence number, who, what, and the event's kind."""

    seq: int
    actor: str
    detail: str
    kind: str
    resource: str = ""


class FloorRecorder:
    """The floor's per-event work: ``match`` on the type, build a Struct, append to a deque.

    With ``resource=True`` it also stores the event's canonical JSON as text, the one piece of
    an audit entry's essential work the floor of issue 7 leaves out (reported, no target).
    """

    __slots__ = ("entries", "resource", "seq")

    def __init__(self, capacity: int, *, resource: bool = False) -> None:
        self.entries: deque[FloorEntry] = deque(maxlen=capacity)
        self.seq = 0
        self.resource = resource

    def record(self, event: Any) -> None:
        match event:
            case ToolExecutionStarted(session_id=session, tool_name=tool):
                actor, detail, kind = f"session:{session}", f"tool_started:{tool}", "started"
            case ToolExecutionFinished(session_id=session, tool_name=tool, is_error=error):
                outcome = "error" if error else "ok"
                actor, detail = f"session:{session}", f"tool_finished:{tool}:{outcome}"
                kind = "finished"
            case TokenUsageUpdate(session_id=session, input_tokens=tin, output_tokens=tout):
                actor, detail = f"session:{session}", f"tokens:in={tin}:out={tout}"
                kind = "tokens"
            case AgentStarted(id=agent):
                actor, detail, kind = str(agent), "started", "agent_started"
            case _:
                actor, detail, kind = "system", "other", "other"
        self.seq = seq = self.seq + 1
        if self.resource:
            text = encode_json(event).decode()
            self.entries.append(FloorEntry(seq, actor, detail, kind, text))
        else:
            self.entries.append(FloorEntry(seq, actor, detail, kind))


class TapFloor(DequeFloor):
    """Floor (i) with callbacks run synchronously inside publish, as the bus runs its taps."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.taps: tuple[Any, ...] = ()

    def publish(self, event: Any) -> None:
        super().publish(event)
        for tap in self.taps:
            try:  # noqa: SIM105 (as the bus guards its taps; a with-block costs more)
                tap(event)
            except Exception:
                pass


async def _floor_trial(variant: Variant, pool: list[Any], events: int) -> dict[str, Any]:
    recorder = FloorRecorder(TRAIL_CAPACITY, resource=variant.name == "floor_queued_json")
    task = None
    if variant.name == "floor_inline":
        bus: DequeFloor = TapFloor(CAPACITY)
        bus.taps = (recorder.record,)  # type: ignore[attr-defined]
    else:
        bus = DequeFloor(CAPACITY)
        sub = bus.subscribe()

        async def consume() -> None:
            record = recorder.record
            async for event in sub:
                record(event)

        task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer starts and waits
    start = perf_ns()
    in_publish = await publish_bursts(bus.publish, None, pool, events)
    bus.close()
    if task is not None:
        await task
    elapsed = perf_ns() - start
    lagged = sum(s.lagged for s in bus.subs)
    if recorder.seq != events or lagged:
        raise AssertionError(f"{variant.name}: {recorder.seq} entries of {events}, lag {lagged}")
    return {"entries_per_s": events / (elapsed / 1e9), "publish_ns": in_publish / events}


async def _audit_trial(variant: Variant, pool: list[Any], events: int) -> dict[str, Any]:
    from audit import AuditTrail, attach_audit_trail
    from audit.sinks import SqliteSink
    from eventbus import EventBus

    trail = AuditTrail(TRAIL_CAPACITY, hash_chain=variant.chain)
    tmp = tempfile.mkdtemp(prefix="bench-audit-") if variant.sqlite else None
    sink = SqliteSink(f"{tmp}/audit.sqlite3") if tmp else None
    try:
        async with (
            EventBus[Any](max_buffer_size=CAPACITY) as bus,
            attach_audit_trail(
                bus,
                trail,
                mode=variant.mode,  # type: ignore[arg-type]
                max_buffer_size=CAPACITY,
                sink=sink,
            ) as auditor,
        ):
            await asyncio.sleep(0)  # the consumer starts and waits
            lossless = variant.mode == "lossless"
            start = perf_ns()
            in_publish = await publish_bursts(
                None if lossless else bus.publish, bus.apublish, pool, events
            )
            await auditor.flush()
            elapsed = perf_ns() - start
            published = bus.statistics().published
            stats = auditor.statistics()
    finally:
        if sink is not None:
            sink.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    check_audit(variant, events, published, stats, trail)
    return {"entries_per_s": events / (elapsed / 1e9), "publish_ns": in_publish / events}


def check_audit(variant: Variant, events: int, published: int, stats: Any, trail: Any) -> None:
    """Raise ``AssertionError`` unless every event became one entry, nothing lost or leaked."""
    t = trail.statistics()
    problems = []
    if not published == stats.seen == stats.appended == t.appended == events:
        problems.append(
            f"published {published}, seen {stats.seen}, appended {stats.appended}/{t.appended} "
            f"of {events}"
        )
    if t.dropped or stats.lagged or stats.gaps:
        problems.append(f"dropped {t.dropped}, lagged {stats.lagged}, gaps {stats.gaps}")
    if stats.failed or stats.unmapped:
        problems.append(f"failed {stats.failed}, unmapped {stats.unmapped}")
    if variant.sqlite and (stats.sink_written != events or stats.sink_errors or stats.sink_lost):
        problems.append(
            f"sink wrote {stats.sink_written}, errors {stats.sink_errors}, lost {stats.sink_lost}"
        )
    bad = trail.verify()
    if bad is not None:
        problems.append(f"chain breaks at seq {bad}")
    if any(SECRET in e.resource for e in trail):
        problems.append("a secret reached the trail")
    if problems:
        raise AssertionError(f"{variant.name}: " + "; ".join(problems))


async def trial(variant: Variant, pool: list[Any], events: int) -> dict[str, Any]:
    """One trial of ``variant`` in the running loop: ``entries_per_s`` and ``publish_ns``.

    :raises AssertionError: if the run was not correct (see the module docstring).
    """
    if variant.mode is None:
        return await _floor_trial(variant, pool, events)
    return await _audit_trial(variant, pool, events)


def sizes(cfg: Config) -> dict[str, int]:
    """Events per trial for each variant (the SQLite sink runs fewer: it syncs to disk)."""
    return {v.name: cfg.d_sqlite_events if v.sqlite else cfg.d_events for v in VARIANTS}


def run(cfg: Config, variants: tuple[Variant, ...] = VARIANTS) -> dict[str, Any]:
    """Run workload D, interleaved and repeated; returns the JSON-able result."""
    pool = audit_events(1024)
    n = sizes(cfg)
    names = [v.name for v in variants]
    result: dict[str, Any] = {
        "batch": BATCH,
        "capacity": CAPACITY,
        "trail_capacity": TRAIL_CAPACITY,
        "events": {v: n[v] for v in names},
        "labels": {v.name: v.label for v in variants},
        "floors": {v.name: v.floor for v in variants if v.mode is not None},
        "entries_per_s": {v: [None] * cfg.repeats for v in names},
        "publish_ns": {v: [None] * cfg.repeats for v in names},
        "errors": {},
    }
    for v in variants:  # warm-up: imports, caches, specialisation; not recorded
        try:
            run_fresh(cfg.trial_timeout, trial, v, pool, min(n[v.name], 2000))
        except Exception as exc:
            result["errors"][v.name] = f"warm-up: {type(exc).__name__}: {exc}"
    for rep in range(cfg.repeats):
        k = rep % len(variants)
        for v in variants[k:] + variants[:k]:
            if v.name in result["errors"]:
                continue
            try:
                r = run_fresh(cfg.trial_timeout, trial, v, pool, n[v.name])
            except Exception as exc:
                result["errors"][v.name] = f"{type(exc).__name__}: {exc}"
                continue
            result["entries_per_s"][v.name][rep] = r["entries_per_s"]
            result["publish_ns"][v.name][rep] = r["publish_ns"]
    progress("  D done")
    return result
