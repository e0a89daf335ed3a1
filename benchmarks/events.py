"""The events every workload publishes, and their pydantic twins for workload E.

The project's event catalogue (``eventbus.events``) is written in parallel; until it lands,
these stand in for it: tagged msgspec Structs of the same shape and size as the kernel events
of the seeds (a tool call finished, an agent started, a memory write).
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec


class ToolExecutionFinished(msgspec.Struct, tag="tool_execution_finished", frozen=True):
    """A mid-sized event: ids, a name, a few numbers, a short list and a small mapping."""

    agent_id: str
    session_id: str
    tool_name: str
    call_id: str
    success: bool
    duration_ms: int
    output_bytes: int
    tags: list[str] = []
    metadata: dict[str, str] = {}
    error: str | None = None


class AgentStarted(msgspec.Struct, tag="agent_started", frozen=True):
    """A small event."""

    agent_id: str
    name: str
    parent_id: str | None = None


class MemoryWritten(msgspec.Struct, tag="memory_written", frozen=True):
    """A small event with a float."""

    agent_id: str
    key: str
    size_bytes: int
    importance: float = 0.5


BenchEvent = ToolExecutionFinished
"""The event of workloads A, B, C and F."""

KernelEvent = ToolExecutionFinished | AgentStarted | MemoryWritten
"""The tagged union workload E decodes."""


def tool_event(i: int) -> ToolExecutionFinished:
    """The ``i``-th tool event: distinct ids, realistic sizes."""
    return ToolExecutionFinished(
        agent_id=f"agent-{i % 17:04d}",
        session_id=f"session-{i % 5:04d}",
        tool_name=("shell", "read_file", "web_search", "edit")[i % 4],
        call_id=f"call-{i:08d}",
        success=i % 11 != 0,
        duration_ms=12 + i % 900,
        output_bytes=100 + (i * 37) % 50_000,
        tags=["sandboxed", "retry"] if i % 3 == 0 else ["sandboxed"],
        metadata={"model": "m-large", "cwd": "/work/project"},
        error=None if i % 11 else "exit status 1",
    )


def event_pool(n: int = 1024) -> list[ToolExecutionFinished]:
    """``n`` distinct tool events, built once so publishing measures publishing only."""
    return [tool_event(i) for i in range(n)]


def mixed_events(n: int) -> list[Any]:
    """``n`` events of the three kinds (half tool events), for the codec workload."""
    out: list[Any] = []
    for i in itertools.islice(itertools.count(), n):
        r = i % 4
        if r < 2:
            out.append(tool_event(i))
        elif r == 2:
            out.append(AgentStarted(agent_id=f"agent-{i:04d}", name=f"worker {i}", parent_id=None))
        else:
            out.append(MemoryWritten(agent_id=f"agent-{i % 17:04d}", key=f"k/{i}", size_bytes=i))
    return out


def pydantic_twins() -> tuple[Any, Any]:
    """Pydantic v2 models with the same fields and wire format, and a discriminated-union adapter.

    :returns: ``(to_pydantic, adapter)``: a function mapping a msgspec event to its twin, and
        a ``TypeAdapter`` over the union discriminated by ``type``, msgspec's default tag
        field, so both libraries read and write the same JSON.
    :raises ImportError: if pydantic is not installed.
    """
    from typing import Annotated, Literal

    import pydantic

    class PToolExecutionFinished(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(frozen=True)
        type: Literal["tool_execution_finished"] = "tool_execution_finished"
        agent_id: str
        session_id: str
        tool_name: str
        call_id: str
        success: bool
        duration_ms: int
        output_bytes: int
        tags: list[str] = []
        metadata: dict[str, str] = {}
        error: str | None = None

    class PAgentStarted(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(frozen=True)
        type: Literal["agent_started"] = "agent_started"
        agent_id: str
        name: str
        parent_id: str | None = None

    class PMemoryWritten(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(frozen=True)
        type: Literal["memory_written"] = "memory_written"
        agent_id: str
        key: str
        size_bytes: int
        importance: float = 0.5

    twins: dict[type, type[pydantic.BaseModel]] = {
        ToolExecutionFinished: PToolExecutionFinished,
        AgentStarted: PAgentStarted,
        MemoryWritten: PMemoryWritten,
    }
    union = Annotated[
        PToolExecutionFinished | PAgentStarted | PMemoryWritten,
        pydantic.Field(discriminator="type"),
    ]
    adapter = pydantic.TypeAdapter(union)

    def to_pydantic(event: Any) -> pydantic.BaseModel:
        return twins[type(event)](**msgspec.structs.asdict(event))

    return to_pydantic, adapter
