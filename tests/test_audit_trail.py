"""The trail: seq, eviction, the anchor, queries, statistics and the hash chain."""

from __future__ import annotations

import hashlib
import json
from collections import deque

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit import (
    GENESIS_HASH,
    AgentExit,
    AgentSpawn,
    AuditEntry,
    AuditTrail,
    EventsDropped,
    MemoryRead,
    Other,
    ToolCall,
    entry_hash,
    verify_chain,
)


def fill(trail: AuditTrail, n: int, *, start_ns: int = 1_000) -> list[AuditEntry]:
    return [
        trail.append(
            f"agent-{i % 3}",
            Other(detail=f"d{i}") if i % 2 else AgentSpawn(task_type=f"t{i}"),
            f'{{"i":{i}}}',
            ts_ns=start_ns + i,
            kind="k-even" if i % 2 == 0 else "k-odd",
            correlation_id="c1" if i < 5 else None,
        )
        for i in range(n)
    ]


def test_seq_starts_at_one_and_grows_by_one() -> None:
    trail = AuditTrail(10)
    entries = fill(trail, 4)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert [e.seq for e in trail] == [1, 2, 3, 4]
    assert trail.last_seq == 4


def test_eviction_keeps_the_newest_and_never_reuses_a_seq() -> None:
    trail = AuditTrail(3)
    fill(trail, 7)
    assert len(trail) == 3
    assert [e.seq for e in trail.entries()] == [5, 6, 7]
    assert trail.append("a", Other(detail="x")).seq == 8
    stats = trail.statistics()
    assert (stats.appended, stats.evicted, stats.capacity, stats.length) == (8, 5, 3, 3)


def test_the_anchor_is_the_newest_evicted_entry() -> None:
    trail = AuditTrail(2)
    assert trail.anchor == (0, GENESIS_HASH)
    entries = fill(trail, 5)
    assert trail.anchor == (3, entries[2].hash)


def test_ts_ns_is_the_given_event_time_and_recorded_ns_the_append_time() -> None:
    trail = AuditTrail()
    entry = trail.append("a", Other(detail="x"), ts_ns=42)
    assert entry.ts_ns == 42
    assert entry.recorded_ns > 42


def test_last_returns_the_newest_oldest_first() -> None:
    trail = AuditTrail(10)
    fill(trail, 6)
    assert [e.seq for e in trail.last(3)] == [4, 5, 6]
    assert [e.seq for e in trail.last(100)] == [1, 2, 3, 4, 5, 6]
    assert trail.last(0) == []
    with pytest.raises(ValueError, match=r"^n must be >= 0, got -1$"):
        trail.last(-1)


def test_query_filters_combine() -> None:
    trail = AuditTrail(100)
    fill(trail, 10)
    assert [e.seq for e in trail.query(actor="agent-1")] == [2, 5, 8]
    assert [e.seq for e in trail.query(action=AgentSpawn)] == [1, 3, 5, 7, 9]
    assert [e.seq for e in trail.query(action=(AgentSpawn, Other))] == list(range(1, 11))
    assert trail.query(action=MemoryRead) == []
    assert [e.seq for e in trail.query(kind="k-odd", since_seq=5)] == [6, 8, 10]
    assert [e.seq for e in trail.query(correlation_id="c1")] == [1, 2, 3, 4, 5]
    assert [e.seq for e in trail.query(since_ns=1_003, until_ns=1_006)] == [4, 5, 6]
    assert [e.seq for e in trail.query(actor="agent-0", action=Other)] == [4, 10]


def test_query_since_seq_works_on_an_evicted_window() -> None:
    trail = AuditTrail(4)
    fill(trail, 10)
    assert [e.seq for e in trail.query(since_seq=2)] == [7, 8, 9, 10]
    assert [e.seq for e in trail.query(since_seq=9)] == [9, 10]
    assert trail.query(since_seq=11) == []


def test_query_by_category() -> None:
    trail = AuditTrail()
    trail.append("a", Other(detail="x"), category="mm", primitive="mm")
    trail.append("a", Other(detail="y"), category="proc", primitive="sched")
    assert [e.action for e in trail.query(category="proc")] == [Other(detail="y")]


def test_iteration_is_a_snapshot() -> None:
    trail = AuditTrail(10)
    fill(trail, 3)
    seen = []
    for entry in trail:
        seen.append(entry.seq)
        if entry.seq == 1:
            trail.append("a", Other(detail="during"))
    assert seen == [1, 2, 3]


def test_dropped_statistics_sum_the_events_dropped_counts() -> None:
    trail = AuditTrail(2)
    trail.append("system", EventsDropped(count=5, first_seq=1, last_seq=5))
    trail.append("system", EventsDropped(count=2, first_seq=9, last_seq=10))
    fill(trail, 3)  # evicts both: dropped counts stay
    assert trail.statistics().dropped == 7


def test_capacity_is_validated() -> None:
    with pytest.raises(ValueError, match=r"^capacity must be >= 1, got 0$"):
        AuditTrail(0)
    with pytest.raises(TypeError, match=r"^capacity must be an int, got float$"):
        AuditTrail(1.5)  # type: ignore[arg-type]


# -- the hash chain ------------------------------------------------------------------------------


def test_entries_are_chained_from_the_genesis_hash() -> None:
    trail = AuditTrail()
    entries = fill(trail, 3)
    assert entries[0].prev_hash == GENESIS_HASH
    assert entries[1].prev_hash == entries[0].hash
    assert entries[2].prev_hash == entries[1].hash
    assert all(e.hash == entry_hash(e) and len(e.hash) == 64 for e in entries)
    assert trail.verify() is None


def test_the_hash_covers_every_field_but_itself() -> None:
    trail = AuditTrail()
    entry = trail.append(
        "a",
        AgentExit(reason="r"),
        "res",
        ts_ns=1,
        kind="k",
        event_seq=3,
        event_id="e",
        category="proc",
        primitive="sched",
        correlation_id="c",
        causation_id="z",
    )
    changes = {
        "seq": 2,
        "ts_ns": 2,
        "recorded_ns": entry.recorded_ns + 1,
        "actor": "b",
        "action": AgentExit(reason="s"),
        "resource": "res2",
        "event_seq": 4,
        "event_id": "f",
        "kind": "j",
        "category": "mm",
        "primitive": "mm",
        "correlation_id": "d",
        "causation_id": None,
        "prev_hash": "1" * 64,
    }
    assert set(changes) == set(AuditEntry.__struct_fields__) - {"hash"}
    for field, value in changes.items():
        changed = msgspec.structs.replace(entry, **{field: value})
        assert entry_hash(changed) != entry.hash, field
    assert entry_hash(msgspec.structs.replace(entry, hash="x")) == entry.hash


def test_the_hash_is_the_documented_construction() -> None:
    # The hash format is public: a store written today must verify with any later version.
    # Built here with hashlib and json, independently of the package's own encoder.
    trail = AuditTrail()
    trail.append("before", Other(detail="so prev_hash is not the genesis hash"))
    entry = trail.append(
        "agent",
        ToolCall(tool="t", args_json="{}"),
        "résumé",
        ts_ns=5,
        kind="k",
        event_seq=9,
        event_id="e",
        category="syscall",
        primitive="syscall",
        causation_id="c",
    )
    header = [
        2,
        5,
        entry.recorded_ns,
        "agent",
        {"type": "ToolCall", "tool": "t", "args_json": "{}"},
        9,
        "e",
        "k",
        "syscall",
        "syscall",
        None,
        "c",
        trail.entries()[0].hash,
    ]
    data = (
        b"kernel-eventbus/audit-entry/v1\x00"
        + json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        + "résumé".encode()
    )
    assert entry.hash == hashlib.sha256(data).hexdigest()
    assert entry_hash(entry) == entry.hash


def test_resource_and_fields_cannot_be_shifted_into_each_other() -> None:
    # Domain separation + a self-delimiting header: moving text between actor and resource
    # changes the digest.
    trail = AuditTrail()
    a = trail.append("ab", Other(detail="x"), "c", ts_ns=1)
    b = msgspec.structs.replace(a, actor="a", resource="bc")
    assert entry_hash(b) != a.hash


def test_verify_catches_a_tampered_entry_at_its_seq() -> None:
    trail = AuditTrail()
    fill(trail, 10)
    trail._entries[4] = msgspec.structs.replace(trail._entries[4], actor="mallory")
    assert trail.verify() == 5


def test_verify_catches_a_rehashed_entry_at_the_next_seq() -> None:
    trail = AuditTrail()
    fill(trail, 10)
    forged = msgspec.structs.replace(trail._entries[4], actor="mallory")
    trail._entries[4] = msgspec.structs.replace(forged, hash=entry_hash(forged))
    assert trail.verify() == 6


def test_verify_catches_a_rehashed_newest_entry_at_its_seq() -> None:
    # Nothing links to the newest entry: only the trail's own record of its head catches it.
    trail = AuditTrail()
    fill(trail, 5)
    forged = msgspec.structs.replace(trail._entries[-1], actor="mallory")
    trail._entries[-1] = msgspec.structs.replace(forged, hash=entry_hash(forged))
    assert trail.verify() == 5


def test_verify_catches_a_dropped_entry_at_the_missing_seq() -> None:
    trail = AuditTrail()
    fill(trail, 10)
    del trail._entries[6]
    assert trail.verify() == 7


def test_verify_catches_two_reordered_entries_at_the_first_displaced_seq() -> None:
    trail = AuditTrail()
    fill(trail, 10)
    trail._entries[2], trail._entries[3] = trail._entries[3], trail._entries[2]
    assert trail.verify() == 3


def test_verify_catches_a_dropped_head_entry() -> None:
    trail = AuditTrail()
    fill(trail, 5)
    trail._entries.popleft()
    assert trail.verify() == 1


def test_verify_works_on_a_window_whose_head_was_evicted() -> None:
    trail = AuditTrail(4)
    fill(trail, 11)
    assert trail.verify() is None
    trail._entries[0] = msgspec.structs.replace(trail._entries[0], resource="forged")
    assert trail.verify() == 8


def test_verify_catches_a_swapped_head_after_eviction() -> None:
    trail = AuditTrail(4)
    fill(trail, 11)
    trail._entries.popleft()
    assert trail.verify() == 8


def test_verify_chain_without_an_anchor_trusts_the_first_entry() -> None:
    trail = AuditTrail()
    entries = fill(trail, 6)
    assert verify_chain(entries[2:]) is None
    assert verify_chain(entries[2:], anchor=(0, GENESIS_HASH)) == 1
    assert verify_chain(entries[2:], anchor=(2, entries[1].hash)) is None


def test_without_a_hash_chain_only_the_order_is_checked() -> None:
    trail = AuditTrail(hash_chain=False)
    entries = fill(trail, 4)
    assert {(e.prev_hash, e.hash) for e in entries} == {("", "")}
    assert trail.verify() is None
    trail._entries[1] = msgspec.structs.replace(trail._entries[1], actor="mallory")
    assert trail.verify() is None  # no hash, no tamper evidence: documented
    del trail._entries[1]
    assert trail.verify() == 2


@given(
    capacity=st.integers(1, 20),
    n=st.integers(0, 60),
    victim=st.integers(0, 59),
    edit=st.sampled_from(["tamper", "drop", "swap"]),
)
def test_any_single_edit_of_a_window_is_caught_at_its_seq(
    capacity: int, n: int, victim: int, edit: str
) -> None:
    trail = AuditTrail(capacity)
    fill(trail, n)
    assert trail.verify() is None
    entries: deque[AuditEntry] = trail._entries
    if not entries:
        return
    i = victim % len(entries)
    expected = entries[i].seq
    if edit == "tamper":
        entries[i] = msgspec.structs.replace(entries[i], resource=entries[i].resource + "!")
    elif edit == "drop":
        del entries[i]
    else:
        if i + 1 >= len(entries):
            return
        entries[i], entries[i + 1] = entries[i + 1], entries[i]
    assert trail.verify() == expected


def test_verify_catches_entries_cut_from_the_end() -> None:
    trail = AuditTrail()
    fill(trail, 5)
    trail._entries.pop()
    trail._entries.pop()
    assert trail.verify() == 4
