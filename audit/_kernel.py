"""The built-in mapping of the kernel catalogue (``eventbus.events``) to audit actions.

Supervisor events reproduce oxios' ``kernel_event_to_audit_action`` and ``extract_agent_id``
(seed 003) exactly: the same action variant and the same strings, formatted as Rust formats
them (``true``/``false``, floats without a trailing ``.0``, ``Some("x")``/``None`` for
``{:?}`` of an optional string). Turn-loop and OS observation events get the action that
fits, with stable ``detail`` strings.

Coverage is checked statically: each family's function is one ``match`` ending in
``typing.assert_never``, so a new catalogue class without a mapping is a type error.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Final, assert_never, cast

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
    KernelEvent,
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
    "family_mapper",
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


# -- supervisor events: seed 003, exactly -----------------------------------------------------


def _map_supervisor(event: SupervisorEvent) -> tuple[str, AuditAction]:
    match event:
        case AgentCreated(id=agent, name=name):
            return str(agent), AgentSpawn(task_type=name)
        case AgentStarted(id=agent):
            return str(agent), AgentSpawn(task_type="started")
        case AgentStopped(id=agent, success=success):
            return str(agent), AgentExit(reason="completed" if success else "stopped")
        case AgentFailed(id=agent, error=error):
            return str(agent), AgentExit(reason=error)
        case MessageReceived(from_=sender, content=content):
            return str(sender), Other(detail=f"message: {content}")
        case SeedCreated(seed_id=seed_id):
            return "system", Other(detail=f"seed_created:{seed_id}")
        case EvaluationComplete(seed_id=seed_id, passed=passed):
            return "system", Other(detail=f"evaluation:{seed_id}:{_b(passed)}")
        case PhaseStarted(session_id=session_id, phase=phase):
            return "system", Other(detail=f"phase_started:{session_id}:{phase}")
        case PhaseCompleted(session_id=session_id, phase=phase, result_summary=summary):
            return "system", Other(detail=f"phase_completed:{session_id}:{phase}:{summary}")
        case AgentOutput(agent_id=agent, output=output):
            return str(agent), Other(detail=f"agent_output:{output}")
        case ApprovalRequested(id=approval, action=action, resource=resource):
            return "system", Other(detail=f"approval_requested:{approval}:{action}:{resource}")
        case ApprovalResolved(id=approval, approved=approved):
            return "system", Other(detail=f"approval_resolved:{approval}:{_b(approved)}")
        case MemoryStored(id=memory, memory_type=memory_type):
            return "system", MemoryWrite(entry_id=f"{memory}:{memory_type}")
        case MemoryRecalled(query=query, count=count):
            return "system", MemoryRead(entry_id=f"query:{query}:{count}results")
        case AgentGroupCreated(group_id=group, agent_count=count):
            return "system", Other(detail=f"group_created:{group}:{count}agents")
        case AgentGroupMemberCompleted(group_id=group, agent_id=agent, success=success):
            return str(agent), Other(
                detail=f"group_member_completed:{group}:{agent}:{_b(success)}"
            )
        case EvolutionStarted(seed_id=seed_id, new_seed_id=new_seed_id, iteration=iteration):
            return "system", Other(detail=f"evolution:{seed_id}->{new_seed_id}:iter{iteration}")
        case EvolutionMaxReached(seed_id=seed_id, final_score=score, iterations=iterations):
            return "system", Other(
                detail=f"evolution_max:{seed_id}:score={_f64(score)}:iters={iterations}"
            )
        case ProjectCreated(name=name, source=source):
            return "system", Other(detail=f"project_created:{name}:{source}")
        case ProjectActivated(project_id=project, name=name):
            return f"project:{project}", Other(detail=f"project_activated:{name}")
        case ToolExecutionStarted(session_id=session_id, tool_name=tool):
            return f"session:{session_id}", Other(detail=f"tool_started:{tool}")
        case ToolExecutionFinished(session_id=session_id, tool_name=tool, is_error=is_error):
            outcome = "error" if is_error else "ok"
            return f"session:{session_id}", Other(detail=f"tool_finished:{tool}:{outcome}")
        case ToolExecutionProgress(
            session_id=session_id, tool_name=tool, tab_id=tab_id, context=context
        ):
            detail = f"tool_progress:{tool}"
            if tab_id is not None:
                detail += f":tab={tab_id}"
            kind = context.get("kind") if isinstance(context, dict) else None
            if isinstance(kind, str):
                detail += f":{kind}"
            return f"session:{session_id}", Other(detail=detail)
        case MemoryRecallUsed(session_id=session_id, query=query, count=count):
            return f"session:{session_id}", MemoryRead(entry_id=f"recall:{query}:{count}results")
        case TokenUsageUpdate(session_id=session_id, input_tokens=tin, output_tokens=tout):
            return f"session:{session_id}", Other(detail=f"tokens:in={tin}:out={tout}")
        case ReasoningFragment(session_id=session_id, source=source):
            return f"session:{session_id}", Other(detail=f"reasoning:{source}")
        case CalendarEventCreated(uid=uid, title=title):
            return "system", Other(detail=f"calendar:created:{uid}:{title}")
        case CalendarEventUpdated(uid=uid, title=title):
            return "system", Other(detail=f"calendar:updated:{uid}:{title}")
        case CalendarEventDeleted(uid=uid, title=title):
            return "system", Other(detail=f"calendar:deleted:{uid}:{title}")
        case EmailSent(subject=subject, message_id=message_id, template_name=template):
            return "system", Other(
                detail=f"email:sent:{subject} (msg={message_id}, tpl={_debug_opt_str(template)})"
            )
        case KnowledgePersisted(
            session_id=session_id, message_index=index, path=path, source=source
        ):
            return f"session:{session_id}", Other(
                detail=f"knowledge:persisted:{session_id}:{index}:{path}:{source}"
            )
        case KnowledgeRemoved(session_id=session_id, message_index=index):
            return f"session:{session_id}", Other(detail=f"knowledge:removed:{session_id}:{index}")
        case AskUserRequest(id=request, question=question):
            return "system", Other(detail=f"ask_user:{request}:{question}")
        case _:
            assert_never(event)


# -- turn-loop events: the actor is the turn ----------------------------------------------------


def _map_turn_loop(event: TurnLoopEvent, args_json: ArgsJson) -> tuple[str, AuditAction]:
    match event:
        case SchemaVersion(version=version):
            return "system", Other(detail=f"schema_version:{version}")
        case TurnStarted(turn_id=turn, mode=mode):
            return f"turn:{turn}", Other(detail=f"turn_started:{mode}")
        case TurnEnded(turn_id=turn, outcome=outcome, total_steps=steps):
            tag = type(outcome).__struct_config__.tag
            return f"turn:{turn}", Other(detail=f"turn_ended:{tag}:{steps}steps")
        case ModelRequestIssued(turn_id=turn, step_idx=step):
            return f"turn:{turn}", Other(detail=f"model_request:step{step}")
        case ModelDelta(turn_id=turn, step_idx=step, kind=kind):
            return f"turn:{turn}", Other(detail=f"model_delta:step{step}:{kind}")
        case ModelMessage(turn_id=turn, step_idx=step, usage=usage):
            return f"turn:{turn}", Other(
                detail=f"model_message:step{step}:in={usage.input_tokens}:out={usage.output_tokens}"
            )
        case ToolCallPlanned(turn_id=turn, tool_name=tool, input_json=raw):
            return f"turn:{turn}", ToolCall(tool=tool, args_json=args_json(raw))
        case ToolCallStarted(turn_id=turn, call_id=call, wave_idx=wave):
            return f"turn:{turn}", Other(detail=f"tool_call_started:{call}:wave{wave}")
        case ToolCallFinished(turn_id=turn, tool_name=tool, outcome=outcome):
            return f"turn:{turn}", ToolResult(
                tool=tool, success=isinstance(outcome, ToolOutcomeSuccess)
            )
        case TurnApprovalResolved(turn_id=turn, call_id=call, verdict=verdict):
            if verdict is ApprovalVerdict.REJECTED:
                return f"turn:{turn}", AccessDenied(permission=f"approval:{call}")
            return f"turn:{turn}", Other(detail=f"approval_resolved:{call}:{verdict}")
        case CompactionArtifactCreated(turn_id=turn, artifact_id=artifact):
            return f"turn:{turn}", MemoryWrite(entry_id=f"compaction:{artifact}")
        case ContextOverflowRecovered(turn_id=turn, step_idx=step, strategy=strategy):
            return f"turn:{turn}", Other(
                detail=f"context_overflow_recovered:step{step}:{strategy}"
            )
        case SteerInjected(turn_id=turn, step_idx=step):
            return f"turn:{turn}", Other(detail=f"steer_injected:step{step}")
        case ScratchpadReminderInjected(turn_id=turn, step_idx=step, area_path=area):
            return f"turn:{turn}", Other(detail=f"scratchpad_reminder_injected:step{step}:{area}")
        case ScratchpadSummaryInjected(turn_id=turn, at_step=step):
            return f"turn:{turn}", Other(detail=f"scratchpad_summary_injected:step{step}")
        case CycleBriefingInjected(turn_id=turn, cycle=cycle, step_idx=step):
            return f"turn:{turn}", Other(detail=f"cycle_briefing_injected:cycle{cycle}:step{step}")
        case TopicMemoryInjected(turn_id=turn, step_idx=step):
            return f"turn:{turn}", MemoryRead(entry_id=f"topic_memory:step{step}")
        case MemoryPlaneQueried(turn_id=turn, layer=layer, query_key=key):
            return f"turn:{turn}", MemoryRead(entry_id=f"{layer}:{key}")
        case LayeredContextSeamInjected(turn_id=turn, step_idx=step, level=level):
            return f"turn:{turn}", Other(
                detail=f"layered_context_seam_injected:step{step}:level{level}"
            )
        case LoopGuardTriggered(turn_id=turn, call_id=call, reason=reason):
            return f"turn:{turn}", Other(detail=f"loop_guard_triggered:{call}:{reason}")
        case CapacityCheckpoint(turn_id=turn, step_idx=step, kind=kind, action=action):
            tag = type(action).__struct_config__.tag
            return f"turn:{turn}", Other(detail=f"capacity_checkpoint:step{step}:{kind}:{tag}")
        case CycleAdvanced(turn_id=turn, from_cycle=old, to_cycle=new):
            return f"turn:{turn}", Other(detail=f"cycle_advanced:{old}->{new}")
        case StepLimitContinuation(turn_id=turn, step_idx=step):
            return f"turn:{turn}", Other(detail=f"step_limit_continuation:step{step}")
        case LoopGuardContinuation(turn_id=turn, step_idx=step):
            return f"turn:{turn}", Other(detail=f"loop_guard_continuation:step{step}")
        case DeferredToolActivated(turn_id=turn, tool_name=tool):
            return f"turn:{turn}", Other(detail=f"deferred_tool_activated:{tool}")
        case _:
            assert_never(event)


# -- OS observation events: the actor is the agent, else the session -------------------------


def _map_os(event: OsEvent) -> tuple[str, AuditAction]:
    actor = "system" if event.session_id is None else f"session:{event.session_id}"
    match event:
        case Compressed(tokens_before=before, tokens_after=after):
            return actor, Other(detail=f"compressed:{before}->{after}")
        case PageOut(handle=handle):
            return actor, MemoryWrite(entry_id=f"page_out:{handle}")
        case PageIn(handle=handle):
            return actor, MemoryRead(entry_id=f"page_in:{handle}")
        case PageInRequested(handle=handle):
            return actor, MemoryRead(entry_id=f"page_in_requested:{handle}")
        case Renewed(generation=generation):
            return actor, Other(detail=f"renewed:gen{generation}")
        case ContextRenewed(generation=generation):
            return actor, Other(detail=f"context_renewed:gen{generation}")
        case LargeResultSpooled(call_id=call, handle=handle):
            return actor, MemoryWrite(entry_id=f"spool:{call}:{handle}")
        case MemoryWritten(memory_id=memory):
            return actor, MemoryWrite(entry_id=memory)
        case MemoryQueried(query=query):
            return actor, MemoryRead(entry_id=f"query:{query}")
        case MemoryValidationFailed(memory_id=memory):
            return actor, Other(detail=f"memory_validation_failed:{memory}")
        case MemoryRetrievalResult(query=query, hits=hits):
            return actor, MemoryRead(entry_id=f"retrieval:{query}:{hits}hits")
        case ToolGated(tool_name=tool, call_id=call, blocked=blocked):
            if blocked:
                return actor, AccessDenied(permission=f"tool:{tool}")
            return actor, Other(detail=f"tool_gated:{tool}:{call}:allowed")
        case CapabilityChanged(capability_id=capability, change=change):
            return actor, ConfigChange(key=f"capability:{capability}:{change}")
        case BudgetExceeded(budget=budget):
            return actor, Other(detail=f"budget_exceeded:{budget}")
        case Suspended(reason=reason):
            return actor, Other(detail=f"suspended:{reason}")
        case Resumed(reason=reason):
            return actor, Other(detail=f"resumed:{reason}")
        case CheckpointTaken(checkpoint_id=checkpoint):
            return actor, Other(detail=f"checkpoint_taken:{checkpoint}")
        case Rollbacked(checkpoint_id=checkpoint):
            return actor, Other(detail=f"rollbacked:{checkpoint}")
        case MilestoneAdvanced(milestone_id=milestone):
            return actor, Other(detail=f"milestone_advanced:{milestone}")
        case MilestoneBlocked(milestone_id=milestone):
            return actor, Other(detail=f"milestone_blocked:{milestone}")
        case MilestoneEvidence(milestone_id=milestone):
            return actor, Other(detail=f"milestone_evidence:{milestone}")
        case AgentProcessChanged(
            agent_id=agent, role=role, state=state, result_termination=termination
        ):
            if termination is not None:
                return agent, AgentExit(reason=termination)
            return agent, AgentSpawn(task_type=f"{role}:{state}")
        case AgentSpawned(agent_id=agent, role=role):
            return agent, AgentSpawn(task_type=role or "spawned")
        case AgentPreempted(agent_id=agent, reason=reason):
            return agent, Other(detail=f"agent_preempted:{reason}")
        case WorkflowBatchSpawned(batch_id=batch, agent_ids=agents):
            return actor, Other(detail=f"workflow_batch_spawned:{batch}:{len(agents)}agents")
        case WorkflowCompleted(batch_id=batch, succeeded=succeeded, failed=failed):
            return actor, Other(
                detail=f"workflow_completed:{batch}:ok={succeeded}:failed={failed}"
            )
        case SignalDisposed(signal_id=signal, disposition=disposition):
            return actor, Other(detail=f"signal_disposed:{signal}:{disposition}")
        case _:
            assert_never(event)


def _default_args_json(raw: str) -> str:
    from ._mapper import AuditMapper

    return AuditMapper().args_json(raw)


def map_kernel_event(
    event: AnyKernelEvent, *, args_json: ArgsJson = _default_args_json
) -> tuple[str, AuditAction]:
    """Map a catalogue event to ``(actor, action)``.

    :param args_json: how ``ToolCallPlanned.input_json`` becomes ``ToolCall.args_json``
        (default: parsed, redacted and bounded by a default :class:`~audit.AuditMapper`).
    :raises TypeError: if ``event`` is not a catalogue event.
    """
    kind = type(event)
    if kind in _SUPERVISOR:
        return _map_supervisor(cast(SupervisorEvent, event))
    if kind in _TURN_LOOP:
        return _map_turn_loop(cast(TurnLoopEvent, event), args_json)
    if kind in _OS:
        return _map_os(cast(OsEvent, event))
    raise TypeError(f"event must be a catalogue event, got {kind.__name__}")


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


def family_mapper(
    event_type: type, args_json: ArgsJson
) -> Callable[[KernelEvent], tuple[str, AuditAction]] | None:
    """The mapping function for one catalogue class, or None for any other class."""
    if event_type in _SUPERVISOR:
        return cast(Callable[[KernelEvent], tuple[str, AuditAction]], _map_supervisor)
    if event_type in _TURN_LOOP:

        def turn_loop(event: KernelEvent) -> tuple[str, AuditAction]:
            return _map_turn_loop(cast(TurnLoopEvent, event), args_json)

        return turn_loop
    if event_type in _OS:
        return cast(Callable[[KernelEvent], tuple[str, AuditAction]], _map_os)
    return None
