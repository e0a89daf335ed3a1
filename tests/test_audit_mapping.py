"""The mapping: seed 003's strings for supervisor events, the whole catalogue, custom mappers."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, get_args

import msgspec
import pytest
from test_events_samples import sample_event

from audit import (
    AccessDenied,
    AgentExit,
    AgentSpawn,
    AuditAction,
    AuditMapper,
    ConfigChange,
    MemoryRead,
    MemoryWrite,
    Other,
    ToolCall,
    ToolResult,
    extract_agent_id,
    kernel_event_to_audit_action,
    map_kernel_event,
)
from audit._actions import ACTION_TYPES
from eventbus.events import (
    ALL_EVENT_TYPES,
    OS_EVENT_TYPES,
    SUPERVISOR_EVENT_TYPES,
    AgentCreated,
    AgentFailed,
    AgentGroupCreated,
    AgentGroupMemberCompleted,
    AgentOutput,
    AgentProcessChanged,
    AgentSpawned,
    AgentStarted,
    AgentStopped,
    AnyKernelEvent,
    ApprovalRequested,
    ApprovalResolved,
    ApprovalVerdict,
    AskUserRequest,
    CalendarEventCreated,
    CalendarEventDeleted,
    CalendarEventUpdated,
    CapabilityChanged,
    Category,
    EmailSent,
    EvaluationComplete,
    EvolutionMaxReached,
    EvolutionStarted,
    KernelEvent,
    KnowledgePersisted,
    KnowledgeRemoved,
    MemoryQueried,
    MemoryRecalled,
    MemoryRecallUsed,
    MemoryStored,
    MemoryWritten,
    MessageReceived,
    PhaseCompleted,
    PhaseStarted,
    PolicyDecision,
    ProjectActivated,
    ProjectCreated,
    ReasoningFragment,
    SeedCreated,
    TokenUsageUpdate,
    ToolCallFinished,
    ToolCallPlanned,
    ToolExecutionFinished,
    ToolExecutionProgress,
    ToolExecutionStarted,
    ToolGated,
    ToolOutcomeBlocked,
    ToolOutcomeSuccess,
    TurnApprovalResolved,
)

A = uuid.UUID("11111111-2222-4333-8444-555555555555")
B = uuid.UUID("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")

# (event, actor, action): seed 003's kernel_event_to_audit_action and extract_agent_id.
SUPERVISOR_TABLE: list[tuple[KernelEvent, str, AuditAction]] = [
    (AgentCreated(id=A, name="worker"), str(A), AgentSpawn(task_type="worker")),
    (AgentStarted(id=A), str(A), AgentSpawn(task_type="started")),
    (AgentStopped(id=A, success=True), str(A), AgentExit(reason="completed")),
    (AgentStopped(id=A), str(A), AgentExit(reason="stopped")),
    (AgentFailed(id=A, error="boom"), str(A), AgentExit(reason="boom")),
    (MessageReceived(from_=A, content="hi there"), str(A), Other(detail="message: hi there")),
    (SeedCreated(seed_id=B), "system", Other(detail=f"seed_created:{B}")),
    (
        EvaluationComplete(seed_id=B, passed=True),
        "system",
        Other(detail=f"evaluation:{B}:true"),
    ),
    (
        EvaluationComplete(seed_id=B, passed=False),
        "system",
        Other(detail=f"evaluation:{B}:false"),
    ),
    (
        PhaseStarted(session_id="s1", phase="Interview"),
        "system",
        Other(detail="phase_started:s1:Interview"),
    ),
    (
        PhaseCompleted(session_id="s1", phase="Execute", result_summary="done"),
        "system",
        Other(detail="phase_completed:s1:Execute:done"),
    ),
    (
        AgentOutput(session_id="s1", agent_id=A, output="out"),
        str(A),
        Other(detail="agent_output:out"),
    ),
    (
        ApprovalRequested(
            id=B, tool_name="bash", action="exec", resource="/bin/rm", reason="r", session_id="s"
        ),
        "system",
        Other(detail=f"approval_requested:{B}:exec:/bin/rm"),
    ),
    (
        ApprovalResolved(id=B, approved=False),
        "system",
        Other(detail=f"approval_resolved:{B}:false"),
    ),
    (
        MemoryStored(id="m1", memory_type="episodic", source="chat"),
        "system",
        MemoryWrite(entry_id="m1:episodic"),
    ),
    (
        MemoryRecalled(query="rust", count=3),
        "system",
        MemoryRead(entry_id="query:rust:3results"),
    ),
    (
        AgentGroupCreated(group_id=B, agent_count=4),
        "system",
        Other(detail=f"group_created:{B}:4agents"),
    ),
    (
        AgentGroupMemberCompleted(group_id=B, agent_id=A, success=True),
        str(A),
        Other(detail=f"group_member_completed:{B}:{A}:true"),
    ),
    (
        ProjectCreated(project_id=A, name="p", source="git"),
        "system",
        Other(detail="project_created:p:git"),
    ),
    (
        ProjectActivated(project_id=A, name="p"),
        f"project:{A}",
        Other(detail="project_activated:p"),
    ),
    (
        EvolutionStarted(seed_id=A, new_seed_id=B, iteration=2),
        "system",
        Other(detail=f"evolution:{A}->{B}:iter2"),
    ),
    (
        EvolutionMaxReached(seed_id=A, final_score=0.75, iterations=9),
        "system",
        Other(detail=f"evolution_max:{A}:score=0.75:iters=9"),
    ),
    (
        ToolExecutionStarted(
            session_id="abc-123", tool_name="bash", tool_call_id="c1", tool_args=None
        ),
        "session:abc-123",
        Other(detail="tool_started:bash"),
    ),
    (
        ToolExecutionFinished(
            session_id="s1",
            tool_call_id="c1",
            tool_name="read_file",
            duration_ms=234,
            is_error=False,
            output_summary="fn main() {}",
        ),
        "session:s1",
        Other(detail="tool_finished:read_file:ok"),
    ),
    (
        ToolExecutionFinished(
            session_id="s1",
            tool_call_id="c1",
            tool_name="read_file",
            duration_ms=1,
            is_error=True,
            output_summary="",
        ),
        "session:s1",
        Other(detail="tool_finished:read_file:error"),
    ),
    (
        ToolExecutionProgress(
            session_id="s1", tool_call_id="c1", tool_name="browse", progress="navigating"
        ),
        "session:s1",
        Other(detail="tool_progress:browse"),
    ),
    (
        ToolExecutionProgress(
            session_id="s1",
            tool_call_id="c1",
            tool_name="browse",
            progress="navigating",
            tab_id=B,
            context={"kind": "navigate", "url": "https://example.com"},
        ),
        "session:s1",
        Other(detail=f"tool_progress:browse:tab={B}:navigate"),
    ),
    (
        ToolExecutionProgress(
            session_id="s1",
            tool_call_id="c1",
            tool_name="browse",
            progress="p",
            context={"kind": 3},
        ),
        "session:s1",
        Other(detail="tool_progress:browse"),
    ),
    (
        MemoryRecallUsed(session_id="s1", query="rust errors", count=3, source="warm"),
        "session:s1",
        MemoryRead(entry_id="recall:rust errors:3results"),
    ),
    (
        TokenUsageUpdate(session_id="s1", input_tokens=1234, output_tokens=567),
        "session:s1",
        Other(detail="tokens:in=1234:out=567"),
    ),
    (
        ReasoningFragment(session_id="s1", content="compaction done", source="compaction"),
        "session:s1",
        Other(detail="reasoning:compaction"),
    ),
    (
        CalendarEventCreated(uid="u1", title="Standup", start="09:00", end="09:15"),
        "system",
        Other(detail="calendar:created:u1:Standup"),
    ),
    (
        CalendarEventUpdated(uid="u1", title="Standup"),
        "system",
        Other(detail="calendar:updated:u1:Standup"),
    ),
    (
        CalendarEventDeleted(uid="u1", title="Standup"),
        "system",
        Other(detail="calendar:deleted:u1:Standup"),
    ),
    (
        EmailSent(subject="Hi", message_id="m-1", template_name="welcome"),
        "system",
        Other(detail='email:sent:Hi (msg=m-1, tpl=Some("welcome"))'),
    ),
    (
        EmailSent(subject="Hi", message_id="m-1"),
        "system",
        Other(detail="email:sent:Hi (msg=m-1, tpl=None)"),
    ),
    (
        KnowledgePersisted(session_id="s1", message_index=7, path="notes/a.md", source="user"),
        "session:s1",
        Other(detail="knowledge:persisted:s1:7:notes/a.md:user"),
    ),
    (
        KnowledgeRemoved(session_id="s1", message_index=7),
        "session:s1",
        Other(detail="knowledge:removed:s1:7"),
    ),
    (
        AskUserRequest(id="q1", question="Proceed?", options=("yes", "no")),
        "system",
        Other(detail="ask_user:q1:Proceed?"),
    ),
]


def test_the_table_covers_every_supervisor_event() -> None:
    assert {type(e) for e, _, _ in SUPERVISOR_TABLE} == set(SUPERVISOR_EVENT_TYPES)


@pytest.mark.parametrize(
    ("event", "actor", "action"), SUPERVISOR_TABLE, ids=lambda v: type(v).__name__
)
def test_supervisor_events_map_as_seed_003(
    event: KernelEvent, actor: str, action: AuditAction
) -> None:
    assert map_kernel_event(event) == (actor, action)  # type: ignore[arg-type]
    assert kernel_event_to_audit_action(event) == action  # type: ignore[arg-type]
    assert extract_agent_id(event) == actor  # type: ignore[arg-type]
    assert AuditMapper().map(event, "kind") == (actor, action, True)


@pytest.mark.parametrize(
    ("score", "text"),
    [(1.0, "1"), (0.1, "0.1"), (-0.0, "-0"), (1e20, "100000000000000000000"), (1e-7, "0.0000001")],
)
def test_floats_are_formatted_as_rust_displays_them(score: float, text: str) -> None:
    event = EvolutionMaxReached(seed_id=A, final_score=score, iterations=1)
    assert kernel_event_to_audit_action(event) == Other(
        detail=f"evolution_max:{A}:score={text}:iters=1"
    )


def test_optional_strings_are_formatted_as_rust_debugs_them() -> None:
    event = EmailSent(subject="s", message_id="m", template_name='a"b\\c\nd\x01')
    assert kernel_event_to_audit_action(event) == Other(
        detail='email:sent:s (msg=m, tpl=Some("a\\"b\\\\c\\nd\\u{1}"))'
    )


@pytest.mark.parametrize("cls", ALL_EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_catalogue_class_is_mapped(cls: type[KernelEvent]) -> None:
    event = sample_event(cls)
    actor, action, mapped = AuditMapper().map(event, "kind")
    assert mapped
    assert type(action) in ACTION_TYPES
    assert isinstance(actor, str)
    assert actor
    assert (actor, action) == map_kernel_event(event)  # type: ignore[arg-type]
    if cls in OS_EVENT_TYPES:
        session = getattr(event, "session_id", None)
        assert actor in (getattr(event, "agent_id", None), f"session:{session}")
    elif cls not in SUPERVISOR_EVENT_TYPES:
        turn = getattr(event, "turn_id", None)
        assert actor == ("system" if turn is None else f"turn:{turn}")


def test_turn_loop_tool_calls_map_to_tool_call_and_tool_result() -> None:
    decision = PolicyDecision(approval_required=False, parallel_eligible=True, read_only=True)
    planned = ToolCallPlanned(
        turn_id="t1",
        step_idx=0,
        call_id="c1",
        tool_name="http",
        input_json='{"url": "https://x", "headers": {"Authorization": "Bearer sk-1"}}',
        decision=decision,
    )
    assert map_kernel_event(planned) == (
        "turn:t1",
        ToolCall(
            tool="http",
            args_json='{"headers":{"Authorization":"[REDACTED]"},"url":"https://x"}',
        ),
    )

    def finished(outcome: Any) -> KernelEvent:
        return ToolCallFinished(
            turn_id="t1",
            call_id="c1",
            tool_name="http",
            outcome=outcome,
            duration_ms=5,
            wrote_state=False,
        )

    ok = ToolResult(tool="http", success=True)
    failed = ToolResult(tool="http", success=False)
    assert map_kernel_event(finished(ToolOutcomeSuccess())) == ("turn:t1", ok)  # type: ignore[arg-type]
    assert map_kernel_event(finished(ToolOutcomeBlocked(reason="no"))) == ("turn:t1", failed)  # type: ignore[arg-type]


def test_unparsable_tool_arguments_are_redacted_when_they_look_secret() -> None:
    mapper = AuditMapper()
    assert mapper.args_json("not json password=hunter2") == (
        "[REDACTED] (unparsable arguments, 25 bytes)"
    )
    assert mapper.args_json("not json at all") == "not json at all"


def test_rejected_turn_approval_is_access_denied() -> None:
    rejected = TurnApprovalResolved(turn_id="t", call_id="c9", verdict=ApprovalVerdict.REJECTED)
    approved = TurnApprovalResolved(turn_id="t", call_id="c9", verdict=ApprovalVerdict.APPROVED)
    assert kernel_event_to_audit_action(rejected) == AccessDenied(permission="approval:c9")
    assert kernel_event_to_audit_action(approved) == Other(detail="approval_resolved:c9:approved")


def test_os_events_map_to_the_action_that_fits() -> None:
    blocked = ToolGated(turn=1, session_id="s", tool_name="bash", call_id="c", blocked=True)
    allowed = ToolGated(turn=1, tool_name="bash", call_id="c", blocked=False)
    assert map_kernel_event(blocked) == ("session:s", AccessDenied(permission="tool:bash"))
    assert map_kernel_event(allowed) == ("system", Other(detail="tool_gated:bash:c:allowed"))
    assert map_kernel_event(MemoryWritten(turn=1, memory_id="m7")) == (
        "system",
        MemoryWrite(entry_id="m7"),
    )
    assert map_kernel_event(MemoryQueried(turn=1, query="q")) == (
        "system",
        MemoryRead(entry_id="query:q"),
    )
    assert map_kernel_event(AgentSpawned(turn=1, agent_id="a7", parent_session_id="s")) == (
        "a7",
        AgentSpawn(task_type="spawned"),
    )

    def process(termination: str | None) -> AgentProcessChanged:
        return AgentProcessChanged(
            turn=1,
            agent_id="a7",
            parent_session_id="s",
            role="coder",
            isolation="none",
            context_inheritance="full",
            state="joined" if termination else "running",
            result_termination=termination,
        )

    assert map_kernel_event(process(None)) == ("a7", AgentSpawn(task_type="coder:running"))
    assert map_kernel_event(process("completed")) == ("a7", AgentExit(reason="completed"))
    assert map_kernel_event(CapabilityChanged(turn=1, capability_id="net", change="mounted")) == (
        "system",
        ConfigChange(key="capability:net:mounted"),
    )


def test_map_kernel_event_rejects_other_events() -> None:
    class Mine(msgspec.Struct):
        x: int

    with pytest.raises(TypeError, match=r"^event must be a catalogue event, got Mine$"):
        map_kernel_event(Mine(1))  # type: ignore[arg-type]


# -- custom mappers ---------------------------------------------------------------------------


class Deployed(KernelEvent, tag="deployed", frozen=True, kw_only=True):
    category: ClassVar[Category] = Category.SYSCALL
    service: str
    by: str


class CanaryDeployed(Deployed, tag="canary_deployed", frozen=True, kw_only=True):
    percent: int = 5


def test_a_registered_function_maps_its_events() -> None:
    mapper = AuditMapper()
    mapper.register(Deployed, lambda e: (e.by, Other(detail=f"deployed:{e.service}")))
    assert mapper.map(Deployed(service="api", by="alice"), "deployed") == (
        "alice",
        Other(detail="deployed:api"),
        True,
    )


def test_the_decorator_form_registers_and_returns_the_function() -> None:
    mapper = AuditMapper()

    @mapper.register(Deployed)
    def deployed(event: Deployed) -> tuple[str, AuditAction]:
        return event.by, Other(detail="d")

    assert deployed(Deployed(service="x", by="bob")) == ("bob", Other(detail="d"))
    assert mapper.map(Deployed(service="x", by="bob"), "deployed")[0] == "bob"


def test_subclasses_use_the_nearest_registered_base() -> None:
    mapper = AuditMapper()
    mapper.register(Deployed, lambda e: (e.by, Other(detail="base")))
    assert mapper.map(CanaryDeployed(service="x", by="c"), "canary_deployed") == (
        "c",
        Other(detail="base"),
        True,
    )
    mapper.register(CanaryDeployed, lambda e: (e.by, Other(detail=f"canary:{e.percent}")))
    assert mapper.map(CanaryDeployed(service="x", by="c"), "canary_deployed")[1] == Other(
        detail="canary:5"
    )


def test_registrations_are_per_mapper() -> None:
    one, two = AuditMapper(), AuditMapper()
    one.register(Deployed, lambda e: (e.by, Other(detail="one")))
    assert two.map(Deployed(service="x", by="c"), "deployed") == (
        "system",
        Other(detail="deployed"),
        False,
    )


def test_a_registration_overrides_the_builtin_mapping() -> None:
    mapper = AuditMapper()
    mapper.register(AgentStarted, lambda e: ("me", Other(detail="custom")))
    assert mapper.map(AgentStarted(id=A), "agent_started") == ("me", Other(detail="custom"), True)


def test_unknown_events_map_to_other_with_their_kind() -> None:
    assert AuditMapper().map(Deployed(service="x", by="c"), "deployed") == (
        "system",
        Other(detail="deployed"),
        False,
    )
    assert AuditMapper(builtin=False).map(AgentStarted(id=A), "agent_started") == (
        "system",
        Other(detail="agent_started"),
        False,
    )


def test_register_rejects_bad_arguments() -> None:
    mapper = AuditMapper()
    mapper.register(Deployed, lambda e: ("a", Other(detail="x")))
    with pytest.raises(ValueError, match=r"^event_type Deployed is already registered$"):
        mapper.register(Deployed, lambda e: ("a", Other(detail="x")))
    with pytest.raises(TypeError, match=r"^event_type must be a class, got 'x'$"):
        mapper.register("x", lambda e: ("a", Other(detail="x")))  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^fn must be callable, got int$"):
        mapper.register(CanaryDeployed, 3)  # type: ignore[call-overload]


def test_mapper_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match=r"^max_resource_bytes must be >= 64, got 10$"):
        AuditMapper(max_resource_bytes=10)
    with pytest.raises(TypeError, match=r"^redact must be callable or None, got str$"):
        AuditMapper(redact="no")  # type: ignore[arg-type]


def test_category_labels_come_from_the_event_class() -> None:
    mapper = AuditMapper()
    assert mapper.category_of(AgentStarted) == ("proc", "sched")
    assert mapper.category_of(ToolGated) == ("syscall", "syscall")
    assert mapper.category_of(MemoryWritten) == ("mm", "mm")

    class Plain(msgspec.Struct):
        pass

    assert mapper.category_of(Plain) == (None, None)


# -- resolved once per class ----------------------------------------------------------------------


def test_the_catalogue_union_and_the_class_list_agree() -> None:
    # The mapping functions are chosen by a match over AnyKernelEvent (checked exhaustive by
    # mypy); this pins that the union is the whole catalogue the mapper recognises.
    assert set(get_args(AnyKernelEvent)) == set(ALL_EVENT_TYPES)


@pytest.mark.parametrize("cls", ALL_EVENT_TYPES, ids=lambda c: c.__name__)
def test_each_catalogue_class_gets_its_own_function_once(cls: type[KernelEvent]) -> None:
    mapper = AuditMapper()
    event = sample_event(cls)
    mapper.category_of(cls)  # resolves the class without mapping an event
    info = mapper._resolved[cls]
    stub = info.fn
    assert info.trusted
    first = mapper.map(event, "kind")
    resolved = info.fn
    assert resolved is not stub  # the first event put the class's own function in place
    assert mapper.map(event, "kind") == first
    assert info.fn is resolved  # looked up once, on the first event
    assert resolved is not None
    assert resolved(event) == first[:2]


def test_a_class_function_kept_by_the_mapper_maps_every_instance_by_its_fields() -> None:
    mapper = AuditMapper()
    seen = [
        mapper.map(AgentStopped(id=A, success=True), "k"),
        mapper.map(AgentStopped(id=B, success=False), "k"),
        mapper.map(AgentStarted(id=A), "k"),
        mapper.map(AgentStarted(id=B), "k"),
    ]
    assert seen == [
        (str(A), AgentExit(reason="completed"), True),
        (str(B), AgentExit(reason="stopped"), True),
        (str(A), AgentSpawn(task_type="started"), True),
        (str(B), AgentSpawn(task_type="started"), True),
    ]


def test_agent_ids_are_formatted_like_str_also_past_the_cache_bound() -> None:
    from audit import _kernel

    ids = [uuid.UUID(int=i * 7919 + 1) for i in range(_kernel._UUID_TEXT_MAX + 5)]
    for agent in ids + ids[:3]:
        assert extract_agent_id(AgentStarted(id=agent)) == str(agent)
    assert len(_kernel._UUID_TEXT) <= _kernel._UUID_TEXT_MAX


def test_a_uuid_subclass_keeps_its_own_str() -> None:
    class Tagged(uuid.UUID):
        def __str__(self) -> str:
            return "agent-" + super().__str__()

    agent = Tagged(int=A.int)
    assert extract_agent_id(AgentStarted(id=A)) == str(A)  # the plain UUID is cached first
    assert extract_agent_id(AgentStarted(id=agent)) == f"agent-{A}"
