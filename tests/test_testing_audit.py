"""``eventbus.testing.assert_audited`` on a real trail, fed by a real auditor."""

from __future__ import annotations

import uuid

import pytest

from audit import AgentExit, AgentSpawn, AuditTrail, MemoryWrite, attach_audit_trail
from eventbus import EventBus
from eventbus.events import AgentStarted, AgentStopped, MemoryStored
from eventbus.testing import assert_audited

pytestmark = pytest.mark.anyio

A1 = uuid.UUID("00000000-0000-4000-8000-000000000001")
A2 = uuid.UUID("00000000-0000-4000-8000-000000000002")


@pytest.fixture
async def trail() -> AuditTrail:
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail) as auditor:
        bus.publish(AgentStarted(id=A1))
        bus.publish(AgentStarted(id=A2))
        bus.publish(MemoryStored(id="m-1", memory_type="episodic", source="a1"))
        bus.publish(AgentStopped(id=A1, success=True))
        await auditor.flush()
    return trail


async def test_returns_every_matching_entry(trail: AuditTrail) -> None:
    started = assert_audited(trail, action=AgentSpawn)
    assert [e.actor for e in started] == [str(A1), str(A2)]
    [stop] = assert_audited(trail, actor=str(A1), action=AgentExit(reason="completed"))
    assert stop.kind == "agent_stopped"
    assert assert_audited(trail, kind="memory_stored")[0].action == MemoryWrite(
        entry_id="m-1:episodic"
    )


async def test_reads_any_iterable_of_entries(trail: AuditTrail) -> None:
    assert assert_audited(trail.entries(), actor=str(A2)) == assert_audited(trail, actor=str(A2))


async def test_failure_shows_the_nearest_entries_and_what_differs(trail: AuditTrail) -> None:
    with pytest.raises(AssertionError) as info:
        assert_audited(trail, actor=str(A2), action=AgentExit)
    lines = str(info.value).splitlines()
    assert lines[0] == (
        f"expected an audit entry with actor='{A2}', action=AgentExit; "
        "none of the 4 entries matches; nearest:"
    )
    # The entries that match one criterion, newest first; not the memory entry.
    assert lines[1].startswith(f"    seq=4 actor='{A1}' action=AgentExit(")
    assert lines[1].endswith("(differs: actor)")
    assert lines[2].startswith(f"    seq=2 actor='{A2}' action=AgentSpawn(")
    assert lines[2].endswith("(differs: action)")
    assert len(lines) == 3


async def test_failure_with_nothing_close_shows_the_latest_entries(trail: AuditTrail) -> None:
    with pytest.raises(AssertionError) as info:
        assert_audited(trail, kind="email_sent")
    lines = str(info.value).splitlines()
    assert lines[0] == (
        "expected an audit entry with kind='email_sent'; none of the 4 entries matches "
        "any criterion; latest:"
    )
    assert [line.split()[0] for line in lines[1:]] == ["seq=2", "seq=3", "seq=4"]


async def test_failure_on_an_empty_trail() -> None:
    with pytest.raises(
        AssertionError,
        match=r"^expected an audit entry with actor='x'; none of the 0 entries matches$",
    ):
        assert_audited(AuditTrail(), actor="x")


async def test_needs_a_criterion() -> None:
    with pytest.raises(
        ValueError, match=r"^assert_audited needs at least one of actor, action, kind$"
    ):
        assert_audited(AuditTrail())


def test_hides_itself_from_tracebacks() -> None:
    assert "__tracebackhide__" in assert_audited.__code__.co_varnames
