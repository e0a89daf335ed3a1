"""``eventbus.testing.assert_audited`` on a real trail, fed by a real auditor."""

from __future__ import annotations

import subprocess
import sys
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


async def test_reads_an_auditors_trail() -> None:
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail, mode="inline") as auditor:
        bus.publish(AgentStarted(id=A1))
    assert assert_audited(auditor, actor=str(A1)) == trail.entries()


async def test_an_action_may_be_given_by_class_name_as_the_cli_takes_it(
    trail: AuditTrail,
) -> None:
    assert assert_audited(trail, action="AgentExit") == assert_audited(trail, action=AgentExit)
    with pytest.raises(AssertionError) as info:
        assert_audited(trail, actor=str(A2), action="AgentExit")
    lines = str(info.value).splitlines()
    assert lines[0] == (
        f"expected an audit entry with actor='{A2}', action=AgentExit; "
        "none of the 4 entries matches; nearest:"
    )
    assert lines[1].endswith("(differs: actor)")


async def test_an_unknown_action_name_is_rejected_with_the_names(trail: AuditTrail) -> None:
    with pytest.raises(
        ValueError,
        match=r"^action must name an audit action class \(AccessDenied, AgentExit, "
        r"AgentSpawn, .*, ToolResult\), got 'agent_stopped'$",
    ):
        assert_audited(trail, action="agent_stopped")


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        (
            {"action": AgentStopped},
            r"^action must be an audit action class, its name or an audit action, "
            r"got the class AgentStopped$",
        ),
        (
            {"action": AgentStopped(id=A1, success=True)},
            r"^action must be an audit action class, its name or an audit action, "
            r"got AgentStopped$",
        ),
        (
            {"actor": A1},
            r"^actor must be a str, got UUID \(an agent's actor is str\(agent_id\)\)$",
        ),
        ({"actor": 1}, r"^actor must be a str, got int$"),
        (
            {"kind": AgentStopped},
            r"^kind must be a str \(an event tag\), got the class AgentStopped$",
        ),
    ],
    ids=["event-class-as-action", "event-as-action", "uuid-actor", "int-actor", "class-kind"],
)
async def test_criteria_of_the_wrong_type_are_rejected_naming_them(
    trail: AuditTrail, criteria: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        assert_audited(trail, **criteria)  # type: ignore[arg-type]


async def test_what_is_not_a_trail_is_rejected() -> None:
    expected = "trail must be an AuditTrail, an Auditor or an iterable of AuditEntry"
    bus = EventBus()
    with pytest.raises(TypeError, match=rf"^{expected}, got EventBus$"):
        assert_audited(bus, kind="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"^{expected}, got Subscription$"):
        assert_audited(bus.subscribe(), kind="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"^{expected}, got str$"):
        assert_audited("audit.db", kind="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"^{expected}, got a list holding AgentStarted$"):
        assert_audited([AgentStarted(id=A1)], kind="agent_started")  # type: ignore[list-item]


def test_it_never_imports_audit_itself() -> None:
    # Without audit loaded no entry can exist: an empty trail fails, anything else is rejected.
    code = """
import sys
from eventbus.testing import assert_audited
for trail, criteria in [([], {"action": "AgentExit"}), ([], {"actor": "x"}), ([1], {"kind": "k"})]:
    try:
        assert_audited(trail, **criteria)
    except (AssertionError, TypeError) as exc:
        print(type(exc).__name__, exc)
print("audit" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.splitlines() == [
        "AssertionError expected an audit entry with action=AgentExit; none of the 0 entries "
        "matches",
        "AssertionError expected an audit entry with actor='x'; none of the 0 entries matches",
        "TypeError trail must be an AuditTrail, an Auditor or an iterable of AuditEntry, "
        "got a list holding int",
        "False",
    ]


def test_hides_itself_from_tracebacks() -> None:
    assert "__tracebackhide__" in assert_audited.__code__.co_varnames
