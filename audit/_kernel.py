"""The built-in mapping of the kernel catalogue (``eventbus.events``) to audit actions.

Supervisor events reproduce oxios' ``kernel_event_to_audit_action`` and ``extract_agent_id``
(seed 003) exactly: the same action variant and the same strings, formatted as Rust formats
them (``true``/``false``, floats without a trailing ``.0``, ``Some("x")``/``None`` for
``{:?}`` of an optional string). Turn-loop and OS observation events get the action that
fits, with stable ``detail`` strings.

Each catalogue class has its own mapping function. Which function maps which class is said once
per family, in one ``match`` ending in ``typing.assert_never`` (``_supervisor_fn``,
``_turn_loop_fn``, ``_os_fn``), so a new catalogue class without a mapping is a type error;
the :class:`~audit.AuditMapper` runs that ``match`` once per class and then calls the class's
function directly.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, assert_never, cast
from uuid import UUID

from eventbus.events import (
    OS_EVENT_TYPES,
    SUPERVISOR_EVENT_TYPES,
    TURN_LOOP_EVENT_TYPES,
    AgentCreated,
    AgentFailed,
    AgentGroupCreated,
    AgentGroupMemberCompleted,
    AgentOutput,
    AgentPreempted,
    AgentProcessChanged,
    AgentSpawned,
    AgentStarted,
    AgentStopped,
    AnyKernelEvent,
    ApprovalRequested,
    ApprovalResolved,
    ApprovalVerdict,
    AskUserRequest,
    BudgetExceeded,
    CalendarEventCreated,
    CalendarEventDeleted,
    CalendarEventUpdated,
    CapabilityChanged,
    CapacityCheckpoint,
    CheckpointTaken,
    CompactionArtifactCreated,
    Compressed,
    ContextOverflowRecovered,
    ContextRenewed,
    CycleAdvanced,
    CycleBriefingInjected,
    DeferredToolActivated,
    EmailSent,
    EvaluationComplete,
    EvolutionMaxReached,
    EvolutionStarted,
    KnowledgePersisted,
    KnowledgeRemoved,
    LargeResultSpooled,
    LayeredContextSeamInjected,
    LoopGuardContinuation,
    LoopGuardTriggered,
    MemoryPlaneQueried,
    MemoryQueried,
    MemoryRecalled,
    MemoryRecallUsed,
    MemoryRetrievalResult,
    MemoryStored,
    MemoryValidationFailed,
    MemoryWritten,
    MessageReceived,
    MilestoneAdvanced,
    MilestoneBlocked,
    MilestoneEvidence,
    ModelDelta,
    ModelMessage,
    ModelRequestIssued,
    OsEvent,
    PageIn,
    PageInRequested,
    PageOut,
    PhaseCompleted,
    PhaseStarted,
    ProjectActivated,
    ProjectCreated,
    ReasoningFragment,
    Renewed,
    Resumed,
    Rollbacked,
    SchemaVersion,
    ScratchpadReminderInjected,
    ScratchpadSummaryInjected,
    SeedCreated,
    SignalDisposed,
    SteerInjected,
    StepLimitContinuation,
    SupervisorEvent,
    Suspended,
    TokenUsageUpdate,
    ToolCallFinished,
    ToolCallPlanned,
    ToolCallStarted,
    ToolExecutionFinished,
    ToolExecutionProgress,
    ToolExecutionStarted,
    ToolGated,
    ToolOutcomeSuccess,
    TopicMemoryInjected,
    TurnApprovalResolved,
    TurnEnded,
    TurnLoopEvent,
    TurnStarted,
    WorkflowBatchSpawned,
    WorkflowCompleted,
)

from ._actions import (
    AccessDenied,
    AgentExit,
    AgentSpawn,
    AuditAction,
    ConfigChange,
    MemoryRead,
    MemoryWrite,
    Other,
    ToolCall,
    ToolResult,
)

__all__ = [
    "extract_agent_id",
    "is_catalogue_class",
    "kernel_fn",
    "kernel_event_to_audit_action",
    "map_kernel_event",
]

ArgsJson = Callable[[str], str]
"""Turns a tool call's raw JSON arguments into what ``ToolCall.args_json`` stores."""

_SUPERVISOR: Final = frozenset(SUPERVISOR_EVENT_TYPES)
_TURN_LOOP: Final = frozenset(TURN_LOOP_EVENT_TYPES)
_OS: Final = frozenset(OS_EVENT_TYPES)


# -- Rust's formatting ------------------------------------------------------------------------


def _b(value: bool) -> str:
    """``{}`` of a Rust ``bool``."""
    return "true" if value else "false"


def _f64(value: float) -> str:
    """``{}`` of a Rust ``f64``: shortest round-trip digits, no exponent, no trailing ``.0``."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


def _debug_str(value: str) -> str:
    """``{:?}`` of a Rust ``&str``: quoted, with Rust's escapes."""
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif not ch.isprintable() and ch != " ":
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _debug_opt_str(value: str | None) -> str:
    """``{:?}`` of a Rust ``Option<String>``."""
    return "None" if value is None else f"Some({_debug_str(value)})"


# -- shared helpers -----------------------------------------------------------------------------

Mapped = tuple[str, AuditAction]
MapOne = Callable[[Any], Mapped]
"""The mapping function of one catalogue class: ``fn(event) -> (actor, action)``."""

_UUID_TEXT: dict[int, str] = {}
#: How many ``str(uuid)`` results :func:`_uid` keeps (cleared when full).
_UUID_TEXT_MAX: Final = 1024


def _uid(value: UUID) -> str:
    """``str(value)``, from a small bounded cache: ``UUID.__str__`` costs about 0.4 µs.

    Keyed by the UUID's ``int`` (a plain int hash, no Python ``__hash__``/``__eq__`` call);
    anything that is not exactly a :class:`uuid.UUID` (a subclass, or a value put in a UUID
    field without validation) is formatted with ``str()`` as before.
    """
    if type(value) is not UUID:
        return str(value)
    key = value.int
    text = _UUID_TEXT.get(key)
    if text is None:
        if len(_UUID_TEXT) >= _UUID_TEXT_MAX:
            _UUID_TEXT.clear()
        text = _UUID_TEXT[key] = str(value)
    return text


# -- supervisor events: seed 003, exactly -----------------------------------------------------
#
# One function per class; the mapper resolves it once per class (AuditMapper._first_event), so an
# event costs one call, not a walk down a long ``match``. Which function maps which class is
# said once, in _supervisor_fn's ``match``, whose ``assert_never`` makes a class without one a
# type error.

_STARTED: Final = AgentSpawn(task_type="started")
_COMPLETED: Final = AgentExit(reason="completed")
_STOPPED: Final = AgentExit(reason="stopped")


def _tool_progress(e: ToolExecutionProgress) -> Mapped:
    detail = f"tool_progress:{e.tool_name}"
    if e.tab_id is not None:
        detail += f":tab={e.tab_id}"
    context = e.context
    kind = context.get("kind") if isinstance(context, dict) else None
    if isinstance(kind, str):
        detail += f":{kind}"
    return f"session:{e.session_id}", Other(detail=detail)


def _tool_started(e: ToolExecutionStarted) -> Mapped:
    return f"session:{e.session_id}", Other(detail=f"tool_started:{e.tool_name}")


def _tool_finished(e: ToolExecutionFinished) -> Mapped:
    outcome = "error" if e.is_error else "ok"
    return f"session:{e.session_id}", Other(detail=f"tool_finished:{e.tool_name}:{outcome}")


def _token_usage(e: TokenUsageUpdate) -> Mapped:
    return f"session:{e.session_id}", Other(
        detail=f"tokens:in={e.input_tokens}:out={e.output_tokens}"
    )


def _reasoning(e: ReasoningFragment) -> Mapped:
    return f"session:{e.session_id}", Other(detail=f"reasoning:{e.source}")


def _agent_output(e: AgentOutput) -> Mapped:
    return _uid(e.agent_id), Other(detail=f"agent_output:{e.output}")


def _recall_used(e: MemoryRecallUsed) -> Mapped:
    return f"session:{e.session_id}", MemoryRead(entry_id=f"recall:{e.query}:{e.count}results")


def _message(e: MessageReceived) -> Mapped:
    return _uid(e.from_), Other(detail=f"message: {e.content}")


def _agent_created(e: AgentCreated) -> Mapped:
    return _uid(e.id), AgentSpawn(task_type=e.name)


def _agent_started(e: AgentStarted) -> Mapped:
    return _uid(e.id), _STARTED


def _agent_stopped(e: AgentStopped) -> Mapped:
    return _uid(e.id), _COMPLETED if e.success else _STOPPED


def _agent_failed(e: AgentFailed) -> Mapped:
    return _uid(e.id), AgentExit(reason=e.error)


def _seed_created(e: SeedCreated) -> Mapped:
    return "system", Other(detail=f"seed_created:{e.seed_id}")


def _evaluation(e: EvaluationComplete) -> Mapped:
    return "system", Other(detail=f"evaluation:{e.seed_id}:{_b(e.passed)}")


def _phase_started(e: PhaseStarted) -> Mapped:
    return "system", Other(detail=f"phase_started:{e.session_id}:{e.phase}")


def _phase_completed(e: PhaseCompleted) -> Mapped:
    return "system", Other(detail=f"phase_completed:{e.session_id}:{e.phase}:{e.result_summary}")


def _approval_requested(e: ApprovalRequested) -> Mapped:
    return "system", Other(detail=f"approval_requested:{e.id}:{e.action}:{e.resource}")


def _approval_resolved(e: ApprovalResolved) -> Mapped:
    return "system", Other(detail=f"approval_resolved:{e.id}:{_b(e.approved)}")


def _memory_stored(e: MemoryStored) -> Mapped:
    return "system", MemoryWrite(entry_id=f"{e.id}:{e.memory_type}")


def _memory_recalled(e: MemoryRecalled) -> Mapped:
    return "system", MemoryRead(entry_id=f"query:{e.query}:{e.count}results")


def _group_created(e: AgentGroupCreated) -> Mapped:
    return "system", Other(detail=f"group_created:{e.group_id}:{e.agent_count}agents")


def _group_member(e: AgentGroupMemberCompleted) -> Mapped:
    return _uid(e.agent_id), Other(
        detail=f"group_member_completed:{e.group_id}:{e.agent_id}:{_b(e.success)}"
    )


def _evolution_started(e: EvolutionStarted) -> Mapped:
    return "system", Other(detail=f"evolution:{e.seed_id}->{e.new_seed_id}:iter{e.iteration}")


def _evolution_max(e: EvolutionMaxReached) -> Mapped:
    return "system", Other(
        detail=f"evolution_max:{e.seed_id}:score={_f64(e.final_score)}:iters={e.iterations}"
    )


def _project_created(e: ProjectCreated) -> Mapped:
    return "system", Other(detail=f"project_created:{e.name}:{e.source}")


def _project_activated(e: ProjectActivated) -> Mapped:
    return f"project:{e.project_id}", Other(detail=f"project_activated:{e.name}")


def _calendar_created(e: CalendarEventCreated) -> Mapped:
    return "system", Other(detail=f"calendar:created:{e.uid}:{e.title}")


def _calendar_updated(e: CalendarEventUpdated) -> Mapped:
    return "system", Other(detail=f"calendar:updated:{e.uid}:{e.title}")


def _calendar_deleted(e: CalendarEventDeleted) -> Mapped:
    return "system", Other(detail=f"calendar:deleted:{e.uid}:{e.title}")


def _email_sent(e: EmailSent) -> Mapped:
    return "system", Other(
        detail=(
            f"email:sent:{e.subject} (msg={e.message_id}, tpl={_debug_opt_str(e.template_name)})"
        )
    )


def _knowledge_persisted(e: KnowledgePersisted) -> Mapped:
    return f"session:{e.session_id}", Other(
        detail=f"knowledge:persisted:{e.session_id}:{e.message_index}:{e.path}:{e.source}"
    )


def _knowledge_removed(e: KnowledgeRemoved) -> Mapped:
    return f"session:{e.session_id}", Other(
        detail=f"knowledge:removed:{e.session_id}:{e.message_index}"
    )


def _ask_user(e: AskUserRequest) -> Mapped:
    return "system", Other(detail=f"ask_user:{e.id}:{e.question}")


def _supervisor_fn(event: SupervisorEvent) -> MapOne:
    """The function that maps ``event``'s class (the same for every instance of it)."""
    match event:
        case ToolExecutionProgress():
            return _tool_progress
        case ToolExecutionStarted():
            return _tool_started
        case ToolExecutionFinished():
            return _tool_finished
        case TokenUsageUpdate():
            return _token_usage
        case ReasoningFragment():
            return _reasoning
        case AgentOutput():
            return _agent_output
        case MemoryRecallUsed():
            return _recall_used
        case MessageReceived():
            return _message
        case AgentCreated():
            return _agent_created
        case AgentStarted():
            return _agent_started
        case AgentStopped():
            return _agent_stopped
        case AgentFailed():
            return _agent_failed
        case SeedCreated():
            return _seed_created
        case EvaluationComplete():
            return _evaluation
        case PhaseStarted():
            return _phase_started
        case PhaseCompleted():
            return _phase_completed
        case ApprovalRequested():
            return _approval_requested
        case ApprovalResolved():
            return _approval_resolved
        case MemoryStored():
            return _memory_stored
        case MemoryRecalled():
            return _memory_recalled
        case AgentGroupCreated():
            return _group_created
        case AgentGroupMemberCompleted():
            return _group_member
        case EvolutionStarted():
            return _evolution_started
        case EvolutionMaxReached():
            return _evolution_max
        case ProjectCreated():
            return _project_created
        case ProjectActivated():
            return _project_activated
        case CalendarEventCreated():
            return _calendar_created
        case CalendarEventUpdated():
            return _calendar_updated
        case CalendarEventDeleted():
            return _calendar_deleted
        case EmailSent():
            return _email_sent
        case KnowledgePersisted():
            return _knowledge_persisted
        case KnowledgeRemoved():
            return _knowledge_removed
        case AskUserRequest():
            return _ask_user
        case _:
            assert_never(event)


# -- turn-loop events: the actor is the turn ----------------------------------------------------


def _schema_version(e: SchemaVersion) -> Mapped:
    return "system", Other(detail=f"schema_version:{e.version}")


def _turn_started(e: TurnStarted) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"turn_started:{e.mode}")


def _turn_ended(e: TurnEnded) -> Mapped:
    tag = type(e.outcome).__struct_config__.tag
    return f"turn:{e.turn_id}", Other(detail=f"turn_ended:{tag}:{e.total_steps}steps")


def _model_request(e: ModelRequestIssued) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"model_request:step{e.step_idx}")


def _model_delta(e: ModelDelta) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"model_delta:step{e.step_idx}:{e.kind}")


def _model_message(e: ModelMessage) -> Mapped:
    usage = e.usage
    return f"turn:{e.turn_id}", Other(
        detail=(
            f"model_message:step{e.step_idx}:in={usage.input_tokens}:out={usage.output_tokens}"
        )
    )


def _tool_call_planned(e: ToolCallPlanned, args_json: ArgsJson) -> Mapped:
    return f"turn:{e.turn_id}", ToolCall(tool=e.tool_name, args_json=args_json(e.input_json))


def _tool_call_started(e: ToolCallStarted) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"tool_call_started:{e.call_id}:wave{e.wave_idx}")


def _tool_call_finished(e: ToolCallFinished) -> Mapped:
    return f"turn:{e.turn_id}", ToolResult(
        tool=e.tool_name, success=isinstance(e.outcome, ToolOutcomeSuccess)
    )


def _turn_approval(e: TurnApprovalResolved) -> Mapped:
    if e.verdict is ApprovalVerdict.REJECTED:
        return f"turn:{e.turn_id}", AccessDenied(permission=f"approval:{e.call_id}")
    return f"turn:{e.turn_id}", Other(detail=f"approval_resolved:{e.call_id}:{e.verdict}")


def _compaction(e: CompactionArtifactCreated) -> Mapped:
    return f"turn:{e.turn_id}", MemoryWrite(entry_id=f"compaction:{e.artifact_id}")


def _overflow_recovered(e: ContextOverflowRecovered) -> Mapped:
    return f"turn:{e.turn_id}", Other(
        detail=f"context_overflow_recovered:step{e.step_idx}:{e.strategy}"
    )


def _steer(e: SteerInjected) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"steer_injected:step{e.step_idx}")


def _scratchpad_reminder(e: ScratchpadReminderInjected) -> Mapped:
    return f"turn:{e.turn_id}", Other(
        detail=f"scratchpad_reminder_injected:step{e.step_idx}:{e.area_path}"
    )


def _scratchpad_summary(e: ScratchpadSummaryInjected) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"scratchpad_summary_injected:step{e.at_step}")


def _cycle_briefing(e: CycleBriefingInjected) -> Mapped:
    return f"turn:{e.turn_id}", Other(
        detail=f"cycle_briefing_injected:cycle{e.cycle}:step{e.step_idx}"
    )


def _topic_memory(e: TopicMemoryInjected) -> Mapped:
    return f"turn:{e.turn_id}", MemoryRead(entry_id=f"topic_memory:step{e.step_idx}")


def _plane_queried(e: MemoryPlaneQueried) -> Mapped:
    return f"turn:{e.turn_id}", MemoryRead(entry_id=f"{e.layer}:{e.query_key}")


def _seam(e: LayeredContextSeamInjected) -> Mapped:
    return f"turn:{e.turn_id}", Other(
        detail=f"layered_context_seam_injected:step{e.step_idx}:level{e.level}"
    )


def _loop_guard(e: LoopGuardTriggered) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"loop_guard_triggered:{e.call_id}:{e.reason}")


def _capacity(e: CapacityCheckpoint) -> Mapped:
    tag = type(e.action).__struct_config__.tag
    return f"turn:{e.turn_id}", Other(
        detail=f"capacity_checkpoint:step{e.step_idx}:{e.kind}:{tag}"
    )


def _cycle_advanced(e: CycleAdvanced) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"cycle_advanced:{e.from_cycle}->{e.to_cycle}")


def _step_limit(e: StepLimitContinuation) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"step_limit_continuation:step{e.step_idx}")


def _loop_guard_continuation(e: LoopGuardContinuation) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"loop_guard_continuation:step{e.step_idx}")


def _deferred_tool(e: DeferredToolActivated) -> Mapped:
    return f"turn:{e.turn_id}", Other(detail=f"deferred_tool_activated:{e.tool_name}")


def _turn_loop_fn(event: TurnLoopEvent, args_json: ArgsJson) -> MapOne:
    """The function that maps ``event``'s class; ``ToolCallPlanned``'s uses ``args_json``."""
    match event:
        case SchemaVersion():
            return _schema_version
        case TurnStarted():
            return _turn_started
        case TurnEnded():
            return _turn_ended
        case ModelRequestIssued():
            return _model_request
        case ModelDelta():
            return _model_delta
        case ModelMessage():
            return _model_message
        case ToolCallPlanned():

            def tool_call_planned(e: ToolCallPlanned) -> Mapped:
                return _tool_call_planned(e, args_json)

            return tool_call_planned
        case ToolCallStarted():
            return _tool_call_started
        case ToolCallFinished():
            return _tool_call_finished
        case TurnApprovalResolved():
            return _turn_approval
        case CompactionArtifactCreated():
            return _compaction
        case ContextOverflowRecovered():
            return _overflow_recovered
        case SteerInjected():
            return _steer
        case ScratchpadReminderInjected():
            return _scratchpad_reminder
        case ScratchpadSummaryInjected():
            return _scratchpad_summary
        case CycleBriefingInjected():
            return _cycle_briefing
        case TopicMemoryInjected():
            return _topic_memory
        case MemoryPlaneQueried():
            return _plane_queried
        case LayeredContextSeamInjected():
            return _seam
        case LoopGuardTriggered():
            return _loop_guard
        case CapacityCheckpoint():
            return _capacity
        case CycleAdvanced():
            return _cycle_advanced
        case StepLimitContinuation():
            return _step_limit
        case LoopGuardContinuation():
            return _loop_guard_continuation
        case DeferredToolActivated():
            return _deferred_tool
        case _:
            assert_never(event)


# -- OS observation events: the actor is the agent, else the session -------------------------


def _os_actor(e: OsEvent) -> str:
    session = e.session_id
    return "system" if session is None else f"session:{session}"


def _compressed(e: Compressed) -> Mapped:
    return _os_actor(e), Other(detail=f"compressed:{e.tokens_before}->{e.tokens_after}")


def _page_out(e: PageOut) -> Mapped:
    return _os_actor(e), MemoryWrite(entry_id=f"page_out:{e.handle}")


def _page_in(e: PageIn) -> Mapped:
    return _os_actor(e), MemoryRead(entry_id=f"page_in:{e.handle}")


def _page_in_requested(e: PageInRequested) -> Mapped:
    return _os_actor(e), MemoryRead(entry_id=f"page_in_requested:{e.handle}")


def _renewed(e: Renewed) -> Mapped:
    return _os_actor(e), Other(detail=f"renewed:gen{e.generation}")


def _context_renewed(e: ContextRenewed) -> Mapped:
    return _os_actor(e), Other(detail=f"context_renewed:gen{e.generation}")


def _spooled(e: LargeResultSpooled) -> Mapped:
    return _os_actor(e), MemoryWrite(entry_id=f"spool:{e.call_id}:{e.handle}")


def _memory_written(e: MemoryWritten) -> Mapped:
    return _os_actor(e), MemoryWrite(entry_id=e.memory_id)


def _memory_queried(e: MemoryQueried) -> Mapped:
    return _os_actor(e), MemoryRead(entry_id=f"query:{e.query}")


def _validation_failed(e: MemoryValidationFailed) -> Mapped:
    return _os_actor(e), Other(detail=f"memory_validation_failed:{e.memory_id}")


def _retrieval(e: MemoryRetrievalResult) -> Mapped:
    return _os_actor(e), MemoryRead(entry_id=f"retrieval:{e.query}:{e.hits}hits")


def _tool_gated(e: ToolGated) -> Mapped:
    if e.blocked:
        return _os_actor(e), AccessDenied(permission=f"tool:{e.tool_name}")
    return _os_actor(e), Other(detail=f"tool_gated:{e.tool_name}:{e.call_id}:allowed")


def _capability(e: CapabilityChanged) -> Mapped:
    return _os_actor(e), ConfigChange(key=f"capability:{e.capability_id}:{e.change}")


def _budget(e: BudgetExceeded) -> Mapped:
    return _os_actor(e), Other(detail=f"budget_exceeded:{e.budget}")


def _suspended(e: Suspended) -> Mapped:
    return _os_actor(e), Other(detail=f"suspended:{e.reason}")


def _resumed(e: Resumed) -> Mapped:
    return _os_actor(e), Other(detail=f"resumed:{e.reason}")


def _checkpoint(e: CheckpointTaken) -> Mapped:
    return _os_actor(e), Other(detail=f"checkpoint_taken:{e.checkpoint_id}")


def _rollbacked(e: Rollbacked) -> Mapped:
    return _os_actor(e), Other(detail=f"rollbacked:{e.checkpoint_id}")


def _milestone_advanced(e: MilestoneAdvanced) -> Mapped:
    return _os_actor(e), Other(detail=f"milestone_advanced:{e.milestone_id}")


def _milestone_blocked(e: MilestoneBlocked) -> Mapped:
    return _os_actor(e), Other(detail=f"milestone_blocked:{e.milestone_id}")


def _milestone_evidence(e: MilestoneEvidence) -> Mapped:
    return _os_actor(e), Other(detail=f"milestone_evidence:{e.milestone_id}")


def _process_changed(e: AgentProcessChanged) -> Mapped:
    if e.result_termination is not None:
        return e.agent_id, AgentExit(reason=e.result_termination)
    return e.agent_id, AgentSpawn(task_type=f"{e.role}:{e.state}")


def _agent_spawned(e: AgentSpawned) -> Mapped:
    return e.agent_id, AgentSpawn(task_type=e.role or "spawned")


def _agent_preempted(e: AgentPreempted) -> Mapped:
    return e.agent_id, Other(detail=f"agent_preempted:{e.reason}")


def _batch_spawned(e: WorkflowBatchSpawned) -> Mapped:
    return _os_actor(e), Other(
        detail=f"workflow_batch_spawned:{e.batch_id}:{len(e.agent_ids)}agents"
    )


def _workflow_completed(e: WorkflowCompleted) -> Mapped:
    return _os_actor(e), Other(
        detail=f"workflow_completed:{e.batch_id}:ok={e.succeeded}:failed={e.failed}"
    )


def _signal_disposed(e: SignalDisposed) -> Mapped:
    return _os_actor(e), Other(detail=f"signal_disposed:{e.signal_id}:{e.disposition}")


def _os_fn(event: OsEvent) -> MapOne:
    """The function that maps ``event``'s class (the same for every instance of it)."""
    match event:
        case Compressed():
            return _compressed
        case PageOut():
            return _page_out
        case PageIn():
            return _page_in
        case PageInRequested():
            return _page_in_requested
        case Renewed():
            return _renewed
        case ContextRenewed():
            return _context_renewed
        case LargeResultSpooled():
            return _spooled
        case MemoryWritten():
            return _memory_written
        case MemoryQueried():
            return _memory_queried
        case MemoryValidationFailed():
            return _validation_failed
        case MemoryRetrievalResult():
            return _retrieval
        case ToolGated():
            return _tool_gated
        case CapabilityChanged():
            return _capability
        case BudgetExceeded():
            return _budget
        case Suspended():
            return _suspended
        case Resumed():
            return _resumed
        case CheckpointTaken():
            return _checkpoint
        case Rollbacked():
            return _rollbacked
        case MilestoneAdvanced():
            return _milestone_advanced
        case MilestoneBlocked():
            return _milestone_blocked
        case MilestoneEvidence():
            return _milestone_evidence
        case AgentProcessChanged():
            return _process_changed
        case AgentSpawned():
            return _agent_spawned
        case AgentPreempted():
            return _agent_preempted
        case WorkflowBatchSpawned():
            return _batch_spawned
        case WorkflowCompleted():
            return _workflow_completed
        case SignalDisposed():
            return _signal_disposed
        case _:
            assert_never(event)


def _default_args_json(raw: str) -> str:
    from ._mapper import AuditMapper

    return AuditMapper().args_json(raw)


def kernel_fn(event: object, args_json: ArgsJson) -> MapOne | None:
    """The function that maps ``event``'s class if it is a catalogue class, else ``None``.

    The choice depends on the event's exact class only, never on its field values, so a
    caller may resolve it from the first instance of a class and keep it for that class.
    """
    kind = type(event)
    if kind in _SUPERVISOR:
        return _supervisor_fn(cast(SupervisorEvent, event))
    if kind in _TURN_LOOP:
        return _turn_loop_fn(cast(TurnLoopEvent, event), args_json)
    if kind in _OS:
        return _os_fn(cast(OsEvent, event))
    return None


def map_kernel_event(
    event: AnyKernelEvent, *, args_json: ArgsJson = _default_args_json
) -> tuple[str, AuditAction]:
    """Map a catalogue event to ``(actor, action)``.

    :param args_json: how ``ToolCallPlanned.input_json`` becomes ``ToolCall.args_json``
        (default: parsed, redacted and bounded by a default :class:`~audit.AuditMapper`).
    :raises TypeError: if ``event`` is not a catalogue event.
    """
    fn = kernel_fn(event, args_json)
    if fn is None:
        raise TypeError(f"event must be a catalogue event, got {type(event).__name__}")
    return fn(event)


def kernel_event_to_audit_action(event: AnyKernelEvent) -> AuditAction:
    """The audit action of a catalogue event (oxios' function of the same name, extended).

    :raises TypeError: if ``event`` is not a catalogue event.
    """
    return map_kernel_event(event)[1]


def extract_agent_id(event: AnyKernelEvent) -> str:
    """The actor of a catalogue event: the agent's id, ``project:<id>``, ``session:<id>``,
    ``turn:<id>`` for turn-loop events, else ``"system"`` (oxios' function, extended).

    :raises TypeError: if ``event`` is not a catalogue event.
    """
    return map_kernel_event(event)[0]


def is_catalogue_class(event_type: type) -> bool:
    """Whether ``event_type`` is exactly one of the catalogue's classes."""
    return event_type in _SUPERVISOR or event_type in _TURN_LOOP or event_type in _OS
