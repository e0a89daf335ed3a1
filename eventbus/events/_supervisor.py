"""Supervisor events: the oxios kernel's agent, seed, phase, approval, memory and tool events.

Every class is one variant of the oxios ``KernelEvent`` enum, with the variant name as class
name, its snake_case as tag, and the variant's field names. Ids (oxios ``AgentId`` and
``Uuid``) are :class:`uuid.UUID`; counts and durations are non-negative ints; ``tool_args``
and ``context`` are arbitrary JSON values.

Fields oxios marks ``#[serde(default)]`` (or ``Option`` fields serde fills with ``None``) have
the same default here, so JSON written before they existed still decodes. Where oxios skips a
field when it is empty (``skip_serializing_if``), the class sets ``omit_defaults=True`` so the
field is absent from the wire in the same cases.

oxios itself tags this enum externally (``{"AgentStarted": {...}}``); on the bus, like every
kernel event, these are tagged internally by ``event_type``. Use
:func:`eventbus.codec.decode_oxios_json` for the external form.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, TypeAlias, get_args

import msgspec

from ._base import U32, U64, FiniteFloat, JsonValue, KernelEvent
from ._taxonomy import Category

__all__ = [
    "SUPERVISOR_EVENT_TYPES",
    "AgentCreated",
    "AgentFailed",
    "AgentGroupCreated",
    "AgentGroupMemberCompleted",
    "AgentOutput",
    "AgentStarted",
    "AgentStopped",
    "ApprovalRequested",
    "ApprovalResolved",
    "AskUserRequest",
    "CalendarEventCreated",
    "CalendarEventDeleted",
    "CalendarEventUpdated",
    "EmailSent",
    "EvaluationComplete",
    "EvolutionMaxReached",
    "EvolutionStarted",
    "KnowledgePersisted",
    "KnowledgeRemoved",
    "MemoryRecallUsed",
    "MemoryRecalled",
    "MemoryStored",
    "MessageReceived",
    "PhaseCompleted",
    "PhaseStarted",
    "ProjectActivated",
    "ProjectCreated",
    "ReasoningFragment",
    "SeedCreated",
    "SupervisorEvent",
    "TokenUsageUpdate",
    "ToolExecutionFinished",
    "ToolExecutionProgress",
    "ToolExecutionStarted",
]


# -- agent lifecycle (proc) ----------------------------------------------------------------------


class AgentCreated(KernelEvent, tag="agent_created", frozen=True, kw_only=True):
    """A new agent was created. ``id``: the agent; ``name``: its name or goal."""

    category: ClassVar[Category] = Category.PROC
    id: uuid.UUID
    name: str


class AgentStarted(KernelEvent, tag="agent_started", frozen=True, kw_only=True):
    """An agent started executing. ``id``: the agent."""

    category: ClassVar[Category] = Category.PROC
    id: uuid.UUID


class AgentStopped(KernelEvent, tag="agent_stopped", frozen=True, kw_only=True):
    """An agent stopped. ``id``: the agent.

    ``success`` is ``True`` when the agent completed its task, ``False`` when it was stopped
    (cancelled, timed out or otherwise ended without completing). It defaults to ``False``, so
    oxios 1.0 JSON, which has no ``success`` field, still decodes, as a plain stop.
    """

    category: ClassVar[Category] = Category.PROC
    id: uuid.UUID
    success: bool = False


class AgentFailed(KernelEvent, tag="agent_failed", frozen=True, kw_only=True):
    """An agent failed. ``id``: the agent; ``error``: what went wrong."""

    category: ClassVar[Category] = Category.PROC
    id: uuid.UUID
    error: str


class AgentGroupCreated(KernelEvent, tag="agent_group_created", frozen=True, kw_only=True):
    """A multi-agent group was created. ``agent_count``: how many agents it holds."""

    category: ClassVar[Category] = Category.PROC
    group_id: uuid.UUID
    agent_count: U64


class AgentGroupMemberCompleted(
    KernelEvent, tag="agent_group_member_completed", frozen=True, kw_only=True
):
    """An agent of a group finished; ``success`` says whether it succeeded."""

    category: ClassVar[Category] = Category.PROC
    group_id: uuid.UUID
    agent_id: uuid.UUID
    success: bool


# -- messages (ipc) -------------------------------------------------------------------------------


class MessageReceived(KernelEvent, tag="message_received", frozen=True, kw_only=True):
    """A message arrived from an agent. ``from``: the sending agent; ``content``: the text.

    The wire field is ``from``; in Python it is ``from_`` (``from`` is a keyword).
    """

    category: ClassVar[Category] = Category.IPC
    from_: uuid.UUID = msgspec.field(name="from")
    content: str


class AgentOutput(KernelEvent, tag="agent_output", frozen=True, kw_only=True):
    """An agent produced output in a session. ``output``: the content produced."""

    category: ClassVar[Category] = Category.IPC
    session_id: str
    agent_id: uuid.UUID
    output: str


class AskUserRequest(KernelEvent, tag="ask_user_request", frozen=True, kw_only=True):
    """The agent asks the user a question and waits for the answer.

    ``id`` correlates the answer with the request (a string, not a UUID, in oxios);
    ``options`` are the suggested answers, possibly empty.
    """

    category: ClassVar[Category] = Category.IPC
    id: str
    question: str
    options: tuple[str, ...]


# -- seeds, evaluation, evolution, phases, projects, model traffic (sched) ----------------------


class SeedCreated(KernelEvent, tag="seed_created", frozen=True, kw_only=True):
    """A new seed (the specification an evolution loop works from) was created."""

    category: ClassVar[Category] = Category.SCHED
    seed_id: uuid.UUID


class EvaluationComplete(KernelEvent, tag="evaluation_complete", frozen=True, kw_only=True):
    """A seed's evaluation finished; ``passed`` says whether it passed."""

    category: ClassVar[Category] = Category.SCHED
    seed_id: uuid.UUID
    passed: bool


class PhaseStarted(KernelEvent, tag="phase_started", frozen=True, kw_only=True):
    """An Ouroboros phase started in a session.

    ``phase`` is the phase's name as a string: the oxios ``Phase`` enum is not part of the
    seeds this catalogue ports, so its values are not constrained here.
    """

    category: ClassVar[Category] = Category.SCHED
    session_id: str
    phase: str


class PhaseCompleted(KernelEvent, tag="phase_completed", frozen=True, kw_only=True):
    """An Ouroboros phase completed. ``phase`` is a string (see :class:`PhaseStarted`)."""

    category: ClassVar[Category] = Category.SCHED
    session_id: str
    phase: str
    result_summary: str


class EvolutionStarted(KernelEvent, tag="evolution_started", frozen=True, kw_only=True):
    """The evaluate-evolve-re-execute loop produced a new seed. ``iteration`` is 0-based."""

    category: ClassVar[Category] = Category.SCHED
    seed_id: uuid.UUID
    new_seed_id: uuid.UUID
    iteration: U32


class EvolutionMaxReached(KernelEvent, tag="evolution_max_reached", frozen=True, kw_only=True):
    """The evolution loop hit its iteration limit. ``final_score`` is finite (no NaN)."""

    category: ClassVar[Category] = Category.SCHED
    seed_id: uuid.UUID
    final_score: FiniteFloat
    iterations: U32


class ProjectCreated(KernelEvent, tag="project_created", frozen=True, kw_only=True):
    """A project was created. ``source``: how it was created."""

    category: ClassVar[Category] = Category.SCHED
    project_id: uuid.UUID
    name: str
    source: str


class ProjectActivated(KernelEvent, tag="project_activated", frozen=True, kw_only=True):
    """A project became the active one."""

    category: ClassVar[Category] = Category.SCHED
    project_id: uuid.UUID
    name: str


class TokenUsageUpdate(KernelEvent, tag="token_usage_update", frozen=True, kw_only=True):
    """Cumulative model token usage of a session."""

    category: ClassVar[Category] = Category.SCHED
    session_id: str
    input_tokens: U64
    output_tokens: U64


class ReasoningFragment(KernelEvent, tag="reasoning_fragment", frozen=True, kw_only=True):
    """A fragment of model reasoning. ``source``: where it came from (e.g. ``compaction``)."""

    category: ClassVar[Category] = Category.SCHED
    session_id: str
    content: str
    source: str


# -- approvals, tools and external side effects (syscall) -----------------------------------------


class ApprovalRequested(KernelEvent, tag="approval_requested", frozen=True, kw_only=True):
    """A human-in-the-loop approval was requested for a tool action on a resource.

    ``session_id`` is ``None`` when the request is not tied to a session, and when absent from
    the JSON. ``tool_name`` is required, as in the oxios version this catalogue follows:
    oxios 1.0 JSON, which predates it, is rejected ("missing required field").
    """

    category: ClassVar[Category] = Category.SYSCALL
    id: uuid.UUID
    tool_name: str
    action: str
    resource: str
    reason: str
    session_id: str | None = None


class ApprovalResolved(KernelEvent, tag="approval_resolved", frozen=True, kw_only=True):
    """A supervisor approval request was approved (``True``) or rejected (``False``).

    Not to be confused with the turn loop's :class:`TurnApprovalResolved`.
    """

    category: ClassVar[Category] = Category.SYSCALL
    id: uuid.UUID
    approved: bool


class ToolExecutionStarted(
    KernelEvent, tag="tool_execution_started", frozen=True, kw_only=True, omit_defaults=True
):
    """A tool call started in a session.

    ``tool_args`` is the call's arguments (any JSON value; may hold secrets, so audit
    consumers redact it). ``context`` is optional UI or routing context, omitted from the
    wire when ``None``.
    """

    category: ClassVar[Category] = Category.SYSCALL
    session_id: str
    tool_name: str
    tool_call_id: str
    tool_args: JsonValue
    context: JsonValue | None = None


class ToolExecutionFinished(KernelEvent, tag="tool_execution_finished", frozen=True, kw_only=True):
    """A tool call finished after ``duration_ms``; ``is_error`` marks a failed call."""

    category: ClassVar[Category] = Category.SYSCALL
    session_id: str
    tool_call_id: str
    tool_name: str
    duration_ms: U64
    is_error: bool
    output_summary: str


class ToolExecutionProgress(
    KernelEvent, tag="tool_execution_progress", frozen=True, kw_only=True, omit_defaults=True
):
    """Progress of a running tool call.

    ``tab_id`` names the browser tab the progress belongs to; ``context`` is optional JSON
    (its ``kind`` key, when a string, labels the progress). Both are omitted from the wire when
    ``None`` and default to ``None`` when absent, so older JSON decodes.
    """

    category: ClassVar[Category] = Category.SYSCALL
    session_id: str
    tool_call_id: str
    tool_name: str
    progress: str
    tab_id: uuid.UUID | None = None
    context: JsonValue | None = None


class CalendarEventCreated(KernelEvent, tag="calendar_event_created", frozen=True, kw_only=True):
    """A calendar event was created. ``start``/``end`` are timestamps as oxios wrote them."""

    category: ClassVar[Category] = Category.SYSCALL
    uid: str
    title: str
    start: str
    end: str


class CalendarEventUpdated(KernelEvent, tag="calendar_event_updated", frozen=True, kw_only=True):
    """A calendar event was updated."""

    category: ClassVar[Category] = Category.SYSCALL
    uid: str
    title: str


class CalendarEventDeleted(KernelEvent, tag="calendar_event_deleted", frozen=True, kw_only=True):
    """A calendar event was deleted."""

    category: ClassVar[Category] = Category.SYSCALL
    uid: str
    title: str


class EmailSent(KernelEvent, tag="email_sent", frozen=True, kw_only=True, omit_defaults=True):
    """An email was sent. ``template_name`` is omitted from the wire when ``None``."""

    category: ClassVar[Category] = Category.SYSCALL
    subject: str
    message_id: str
    template_name: str | None = None


# -- memory and knowledge (mm) -------------------------------------------------------------------


class MemoryStored(KernelEvent, tag="memory_stored", frozen=True, kw_only=True):
    """A memory entry was stored. ``id`` is the entry's id (a string in oxios)."""

    category: ClassVar[Category] = Category.MM
    id: str
    memory_type: str
    source: str


class MemoryRecalled(KernelEvent, tag="memory_recalled", frozen=True, kw_only=True):
    """Memories were recalled for a new session; ``count`` entries matched ``query``."""

    category: ClassVar[Category] = Category.MM
    query: str
    count: U64


class MemoryRecallUsed(KernelEvent, tag="memory_recall_used", frozen=True, kw_only=True):
    """Recalled memories were used in a session. ``source``: the memory tier (e.g. ``warm``)."""

    category: ClassVar[Category] = Category.MM
    session_id: str
    query: str
    count: U64
    source: str


class KnowledgePersisted(KernelEvent, tag="knowledge_persisted", frozen=True, kw_only=True):
    """A message of a session was persisted as knowledge at ``path``."""

    category: ClassVar[Category] = Category.MM
    session_id: str
    message_index: U64
    path: str
    source: str


class KnowledgeRemoved(KernelEvent, tag="knowledge_removed", frozen=True, kw_only=True):
    """Knowledge persisted from a session's message was removed."""

    category: ClassVar[Category] = Category.MM
    session_id: str
    message_index: U64


SupervisorEvent: TypeAlias = (
    AgentCreated
    | AgentStarted
    | AgentStopped
    | AgentFailed
    | MessageReceived
    | SeedCreated
    | EvaluationComplete
    | PhaseStarted
    | PhaseCompleted
    | AgentOutput
    | ApprovalRequested
    | ApprovalResolved
    | MemoryStored
    | MemoryRecalled
    | AgentGroupCreated
    | AgentGroupMemberCompleted
    | ProjectCreated
    | ProjectActivated
    | EvolutionStarted
    | EvolutionMaxReached
    | ToolExecutionStarted
    | ToolExecutionFinished
    | ToolExecutionProgress
    | MemoryRecallUsed
    | TokenUsageUpdate
    | ReasoningFragment
    | CalendarEventCreated
    | CalendarEventUpdated
    | CalendarEventDeleted
    | EmailSent
    | KnowledgePersisted
    | KnowledgeRemoved
    | AskUserRequest
)
"""Any supervisor event (the oxios ``KernelEvent`` enum), in the oxios variant order."""

SUPERVISOR_EVENT_TYPES: tuple[type[KernelEvent], ...] = get_args(SupervisorEvent)
"""Every supervisor event class, in the oxios variant order."""
