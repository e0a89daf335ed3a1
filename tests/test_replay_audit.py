"""A live run, its recorded log and its replay give the same OS snapshot and audit trail."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from audit import (
    AuditEntry,
    AuditTrail,
    EventsDropped,
    attach_audit_trail,
    rebuild_audit_trail,
)
from eventbus import Envelope, EventBus
from eventbus.events import (
    AgentProcessChanged,
    AgentStarted,
    AgentStopped,
    AskUserRequest,
    BudgetExceeded,
    KernelEvent,
    MemoryWritten,
    PageIn,
    PageOut,
    Resumed,
    SignalDisposed,
    Suspended,
    ToolExecutionStarted,
    ToolGated,
)
from eventbus.replay import (
    OsSnapshot,
    SessionLogRecorder,
    read_log,
    rebuild_os_snapshot,
    replay,
)

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures"
AGENT = uuid.UUID("0b7f8e52-8d0c-4c8e-9d65-9a0c7b1f3e21")


def without_recording_time(trail: AuditTrail) -> list[tuple[Any, ...]]:
    """Every field of every entry except ``recorded_ns`` and the hashes that cover it."""
    return [
        tuple(
            getattr(entry, field)
            for field in AuditEntry.__struct_fields__
            if field not in ("recorded_ns", "prev_hash", "hash")
        )
        for entry in trail
    ]


def child(turn: int, state: str) -> AgentProcessChanged:
    return AgentProcessChanged(
        turn=turn,
        agent_id="child-1",
        parent_session_id="sess",
        role="worker",
        isolation="shared",
        context_inheritance="none",
        state=state,
    )


def session() -> list[KernelEvent]:
    return [
        AgentStarted(id=AGENT),
        child(1, "running"),
        ToolGated(turn=1, tool_name="ask_user", call_id="c1", blocked=False),
        AskUserRequest(id="q1", question="Which file?", options=("a.txt", "b.txt")),
        Suspended(turn=1, reason="ask_user", pending_calls=("c1",)),
        SignalDisposed(turn=1, signal_id="sig-user", disposition="deliver", queue_depth=0),
        Resumed(turn=2),
        ToolExecutionStarted(
            session_id="s1",
            tool_name="http_get",
            tool_call_id="tc1",
            tool_args={"url": "https://example.org", "api_key": "sk-live-123"},
        ),
        PageOut(turn=2, handle="h1", tokens=900),
        MemoryWritten(turn=2, memory_id="m1", layer="episodic"),
        PageIn(turn=3, handle="h1"),
        BudgetExceeded(turn=3, budget="tokens", limit=1000, used=1200),
        child(3, "joined"),
        AgentStopped(id=AGENT, success=True),
    ]


async def test_live_run_recorded_read_back_and_replayed_agree(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    live_trail = AuditTrail()
    live_envelopes: list[Envelope[Any]] = []
    async with (
        EventBus() as bus,
        SessionLogRecorder(bus, path),
        attach_audit_trail(bus, live_trail, mode="lossless") as auditor,
    ):
        with bus.subscribe(max_buffer_size=1000) as sub:
            for event in session():
                envelope = await bus.apublish(event)
                with bus.caused_by(envelope):  # give some envelopes causation ids
                    if isinstance(event, AskUserRequest):
                        await bus.apublish(PageOut(turn=1, handle="question"))
            await auditor.flush()
            while len(live_envelopes) < bus.statistics().published:
                live_envelopes.append(sub.receive_nowait())
    live_snapshot = rebuild_os_snapshot(live_envelopes)
    assert live_snapshot != OsSnapshot()
    assert len(live_trail) == len(live_envelopes) == 15

    # Read back: the same envelopes, snapshot and trail.
    log = read_log(path)
    assert list(log) == live_envelopes
    assert rebuild_os_snapshot(log) == live_snapshot
    rebuilt = rebuild_audit_trail(log)
    assert without_recording_time(rebuilt) == without_recording_time(live_trail)
    assert rebuilt.verify() is None
    assert "sk-live-123" not in "".join(entry.resource for entry in rebuilt)

    # Replayed into a fresh bus with its own live auditor: the same again.
    replay_trail = AuditTrail()
    async with (
        EventBus() as fresh,
        attach_audit_trail(fresh, replay_trail, mode="lossless") as replay_auditor,
    ):
        with fresh.subscribe(max_buffer_size=1000) as sub:
            await replay(log, fresh)
            await replay_auditor.flush()
            replayed = [sub.receive_nowait() for _ in range(len(log))]
    assert all(e.replayed for e in replayed)
    assert rebuild_os_snapshot(replayed) == live_snapshot
    assert without_recording_time(replay_trail) == without_recording_time(live_trail)


def test_rebuilding_twice_gives_the_same_actions_actors_and_resources() -> None:
    log = read_log(FIXTURES / "events_ask_user.jsonl")
    first, second = rebuild_audit_trail(log), rebuild_audit_trail(log)
    assert without_recording_time(first) == without_recording_time(second)
    assert [e.event_seq for e in first] == list(range(1, 19))
    assert [e.kind for e in first] == [e.kind for e in log]


def test_gap_markers_become_events_dropped_entries_at_the_gap(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"event_type":"page_out","turn":1,"handle":"a"}\n'
        '{"gap":{"first_seq":2,"last_seq":4,"lost":3}}\n'
        '{"causation_id":null,"correlation_id":null,"event":{"event_type":"page_in",'
        '"handle":"a","session_id":null,"turn":2},"event_id":"e5","kind":"page_in",'
        '"origin":null,"replayed":false,"seq":5,"ts_ns":500}\n'
    )
    trail = rebuild_audit_trail(read_log(path))
    entries = trail.entries()
    assert [e.kind for e in entries] == ["page_out", "audit:events_dropped", "page_in"]
    assert entries[1].action == EventsDropped(count=3, first_seq=2, last_seq=4)
    assert (entries[1].actor, entries[1].ts_ns, entries[1].event_seq) == ("system", 500, None)


def test_rebuild_appends_to_a_given_trail_and_honours_capacity() -> None:
    log = read_log(FIXTURES / "events_ask_user.jsonl")
    trail = AuditTrail(capacity=5, hash_chain=False)
    assert rebuild_audit_trail(log, trail=trail) is trail
    assert [e.event_seq for e in trail] == [14, 15, 16, 17, 18]
    assert trail.last_seq == 18
    assert rebuild_audit_trail(log, capacity=3).capacity == 3
    unchained = rebuild_audit_trail(log, hash_chain=False)
    assert not unchained.hash_chain
    assert {(e.prev_hash, e.hash) for e in unchained} == {("", "")}
