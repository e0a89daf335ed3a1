"""Asserting on the audit trail in your own pytest file.

Run it with ``python -m pytest examples/test_with_audit.py`` (or ``python
examples/test_with_audit.py``, which does the same).

Installing kernel-eventbus registers a pytest plugin: the fixtures ``event_bus`` (a fresh bus,
closed after the test), ``captured_events`` (everything published during the test) and
``audit_trail`` (an audit trail attached to ``event_bus``) need no import and no conftest.
Async tests run with anyio's pytest plugin (installed with anyio): mark them
``@pytest.mark.anyio`` and they run on every installed backend (asyncio, and trio when it is
installed); define an ``anyio_backend`` fixture to choose.

The code under test here is a tiny supervisor function; yours would be your own.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import anyio
import pytest

from audit import AgentExit, AgentSpawn, Auditor, MemoryWrite
from eventbus import EventBus
from eventbus.events import AgentFailed, AgentStarted, AgentStopped, MemoryStored
from eventbus.testing import CapturedEvents, assert_audited, assert_received, expect

pytestmark = pytest.mark.anyio

AGENT = uuid.UUID("5b0c9a44-1f1e-4d6b-9d43-8c2b1f6e7a10")


async def run_agent(bus: EventBus[Any], agent_id: uuid.UUID, *, fail: bool = False) -> None:
    """The code under test: an agent that starts, remembers something, and ends."""
    bus.publish(AgentStarted(id=agent_id))
    await anyio.lowlevel.checkpoint()  # real work would await I/O here
    if fail:
        bus.publish(AgentFailed(id=agent_id, error="tool timed out"))
        return
    bus.publish(MemoryStored(id="fact-1", memory_type="semantic", source=str(agent_id)))
    bus.publish(AgentStopped(id=agent_id, success=True))


async def test_a_completed_agent_is_audited(
    event_bus: EventBus[Any], audit_trail: Auditor
) -> None:
    await run_agent(event_bus, AGENT)
    await audit_trail.flush()  # instant with this fixture; needed with a queued auditor
    assert_audited(audit_trail, actor=str(AGENT), action=AgentSpawn(task_type="started"))
    assert_audited(audit_trail, kind="memory_stored", action=MemoryWrite)
    assert_audited(audit_trail, actor=str(AGENT), action=AgentExit(reason="completed"))
    assert audit_trail.trail.verify() is None  # the hash chain is intact


async def test_a_failed_agent_is_audited_with_its_error(
    event_bus: EventBus[Any], audit_trail: Auditor
) -> None:
    await run_agent(event_bus, AGENT, fail=True)
    [exit_entry] = assert_audited(audit_trail, action=AgentExit)
    assert exit_entry.action == AgentExit(reason="tool timed out")
    assert not audit_trail.trail.query(kind="memory_stored")


async def test_the_events_in_order(
    event_bus: EventBus[Any], captured_events: CapturedEvents[Any]
) -> None:
    await run_agent(event_bus, AGENT)
    assert captured_events.kinds == ["agent_started", "memory_stored", "agent_stopped"]
    assert captured_events.of(AgentStopped) == [AgentStopped(id=AGENT, success=True)]


async def test_waiting_for_an_event_from_another_task(event_bus: EventBus[Any]) -> None:
    consumer = event_bus.subscribe(kinds=[AgentStarted])
    stopped = expect(event_bus, AgentStopped)  # listen first, then act
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_agent, event_bus, AGENT)
        envelope = await stopped
    assert envelope.event.success
    assert_received(consumer, AgentStarted(id=AGENT))


if __name__ == "__main__":
    # Same as ``python -m pytest examples/test_with_audit.py``, in a fresh interpreter so that
    # pytest loads the plugin before anything imports eventbus.
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", __file__]))
