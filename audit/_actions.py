"""What an audit entry says was done: the :data:`AuditAction` tagged union."""

from __future__ import annotations

from typing import TypeAlias

import msgspec

__all__ = [
    "AccessDenied",
    "AgentExit",
    "AgentSpawn",
    "AuditAction",
    "ConfigChange",
    "CronTrigger",
    "EventsDropped",
    "GitCommit",
    "MemoryRead",
    "MemoryWrite",
    "Other",
    "ProgramInstall",
    "ToolCall",
    "ToolResult",
]

# Every action is a frozen Struct tagged ``{"type": "<ClassName>", ...}``. Tags are spelled out
# on each class: the default tag is the class name, so a rename would silently change the wire
# format and every stored hash.


class AgentSpawn(msgspec.Struct, frozen=True, tag_field="type", tag="AgentSpawn"):
    """An agent was created or started; ``task_type`` says what it was spawned for."""

    task_type: str


class AgentExit(msgspec.Struct, frozen=True, tag_field="type", tag="AgentExit"):
    """An agent stopped or failed; ``reason`` is ``"completed"``, ``"stopped"`` or the error."""

    reason: str


class ToolCall(msgspec.Struct, frozen=True, tag_field="type", tag="ToolCall"):
    """A tool was called; ``args_json`` is its arguments as redacted, bounded JSON."""

    tool: str
    args_json: str


class ToolResult(msgspec.Struct, frozen=True, tag_field="type", tag="ToolResult"):
    """A tool call finished, successfully or not."""

    tool: str
    success: bool


class MemoryWrite(msgspec.Struct, frozen=True, tag_field="type", tag="MemoryWrite"):
    """Something was written to memory; ``entry_id`` names what."""

    entry_id: str


class MemoryRead(msgspec.Struct, frozen=True, tag_field="type", tag="MemoryRead"):
    """Memory was read or queried; ``entry_id`` names what (for a query, the query)."""

    entry_id: str


class ConfigChange(msgspec.Struct, frozen=True, tag_field="type", tag="ConfigChange"):
    """A configuration key changed."""

    key: str


class ProgramInstall(msgspec.Struct, frozen=True, tag_field="type", tag="ProgramInstall"):
    """A program was installed."""

    program: str
    version: str


class CronTrigger(msgspec.Struct, frozen=True, tag_field="type", tag="CronTrigger"):
    """A scheduled job fired."""

    job_id: str


class GitCommit(msgspec.Struct, frozen=True, tag_field="type", tag="GitCommit"):
    """A commit was made."""

    message: str


class AccessDenied(msgspec.Struct, frozen=True, tag_field="type", tag="AccessDenied"):
    """A permission check refused something; ``permission`` names what was refused."""

    permission: str


class Other(msgspec.Struct, frozen=True, tag_field="type", tag="Other"):
    """Anything else, described by a stable ``detail`` string."""

    detail: str


class EventsDropped(msgspec.Struct, frozen=True, tag_field="type", tag="EventsDropped"):
    """The audit consumer lost ``count`` envelopes with bus ``seq`` in ``first_seq..last_seq``.

    Written by the ``queued`` consumer at the point of the gap, so the trail never has a silent
    hole. ``count`` may be smaller than ``last_seq - first_seq + 1`` when the bus's own
    sequence jumped inside the gap (a replay with ``keep_seq``).
    """

    count: int
    first_seq: int
    last_seq: int


AuditAction: TypeAlias = (
    AgentSpawn
    | AgentExit
    | ToolCall
    | ToolResult
    | MemoryWrite
    | MemoryRead
    | ConfigChange
    | ProgramInstall
    | CronTrigger
    | GitCommit
    | AccessDenied
    | Other
    | EventsDropped
)
"""What an entry says was done: one of the action classes, tagged by ``type`` on the wire."""

ACTION_TYPES: tuple[type[AuditAction], ...] = (
    AgentSpawn,
    AgentExit,
    ToolCall,
    ToolResult,
    MemoryWrite,
    MemoryRead,
    ConfigChange,
    ProgramInstall,
    CronTrigger,
    GitCommit,
    AccessDenied,
    Other,
    EventsDropped,
)
