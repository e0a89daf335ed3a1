"""An agent supervisor with an audit trail on SQLite.

Run it with ``python examples/supervisor.py [DB]`` (default ``supervisor-audit.sqlite3`` in the
current directory; run it again to see the trail resume from the store).

The supervisor spawns a group of agents. Each agent recalls memories, asks the supervisor for
approval before tools with side effects, runs its tools, and stores what it learnt. Every
event goes on one bus, and the audit trail records every one of them, with its actor and
action, into a hash-chained trail persisted in SQLite. At the end it prints the trail.

What to look at:

* ``attach_audit_trail`` is entered before anything is published, so nothing escapes it;
  leaving the block records what was published and commits it to the store.
* The approver is an ordinary consumer task; agents wait for their decision on a
  subscription of their own, created *before* they ask, so a fast answer cannot be missed.
* Tool arguments carry an ``api_key``: the trail stores ``[REDACTED]`` instead.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from audit import AuditTrail, attach_audit_trail
from audit.sinks import SqliteSink, verify_sink
from eventbus import EventBus, Subscription
from eventbus.events import (
    AgentCreated,
    AgentGroupCreated,
    AgentGroupMemberCompleted,
    AgentStarted,
    AgentStopped,
    ApprovalRequested,
    ApprovalResolved,
    MemoryRecallUsed,
    MemoryStored,
    ToolExecutionFinished,
    ToolExecutionStarted,
)

AGENTS = ("researcher", "coder", "reviewer")
# (tool, arguments): tools that change something need the supervisor's approval.
PLAN: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "researcher": [("web_search", {"query": "anyio broadcast", "api_key": "sk-live-123"})],
    "coder": [("write_file", {"path": "bus.py"}), ("shell", {"command": "rm -rf build/"})],
    "reviewer": [("read_file", {"path": "bus.py"}), ("shell", {"command": "pytest -q"})],
}
NEEDS_APPROVAL = {"write_file", "shell"}


async def approver(bus: EventBus[Any], requests: Subscription[Any]) -> None:
    """The supervisor's policy: approve everything except deleting files."""
    async for envelope in requests:
        request: ApprovalRequested = envelope.event
        approved = "rm " not in request.resource
        bus.publish(ApprovalResolved(id=request.id, approved=approved))


async def agent(bus: EventBus[Any], group_id: uuid.UUID, name: str) -> None:
    agent_id = uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.agents.example")
    session = f"{name}-session"
    bus.publish(AgentCreated(id=agent_id, name=name))
    bus.publish(AgentStarted(id=agent_id))
    bus.publish(MemoryRecallUsed(session_id=session, query=name, count=2, source="warm"))

    waiting: set[uuid.UUID] = set()
    with bus.subscribe(
        name=f"{name}-decisions", kinds=[ApprovalResolved], where=lambda e: e.event.id in waiting
    ) as decisions:
        for step, (tool, args) in enumerate(PLAN[name], 1):
            call_id = f"{name}-{step}"
            if tool in NEEDS_APPROVAL:
                request_id = uuid.uuid5(agent_id, call_id)
                waiting.add(request_id)
                resource = str(args.get("command") or args.get("path"))
                bus.publish(
                    ApprovalRequested(
                        id=request_id,
                        tool_name=tool,
                        action="execute",
                        resource=resource,
                        reason="side effects",
                        session_id=session,
                    )
                )
                decision = await decisions.receive()
                if not decision.event.approved:
                    print(f"{name}: {tool} {resource!r} denied")
                    continue
            bus.publish(
                ToolExecutionStarted(
                    session_id=session, tool_name=tool, tool_call_id=call_id, tool_args=args
                )
            )
            await anyio.lowlevel.checkpoint()  # the tool runs; the other agents go on
            bus.publish(
                ToolExecutionFinished(
                    session_id=session,
                    tool_call_id=call_id,
                    tool_name=tool,
                    duration_ms=12,
                    is_error=False,
                    output_summary="ok",
                )
            )
            bus.publish(MemoryStored(id=call_id, memory_type="episodic", source=name))

    bus.publish(AgentGroupMemberCompleted(group_id=group_id, agent_id=agent_id, success=True))
    bus.publish(AgentStopped(id=agent_id, success=True))


async def main(db: Path, resume: bool) -> None:
    trail = AuditTrail()
    with SqliteSink(db) as sink:
        async with (
            EventBus[Any]() as bus,
            attach_audit_trail(bus, trail, sink=sink, resume=resume) as auditor,
        ):
            requests = bus.subscribe(name="approver", kinds=[ApprovalRequested])
            async with anyio.create_task_group() as tg:
                tg.start_soon(approver, bus, requests)
                group_id = uuid.uuid4()
                bus.publish(AgentGroupCreated(group_id=group_id, agent_count=len(AGENTS)))
                async with anyio.create_task_group() as group:
                    for name in AGENTS:
                        group.start_soon(agent, bus, group_id, name)
                tg.cancel_scope.cancel()  # every agent is done: stop the approver
            await auditor.flush()  # every entry is in the trail and committed to SQLite
            published = bus.statistics().published

    stats = trail.statistics()
    print(f"\npublished {published} events; trail holds {len(trail)} entries")
    print(f"({stats.restored} restored from {db}, {stats.appended} new)\n")
    for entry in trail.last(published):
        action = type(entry.action).__name__
        print(f"{entry.seq:>4}  {entry.actor[:36]:<36}  {action:<12}  {entry.kind}")
    redacted = [e for e in trail if "sk-live-123" in e.resource]
    print(f"\nsecrets in the trail: {len(redacted)}")
    print(f"store {db}: {'intact' if verify_sink(db) is None else 'TAMPERED'}")


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "supervisor-audit.sqlite3")
    anyio.run(main, path, path.exists())  # an existing store is resumed: seq and chain go on
