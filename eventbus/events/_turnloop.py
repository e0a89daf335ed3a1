"""Turn-loop events: one agent turn's model requests, tool calls, compaction and guards.

Every class is one variant of the turn-loop kernel's ``KernelEvent`` enum, which serde
already tags internally by ``event_type`` with snake_case tags, so these events keep the
seed's wire shape field for field, with one exception: the turn loop's ``ApprovalResolved``
clashes with the supervisor event of the same name, so it is :class:`TurnApprovalResolved`
with tag ``turn_approval_resolved``.

Nested types
------------
Plain structs (:class:`PolicyDecision`, :class:`MessageRange`, :class:`RequestFingerprint`,
:class:`Usage`) and unit-only enums (:class:`TurnLoopMode`, :class:`DeltaKind`,
:class:`ApprovalVerdict`, :class:`OverflowStrategy`, :class:`CapacityCheckpointKind`) have
serde's shapes exactly: objects, and snake_case strings.

Enums whose variants carry data (:data:`TurnOutcome`, :data:`ToolOutcome`,
:data:`CapacityAction`) deviate: serde tags them *externally* (``"completed"`` for a unit
variant, ``{"failed": {"message": "..."}}`` for one with data), which msgspec cannot express
as a union of classes. Here every variant is a small frozen struct, tagged *internally* by a
``type`` field: ``{"type": "completed"}``, ``{"type": "failed", "message": "..."}``.
"""

from __future__ import annotations

import enum
from typing import ClassVar, TypeAlias, get_args

import msgspec

from ._base import U32, U64, KernelEvent
from ._taxonomy import Category

__all__ = [
    "TURN_LOOP_EVENT_TYPES",
    "ApprovalVerdict",
    "CapacityAction",
    "CapacityActionAbort",
    "CapacityActionContinue",
    "CapacityActionHandoff",
    "CapacityActionTrim",
    "CapacityCheckpoint",
    "CapacityCheckpointKind",
    "CompactionArtifactCreated",
    "ContextOverflowRecovered",
    "CycleAdvanced",
    "CycleBriefingInjected",
    "DeferredToolActivated",
    "DeltaKind",
    "LayeredContextSeamInjected",
    "LoopGuardContinuation",
    "LoopGuardTriggered",
    "MemoryPlaneQueried",
    "MessageRange",
    "ModelDelta",
    "ModelMessage",
    "ModelRequestIssued",
    "OverflowStrategy",
    "PolicyDecision",
    "RequestFingerprint",
    "SchemaVersion",
    "ScratchpadReminderInjected",
    "ScratchpadSummaryInjected",
    "StepLimitContinuation",
    "SteerInjected",
    "ToolCallFinished",
    "ToolCallPlanned",
    "ToolCallStarted",
    "ToolOutcome",
    "ToolOutcomeBlocked",
    "ToolOutcomeGuardHalt",
    "ToolOutcomeSuccess",
    "ToolOutcomeTimeout",
    "ToolOutcomeToolError",
    "TopicMemoryInjected",
    "TurnApprovalResolved",
    "TurnEnded",
    "TurnLoopEvent",
    "TurnLoopMode",
    "TurnOutcome",
    "TurnOutcomeBudget",
    "TurnOutcomeCompleted",
    "TurnOutcomeCycleHandoff",
    "TurnOutcomeFailed",
    "TurnOutcomeInterrupted",
    "TurnOutcomeLoopGuard",
    "TurnOutcomeMaxSteps",
    "TurnStarted",
    "Usage",
]


# -- unit-only enums: serde's snake_case strings ------------------------------------------------


class TurnLoopMode(enum.StrEnum):
    """How a turn loop runs: ``agent`` (tools, autonomous steps), ``plan`` (plans without
    side-effecting tools), ``chat`` (plain conversation).

    The seed imports this enum without defining it; these three values are this library's
    choice, and ``agent`` is the one the seed's tests pin.
    """

    AGENT = "agent"
    PLAN = "plan"
    CHAT = "chat"


class DeltaKind(enum.StrEnum):
    """What a streamed model delta carries."""

    TEXT = "text"
    THINKING_TEXT = "thinking_text"
    TOOL_CALL_ARG = "tool_call_arg"


class ApprovalVerdict(enum.StrEnum):
    """How a tool-call approval was resolved; ``retried`` means the call is re-planned."""

    APPROVED = "approved"
    REJECTED = "rejected"
    RETRIED = "retried"


class OverflowStrategy(enum.StrEnum):
    """How the loop recovered from a context overflow."""

    BUDGET_RECOMPILE = "budget_recompile"
    LLM_COMPACTION = "llm_compaction"
    CYCLE_HANDOFF = "cycle_handoff"


class CapacityCheckpointKind(enum.StrEnum):
    """Where in the loop a capacity checkpoint was taken."""

    PRE_REQUEST = "pre_request"
    POST_TOOL = "post_tool"
    ERROR_ESCALATION = "error_escalation"


# -- plain structs: serde's object shapes ------------------------------------------------------


class PolicyDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The tool policy's decision for a planned call. All three fields are required on the wire."""

    approval_required: bool
    parallel_eligible: bool
    read_only: bool


class MessageRange(msgspec.Struct, frozen=True):
    """A range of message indices. The wire field ``from`` is ``from_`` in Python."""

    from_: U32 = msgspec.field(name="from")
    to: U32


class RequestFingerprint(msgspec.Struct, frozen=True, kw_only=True):
    """SHA-256 hex digests of a model request's static prefix and of its full prefix."""

    static_prefix_sha256: str
    full_prefix_sha256: str


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Token usage of one model response.

    The two cache counters are this library's addition (the seed imports ``Usage`` without
    defining it); they default to 0, so usage objects without them decode.
    """

    input_tokens: U64
    output_tokens: U64
    cache_creation_input_tokens: U64 = 0
    cache_read_input_tokens: U64 = 0


# -- data-carrying enums: internally tagged by "type" (a documented deviation from serde) -----


class _Variant(msgspec.Struct, frozen=True, tag_field="type"):
    pass


class TurnOutcomeCompleted(_Variant, tag="completed", frozen=True):
    """The turn completed."""


class TurnOutcomeFailed(_Variant, tag="failed", frozen=True):
    """The turn failed with ``message``."""

    message: str


class TurnOutcomeInterrupted(_Variant, tag="interrupted", frozen=True):
    """The turn was interrupted (by the user or a cancellation)."""


class TurnOutcomeBudget(_Variant, tag="budget", frozen=True):
    """The turn ran out of budget."""


class TurnOutcomeLoopGuard(_Variant, tag="loop_guard", frozen=True):
    """The loop guard stopped the turn, for ``reason``."""

    reason: str


class TurnOutcomeMaxSteps(_Variant, tag="max_steps", frozen=True):
    """The turn hit its step limit."""


class TurnOutcomeCycleHandoff(_Variant, tag="cycle_handoff", frozen=True):
    """The turn handed off to a new context cycle, ``next_cycle``."""

    next_cycle: U32


TurnOutcome: TypeAlias = (
    TurnOutcomeCompleted
    | TurnOutcomeFailed
    | TurnOutcomeInterrupted
    | TurnOutcomeBudget
    | TurnOutcomeLoopGuard
    | TurnOutcomeMaxSteps
    | TurnOutcomeCycleHandoff
)
"""How a turn ended; on the wire ``{"type": "<variant>", ...fields}``."""


class ToolOutcomeSuccess(_Variant, tag="success", frozen=True):
    """The tool call succeeded."""


class ToolOutcomeBlocked(_Variant, tag="blocked", frozen=True):
    """Policy blocked the tool call, for ``reason``."""

    reason: str


class ToolOutcomeGuardHalt(_Variant, tag="guard_halt", frozen=True):
    """The loop guard halted the tool call, for ``reason``."""

    reason: str


class ToolOutcomeTimeout(_Variant, tag="timeout", frozen=True):
    """The tool call timed out."""


class ToolOutcomeToolError(_Variant, tag="tool_error", frozen=True):
    """The tool reported an error, ``message``."""

    message: str


ToolOutcome: TypeAlias = (
    ToolOutcomeSuccess
    | ToolOutcomeBlocked
    | ToolOutcomeGuardHalt
    | ToolOutcomeTimeout
    | ToolOutcomeToolError
)
"""How a tool call ended; on the wire ``{"type": "<variant>", ...fields}``."""


class CapacityActionContinue(_Variant, tag="continue", frozen=True):
    """Keep going: no intervention."""


class CapacityActionTrim(_Variant, tag="trim", frozen=True):
    """Trim the context (a targeted refresh)."""


class CapacityActionHandoff(_Variant, tag="handoff", frozen=True):
    """Hand off to a new cycle."""


class CapacityActionAbort(_Variant, tag="abort", frozen=True):
    """Abort the turn, for ``reason``."""

    reason: str


CapacityAction: TypeAlias = (
    CapacityActionContinue | CapacityActionTrim | CapacityActionHandoff | CapacityActionAbort
)
"""What a capacity checkpoint decided; on the wire ``{"type": "<variant>", ...fields}``."""


# -- the events ------------------------------------------------------------------------------


class SchemaVersion(KernelEvent, tag="schema_version", frozen=True, kw_only=True):
    """The first event of a log: the version of the log's schema. It has no ``turn_id``."""

    category: ClassVar[Category] = Category.SCHED
    version: U32


class TurnStarted(KernelEvent, tag="turn_started", frozen=True, kw_only=True):
    """A turn started in ``mode`` with the user's ``input_text`` and a ``max_steps`` limit."""

    category: ClassVar[Category] = Category.SCHED
    turn_id: str
    mode: TurnLoopMode
    input_text: str
    max_steps: U32


class TurnEnded(KernelEvent, tag="turn_ended", frozen=True, kw_only=True):
    """A turn ended with ``outcome`` after ``total_steps`` steps."""

    category: ClassVar[Category] = Category.SCHED
    turn_id: str
    outcome: TurnOutcome
    total_steps: U32


class ModelRequestIssued(KernelEvent, tag="model_request_issued", frozen=True, kw_only=True):
    """A model request was sent at step ``step_idx`` with ``token_budget`` output tokens."""

    category: ClassVar[Category] = Category.SCHED
    turn_id: str
    step_idx: U32
    request_fp: RequestFingerprint
    token_budget: U32


class ModelDelta(KernelEvent, tag="model_delta", frozen=True, kw_only=True):
    """A streamed piece of the model's response; ``call_id`` is set for tool-call arguments."""

    category: ClassVar[Category] = Category.SCHED
    turn_id: str
    step_idx: U32
    kind: DeltaKind
    call_id: str | None = None
    text: str


class ModelMessage(
    KernelEvent, tag="model_message", frozen=True, kw_only=True, omit_defaults=True
):
    """The model's complete response at a step, with its ``usage`` and ``block_count``.

    ``text_preview`` and ``assistant_text`` default to ``""`` and are omitted when empty.
    """

    category: ClassVar[Category] = Category.SCHED
    turn_id: str
    step_idx: U32
    usage: Usage
    block_count: U32
    text_preview: str = ""
    assistant_text: str = ""


class ToolCallPlanned(KernelEvent, tag="tool_call_planned", frozen=True, kw_only=True):
    """The model planned a tool call; ``input_json`` is its raw JSON input, as text."""

    category: ClassVar[Category] = Category.SYSCALL
    turn_id: str
    step_idx: U32
    call_id: str
    tool_name: str
    input_json: str
    decision: PolicyDecision


class ToolCallStarted(KernelEvent, tag="tool_call_started", frozen=True, kw_only=True):
    """A planned tool call started, in parallel wave ``wave_idx``."""

    category: ClassVar[Category] = Category.SYSCALL
    turn_id: str
    call_id: str
    wave_idx: U32


class ToolCallFinished(
    KernelEvent, tag="tool_call_finished", frozen=True, kw_only=True, omit_defaults=True
):
    """A tool call finished with ``outcome``; ``wrote_state`` marks a state-changing call.

    ``result_preview`` and ``session_content`` default to ``""`` and are omitted when empty.
    """

    category: ClassVar[Category] = Category.SYSCALL
    turn_id: str
    call_id: str
    tool_name: str
    outcome: ToolOutcome
    duration_ms: U32
    wrote_state: bool
    result_preview: str = ""
    session_content: str = ""


class TurnApprovalResolved(KernelEvent, tag="turn_approval_resolved", frozen=True, kw_only=True):
    """A tool call's approval was resolved inside a turn.

    This is the turn loop's ``ApprovalResolved``, renamed (class and tag) because the
    supervisor family already has :class:`ApprovalResolved` with tag ``approval_resolved``.
    Turn-loop JSON written with ``"event_type": "approval_resolved"`` must be rewritten to
    ``turn_approval_resolved`` before decoding.
    """

    category: ClassVar[Category] = Category.SYSCALL
    turn_id: str
    call_id: str
    verdict: ApprovalVerdict


class CompactionArtifactCreated(
    KernelEvent, tag="compaction_artifact_created", frozen=True, kw_only=True
):
    """Messages ``replaced_range`` were compacted into artifact ``artifact_id``."""

    category: ClassVar[Category] = Category.MM
    turn_id: str
    artifact_id: str
    replaced_range: MessageRange
    summary_token_count: U32


class ContextOverflowRecovered(
    KernelEvent, tag="context_overflow_recovered", frozen=True, kw_only=True
):
    """The loop recovered from a context overflow with ``strategy``."""

    category: ClassVar[Category] = Category.MM
    turn_id: str
    step_idx: U32
    strategy: OverflowStrategy
    source_budget_cap: U32 | None = None


class SteerInjected(KernelEvent, tag="steer_injected", frozen=True, kw_only=True):
    """A user steering message was injected into the running turn."""

    category: ClassVar[Category] = Category.IPC
    turn_id: str
    step_idx: U32
    text: str


class ScratchpadReminderInjected(
    KernelEvent, tag="scratchpad_reminder_injected", frozen=True, kw_only=True
):
    """A reminder of scratchpad area ``area_path`` was injected into the context."""

    category: ClassVar[Category] = Category.MM
    turn_id: str
    step_idx: U32
    area_path: str


class ScratchpadSummaryInjected(
    KernelEvent, tag="scratchpad_summary_injected", frozen=True, kw_only=True
):
    """A scratchpad summary was injected at step ``at_step``."""

    category: ClassVar[Category] = Category.MM
    turn_id: str
    at_step: U32


class CycleBriefingInjected(KernelEvent, tag="cycle_briefing_injected", frozen=True, kw_only=True):
    """The briefing of context cycle ``cycle`` was injected."""

    category: ClassVar[Category] = Category.MM
    turn_id: str
    cycle: U32
    step_idx: U32


class TopicMemoryInjected(KernelEvent, tag="topic_memory_injected", frozen=True, kw_only=True):
    """Topic memory was injected; ``block_token_est`` defaults to 0 when absent."""

    category: ClassVar[Category] = Category.MM
    turn_id: str
    step_idx: U32
    block_token_est: U32 = 0


class MemoryPlaneQueried(KernelEvent, tag="memory_plane_queried", frozen=True, kw_only=True):
    """A memory plane ``layer`` was queried with ``query_key``.

    ``compiler_source`` defaults to ``""`` when absent.
    """

    category: ClassVar[Category] = Category.MM
    turn_id: str
    step_idx: U32
    layer: str
    query_key: str
    compiler_source: str = ""


class LayeredContextSeamInjected(
    KernelEvent, tag="layered_context_seam_injected", frozen=True, kw_only=True
):
    """A layered-context seam of ``level`` covering ``messages_covered`` messages was injected."""

    category: ClassVar[Category] = Category.MM
    turn_id: str
    step_idx: U32
    level: U32
    messages_covered: U32
    text_preview: str


class LoopGuardTriggered(KernelEvent, tag="loop_guard_triggered", frozen=True, kw_only=True):
    """The loop guard fired on tool call ``call_id``, for ``reason``."""

    category: ClassVar[Category] = Category.SYSCALL
    turn_id: str
    call_id: str
    reason: str


class CapacityCheckpoint(KernelEvent, tag="capacity_checkpoint", frozen=True, kw_only=True):
    """A capacity check: ``tokens_used`` of ``token_budget``, and the ``action`` taken.

    ``cooldown_blocked`` defaults to ``False`` when absent.
    """

    category: ClassVar[Category] = Category.SCHED
    turn_id: str
    step_idx: U32
    kind: CapacityCheckpointKind
    tokens_used: U32
    token_budget: U32
    action: CapacityAction
    cooldown_blocked: bool = False


class CycleAdvanced(KernelEvent, tag="cycle_advanced", frozen=True, kw_only=True):
    """The turn moved from context cycle ``from_cycle`` to ``to_cycle``, for ``reason``."""

    category: ClassVar[Category] = Category.SCHED
    turn_id: str
    from_cycle: U32
    to_cycle: U32
    reason: str


class StepLimitContinuation(KernelEvent, tag="step_limit_continuation", frozen=True, kw_only=True):
    """The turn continued past its step limit (long-horizon task continuation)."""

    category: ClassVar[Category] = Category.SCHED
    turn_id: str
    step_idx: U32
    lht_objective_injected: bool


class LoopGuardContinuation(KernelEvent, tag="loop_guard_continuation", frozen=True, kw_only=True):
    """The turn continued after a loop-guard intervention."""

    category: ClassVar[Category] = Category.SCHED
    turn_id: str
    step_idx: U32


class DeferredToolActivated(KernelEvent, tag="deferred_tool_activated", frozen=True, kw_only=True):
    """A deferred tool was activated (mounted) for the rest of the turn."""

    category: ClassVar[Category] = Category.SYSCALL
    turn_id: str
    step_idx: U32
    tool_name: str


TurnLoopEvent: TypeAlias = (
    SchemaVersion
    | TurnStarted
    | TurnEnded
    | ModelRequestIssued
    | ModelDelta
    | ModelMessage
    | ToolCallPlanned
    | ToolCallStarted
    | ToolCallFinished
    | TurnApprovalResolved
    | CompactionArtifactCreated
    | ContextOverflowRecovered
    | SteerInjected
    | ScratchpadReminderInjected
    | ScratchpadSummaryInjected
    | CycleBriefingInjected
    | TopicMemoryInjected
    | MemoryPlaneQueried
    | LayeredContextSeamInjected
    | LoopGuardTriggered
    | CapacityCheckpoint
    | CycleAdvanced
    | StepLimitContinuation
    | LoopGuardContinuation
    | DeferredToolActivated
)
"""Any turn-loop event, in the seed's variant order."""

TURN_LOOP_EVENT_TYPES: tuple[type[KernelEvent], ...] = get_args(TurnLoopEvent)
"""Every turn-loop event class, in the seed's variant order."""
