"""Event content the audit path must survive: text no store can hold, text of any length,
values of another class than declared.

Events carry whatever a supervisor put in them: a file name from ``os.fsdecode`` (a lone
surrogate), an agent's whole output, ids from a remote peer, an event built with a wrong
type (msgspec does not check the values a Struct is built with). None of it may crash the
auditor (a queued one used to die and cancel the supervisor's own code), leave a silent
hole, break the store, or reach an entry unbounded.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from audit import AgentExit, AgentSpawn, AuditEntry, AuditTrail, Other, attach_audit_trail
from audit.sinks import AuditSink, JsonlSink, SqliteSink, verify_sink
from eventbus import EventBus
from eventbus.events import AgentFailed, AgentSpawned, AgentStarted

pytestmark = pytest.mark.anyio

MODES = pytest.mark.parametrize("mode", ["queued", "lossless", "inline"])
CHAIN = pytest.mark.parametrize("chain", [True, False], ids=["chain", "no_chain"])
SINKS = pytest.mark.parametrize("store", [None, "sqlite", "jsonl"])
LIMIT = 256  # max_resource_bytes: also the bound of every other text of an entry

NOT_UTF8 = os.fsdecode(b"/tmp/report-\xff.txt")  # "/tmp/report-\udcff.txt"


def open_store(store: str | None, tmp_path: Path) -> AuditSink | None:
    if store is None:
        return None
    if store == "sqlite":
        return SqliteSink(tmp_path / "audit.db")
    return JsonlSink(tmp_path / "audit.jsonl")


async def record(
    events: list[Any],
    *,
    mode: str,
    chain: bool,
    sink: AuditSink | None,
    correlation_id: str | None = None,
) -> tuple[AuditTrail, Any]:
    from audit import AuditMapper

    trail = AuditTrail(hash_chain=chain)
    async with (
        EventBus() as bus,
        attach_audit_trail(
            bus,
            trail,
            mode=mode,  # type: ignore[arg-type]
            sink=sink,
            mapper=AuditMapper(max_resource_bytes=LIMIT),
        ) as auditor,
    ):
        for event in events:
            await bus.apublish(event, correlation_id=correlation_id)
        await auditor.flush()
    return trail, auditor.statistics()


def texts(entry: AuditEntry) -> list[str]:
    """Every text of an entry that comes from event content or a publisher."""
    action = [v for v in msgspec.structs.astuple(entry.action) if isinstance(v, str)]
    ids = [entry.event_id, entry.correlation_id, entry.causation_id]
    return [entry.actor, entry.resource, *action, *(i for i in ids if i is not None)]


def assert_store_holds(sink: AuditSink | None, path: Path, trail: AuditTrail) -> None:
    if sink is None:
        return
    assert sink.load_tail(100) == trail.entries()
    sink.close()
    stored = path / ("audit.db" if isinstance(sink, SqliteSink) else "audit.jsonl")
    assert verify_sink(stored) is None


@MODES
@CHAIN
@SINKS
async def test_text_no_store_can_hold_is_recorded_escaped_not_a_crash(
    mode: str, chain: bool, store: str | None, tmp_path: Path
) -> None:
    sink = open_store(store, tmp_path)
    events = [
        AgentStarted(id=uuid.uuid4()),
        AgentFailed(id=uuid.uuid4(), error=f"cannot open {NOT_UTF8}"),
        AgentStarted(id=uuid.uuid4()),
    ]
    trail, stats = await record(
        events, mode=mode, chain=chain, sink=sink, correlation_id=f"job-{NOT_UTF8}"
    )
    assert [e.event_seq for e in trail] == [1, 2, 3]  # no hole
    assert (stats.failed, stats.sink_errors) == (0, 0)
    failed = trail.entries()[1]
    if chain or sink is not None:  # escaped where the entry is encoded (hashed or stored)
        assert failed.action == AgentExit(reason="cannot open /tmp/report-\\udcff.txt")
        assert {e.correlation_id for e in trail} == {"job-/tmp/report-\\udcff.txt"}
        for entry in trail:
            for text in texts(entry):
                text.encode("utf-8")  # every text is UTF-8 now
    assert trail.verify() is None
    assert_store_holds(sink, tmp_path, trail)


@MODES
@CHAIN
@SINKS
async def test_every_text_of_an_entry_is_cut_to_max_resource_bytes(
    mode: str, chain: bool, store: str | None, tmp_path: Path
) -> None:
    sink = open_store(store, tmp_path)
    huge = "é" * 100_000  # two bytes each: the cut falls on a character boundary
    events = [
        AgentFailed(id=uuid.uuid4(), error=huge),  # the action's text
        AgentSpawned(turn=1, agent_id=huge, parent_session_id="s"),  # the actor's
    ]
    trail, _ = await record(events, mode=mode, chain=chain, sink=sink, correlation_id=huge)
    failed, spawned = trail.entries()
    assert failed.action == AgentExit(reason=failed.action.reason)  # still the same action
    assert failed.action.reason.endswith("…[truncated 199772 bytes]")  # type: ignore[union-attr]
    assert spawned.actor.endswith("…[truncated 199772 bytes]")
    for entry in trail:
        assert entry.correlation_id is not None
        assert entry.correlation_id.startswith("éé")
        for text in texts(entry):
            assert len(text.encode()) <= LIMIT
    assert trail.verify() is None
    assert_store_holds(sink, tmp_path, trail)


@MODES
@pytest.mark.parametrize("store", ["sqlite", "jsonl"])
async def test_an_event_holding_a_value_of_another_class_is_a_failed_mapping_in_a_store(
    mode: str, store: str, tmp_path: Path
) -> None:
    # The actor 1234 went into the trail as an int; SQLite stored it as the text '1234',
    # and the store then read as tampered and could not be resumed (JSONL: not at all).
    # (Without a sink such a value stays in memory as it is: checking every entry's
    # classes costs ~100 ns, which only what is stored pays.)
    sink = open_store(store, tmp_path)
    events = [
        AgentSpawned(turn=1, agent_id=1234, parent_session_id="s"),  # type: ignore[arg-type]
        AgentFailed(id=uuid.uuid4(), error=5),  # type: ignore[arg-type]
        AgentSpawned(turn=1, agent_id="a-1", parent_session_id="s"),
    ]
    trail, stats = await record(events, mode=mode, chain=True, sink=sink)
    assert stats.failed == 2
    bad_actor, bad_reason, good = trail.entries()
    assert (bad_actor.actor, bad_reason.actor) == ("system", "system")
    assert bad_actor.action == Other(
        detail="mapping_failed:agent_spawned:TypeError: the actor must be a str, got int (from "
        "an event whose fields do not hold their declared types)"
    )
    assert bad_reason.action == Other(
        detail="mapping_failed:agent_failed:TypeError: AgentExit.reason must be a str, got int "
        "(from an event whose fields do not hold their declared types)"
    )
    assert (good.actor, good.action) == ("a-1", AgentSpawn(task_type="spawned"))
    assert_store_holds(sink, tmp_path, trail)


async def test_an_inline_flush_returns_even_after_a_record_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tap that raises is logged by the bus and skipped; flush waited for the envelope it
    # failed to record, forever.
    import audit._consumer

    real = audit._consumer._encode
    calls = [0]

    def encode_failing_once(value: Any) -> bytes:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("a bug in the recording path")
        return real(value)

    monkeypatch.setattr(audit._consumer, "_encode", encode_failing_once)
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail, mode="inline") as auditor:
        for _ in range(3):
            bus.publish(AgentStarted(id=uuid.uuid4()))
        with anyio.fail_after(5):
            await auditor.flush()
    # The one it failed is no silent hole, and the chain stays whole.
    entries = trail.entries()
    assert [e.event_seq for e in entries] == [1, 2, 3]
    assert entries[1].action == Other(
        detail="mapping_failed:agent_started:RuntimeError: a bug in the recording path"
    )
    assert entries[1].actor == "system"
    assert trail.verify() is None
    assert auditor.statistics().failed == 1
