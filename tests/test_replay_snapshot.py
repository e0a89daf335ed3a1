"""The OS snapshot rebuilt from a session log, its golden fixtures, and the category check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventbus import Envelope
from eventbus.codec import encode_json
from eventbus.events import (
    AgentProcessChanged,
    BudgetExceeded,
    KernelEvent,
    MemoryQueried,
    MemoryRetrievalResult,
    MemoryValidationFailed,
    MemoryWritten,
    PageIn,
    PageOut,
    Resumed,
    SignalDisposed,
    Suspended,
    ToolGated,
    TurnLoopMode,
    TurnStarted,
)
from eventbus.replay import (
    BudgetExceededRecord,
    OsSnapshot,
    ProcessRecord,
    SignalDisposedRecord,
    SuspendRecord,
    log_has_required_categories,
    read_log,
    rebuild_os_snapshot,
)

FIXTURES = Path(__file__).parent / "fixtures"


def process(turn: int, agent_id: str, state: str, **fields: Any) -> AgentProcessChanged:
    return AgentProcessChanged(
        turn=turn,
        agent_id=agent_id,
        parent_session_id=fields.pop("parent", "parent"),
        role="worker",
        isolation="shared",
        context_inheritance="none",
        state=state,
        **fields,
    )


def test_rebuild_tracks_process_and_signals() -> None:
    events = [
        process(1, "child-1", "running"),
        SignalDisposed(turn=2, signal_id="sig-a", disposition="queue", queue_depth=1),
        Suspended(turn=3, reason="ask_user", pending_calls=("c1",)),
        process(4, "child-1", "joined", result_termination="completed"),
    ]
    snap = rebuild_os_snapshot(events)
    assert snap.process_by_agent == (
        ProcessRecord(turn=4, agent_id="child-1", parent_session_id="parent", state="joined"),
    )
    assert snap.signals == (
        SignalDisposedRecord(turn=2, signal_id="sig-a", disposition="queue", queue_depth=1),
    )
    assert snap.last_suspend == SuspendRecord(turn=3, reason="ask_user", pending_calls=("c1",))


def test_newest_state_wins_in_first_seen_order() -> None:
    events = [
        process(1, "a", "created"),
        process(1, "b", "created"),
        process(2, "a", "running"),
        process(3, "c", "created"),
        process(4, "b", "joined"),
    ]
    assert [
        (p.agent_id, p.state, p.turn) for p in rebuild_os_snapshot(events).process_by_agent
    ] == [
        ("a", "running", 2),
        ("b", "joined", 4),
        ("c", "created", 3),
    ]


def test_last_suspend_and_last_resume_are_the_latest_of_each() -> None:
    snap = rebuild_os_snapshot(
        [
            Suspended(turn=1, reason="ask_user", pending_calls=("c1",)),
            Resumed(turn=2),
            Suspended(turn=5, reason="approval", pending_calls=()),
            Resumed(turn=6),
            Resumed(turn=7),
        ]
    )
    assert snap.last_suspend == SuspendRecord(turn=5, reason="approval", pending_calls=())
    assert snap.last_resumed_turn == 7


def test_counters_and_records_cover_each_os_kind() -> None:
    events: list[KernelEvent] = [
        PageOut(turn=1, handle="h"),
        PageOut(turn=1, handle="i"),
        PageIn(turn=2, handle="h"),
        ToolGated(turn=1, tool_name="t", call_id="c", blocked=True),
        MemoryWritten(turn=1, memory_id="m"),
        MemoryQueried(turn=1, query="q"),
        MemoryQueried(turn=2, query="r"),
        MemoryValidationFailed(turn=2, memory_id="m", reason="bad"),
        MemoryRetrievalResult(turn=2, query="q", hits=2),
        BudgetExceeded(turn=3, budget="tokens", limit=10, used=11),
        BudgetExceeded(turn=4, budget="steps"),
    ]
    assert rebuild_os_snapshot(events) == OsSnapshot(
        budget_exceeded=(
            BudgetExceededRecord(turn=3, budget="tokens"),
            BudgetExceededRecord(turn=4, budget="steps"),
        ),
        page_out_count=2,
        page_in_count=1,
        tool_gated_count=1,
        memory_written_count=1,
        memory_queried_count=2,
        memory_validation_failed_count=1,
        memory_retrieval_result_count=1,
    )


def test_other_events_are_ignored_and_nothing_gives_the_empty_snapshot() -> None:
    turn = TurnStarted(turn_id="t", mode=TurnLoopMode.AGENT, input_text="x", max_steps=1)
    assert rebuild_os_snapshot([turn]) == OsSnapshot() == rebuild_os_snapshot([])


def test_envelopes_and_bare_events_give_the_same_snapshot() -> None:
    log = read_log(FIXTURES / "events_ask_user.jsonl")
    assert rebuild_os_snapshot(log) == rebuild_os_snapshot([e.event for e in log])


def test_snapshot_json_without_memory_counters_still_decodes() -> None:
    old = b'{"last_suspend":null,"last_resumed_turn":3,"process_by_agent":[],"budget_exceeded":[],'
    old += b'"signals":[],"page_out_count":1,"page_in_count":0,"tool_gated_count":2}'
    snap = msgspec.json.decode(old, type=OsSnapshot)
    assert snap == OsSnapshot(last_resumed_turn=3, page_out_count=1, tool_gated_count=2)


@pytest.mark.parametrize(
    ("events_file", "snapshot_file"),
    [
        ("events_spawn_lifecycle.jsonl", "os_snapshot_spawn_lifecycle.json"),
        ("events_ask_user.jsonl", "os_snapshot_ask_user.json"),
    ],
)
def test_golden_os_snapshot(events_file: str, snapshot_file: str) -> None:
    log = read_log(FIXTURES / events_file)
    assert log.torn_lines == 0
    assert log_has_required_categories(log)
    expected = msgspec.json.decode((FIXTURES / snapshot_file).read_bytes(), type=OsSnapshot)
    assert rebuild_os_snapshot(log) == expected


# -- log_has_required_categories ------------------------------------------------------------


def write(tmp_path: Path, *lines: bytes) -> Path:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_categories_check_passes_on_a_native_log_with_the_catalogues_categories(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        b'{"event_type":"page_out","turn":1,"category":"mm","primitive":"mm","handle":"h"}',
        b'{"event_type":"signal_disposed","turn":1,"category":"ipc","primitive":"sched",'
        b'"signal_id":"s","disposition":"queue","queue_depth":0}',
        b'{"event_type":"schema_version","version":1}',
    )
    assert log_has_required_categories(path)
    assert log_has_required_categories(read_log(path))


def test_categories_check_fails_on_a_native_os_event_without_category(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        b'{"event_type":"page_out","turn":1,"category":"mm","handle":"h"}',
        b'{"event_type":"page_in","turn":1,"handle":"h"}',
    )
    assert not log_has_required_categories(path)
    assert log_has_required_categories(path, require_native=False)


def test_categories_check_fails_on_a_category_the_catalogue_disagrees_with(
    tmp_path: Path,
) -> None:
    wrong_category = b'{"event_type":"page_out","turn":1,"category":"sched","handle":"h"}'
    wrong_primitive = (
        b'{"event_type":"page_out","turn":1,"category":"mm","primitive":"sched","handle":"h"}'
    )
    assert not log_has_required_categories(write(tmp_path, wrong_category))
    assert not log_has_required_categories(write(tmp_path, wrong_primitive))
    assert not log_has_required_categories(write(tmp_path, wrong_category), require_native=False)


def test_categories_check_on_envelope_lines(tmp_path: Path) -> None:
    good = encode_json(Envelope(1, "e", 0, "page_out", PageOut(turn=1, handle="h")))
    assert log_has_required_categories(write(tmp_path, good))  # the kind implies the category
    labelled = good.replace(b'"event_type":"page_out"', b'"category":"mm","event_type":"page_out"')
    mislabelled = labelled.replace(b'"category":"mm"', b'"category":"proc"')
    assert log_has_required_categories(write(tmp_path, labelled))
    assert not log_has_required_categories(write(tmp_path, mislabelled))


# -- invariants ------------------------------------------------------------------------------

agents = st.sampled_from(["a", "b", "c", "d"])
process_events = st.builds(
    process, st.integers(0, 50), agents, st.sampled_from(["created", "running", "joined"])
)
os_events = st.one_of(
    process_events,
    st.builds(lambda t: PageOut(turn=t, handle="h"), st.integers(0, 50)),
    st.builds(lambda t: Resumed(turn=t), st.integers(0, 50)),
    st.builds(
        lambda t, r: Suspended(turn=t, reason=r, pending_calls=()),
        st.integers(0, 50),
        st.sampled_from(["ask_user", "approval"]),
    ),
)


@given(st.lists(os_events, max_size=40))
def test_snapshot_invariants(events: list[KernelEvent]) -> None:
    snap = rebuild_os_snapshot(events)
    procs = [e for e in events if isinstance(e, AgentProcessChanged)]
    first_seen = list(dict.fromkeys(p.agent_id for p in procs))
    assert [p.agent_id for p in snap.process_by_agent] == first_seen
    for record in snap.process_by_agent:
        newest = [p for p in procs if p.agent_id == record.agent_id][-1]
        assert (record.turn, record.state) == (newest.turn, newest.state)
    assert snap.page_out_count == sum(isinstance(e, PageOut) for e in events)
    suspends = [e for e in events if isinstance(e, Suspended)]
    assert snap.last_suspend == (
        SuspendRecord(turn=suspends[-1].turn, reason=suspends[-1].reason, pending_calls=())
        if suspends
        else None
    )
    # The same events in envelopes give the same snapshot.
    wrapped = [Envelope(i, str(i), 0, "k", e) for i, e in enumerate(events, 1)]
    assert rebuild_os_snapshot(wrapped) == snap
