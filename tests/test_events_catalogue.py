"""The event catalogue: every seed variant has a class, an explicit unique tag and its fields."""

from __future__ import annotations

import re
import uuid
from typing import get_args

import msgspec
import pytest
from test_events_samples import sample_event

import eventbus
import eventbus.events as ev
from eventbus.events import (
    ALL_EVENT_TYPES,
    EVENT_TYPES_BY_KIND,
    KERNEL_OBSERVATION_KINDS,
    OS_EVENT_TYPES,
    SUPERVISOR_EVENT_TYPES,
    TURN_LOOP_EVENT_TYPES,
    Category,
    KernelEvent,
)


def tag_of(cls: type[KernelEvent]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def wire_fields(cls: type[KernelEvent]) -> list[str]:
    return [f.encode_name for f in msgspec.structs.fields(cls)]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Seed 003 (oxios event_bus.rs): variant -> wire fields, in declaration order.
SUPERVISOR_FIELDS = {
    "AgentCreated": ["id", "name"],
    "AgentStarted": ["id"],
    "AgentStopped": ["id", "success"],
    "AgentFailed": ["id", "error"],
    "MessageReceived": ["from", "content"],
    "SeedCreated": ["seed_id"],
    "EvaluationComplete": ["seed_id", "passed"],
    "PhaseStarted": ["session_id", "phase"],
    "PhaseCompleted": ["session_id", "phase", "result_summary"],
    "AgentOutput": ["session_id", "agent_id", "output"],
    "ApprovalRequested": ["id", "tool_name", "action", "resource", "reason", "session_id"],
    "ApprovalResolved": ["id", "approved"],
    "MemoryStored": ["id", "memory_type", "source"],
    "MemoryRecalled": ["query", "count"],
    "AgentGroupCreated": ["group_id", "agent_count"],
    "AgentGroupMemberCompleted": ["group_id", "agent_id", "success"],
    "ProjectCreated": ["project_id", "name", "source"],
    "ProjectActivated": ["project_id", "name"],
    "EvolutionStarted": ["seed_id", "new_seed_id", "iteration"],
    "EvolutionMaxReached": ["seed_id", "final_score", "iterations"],
    "ToolExecutionStarted": ["session_id", "tool_name", "tool_call_id", "tool_args", "context"],
    "ToolExecutionFinished": [
        "session_id",
        "tool_call_id",
        "tool_name",
        "duration_ms",
        "is_error",
        "output_summary",
    ],
    "ToolExecutionProgress": [
        "session_id",
        "tool_call_id",
        "tool_name",
        "progress",
        "tab_id",
        "context",
    ],
    "MemoryRecallUsed": ["session_id", "query", "count", "source"],
    "TokenUsageUpdate": ["session_id", "input_tokens", "output_tokens"],
    "ReasoningFragment": ["session_id", "content", "source"],
    "CalendarEventCreated": ["uid", "title", "start", "end"],
    "CalendarEventUpdated": ["uid", "title"],
    "CalendarEventDeleted": ["uid", "title"],
    "EmailSent": ["subject", "message_id", "template_name"],
    "KnowledgePersisted": ["session_id", "message_index", "path", "source"],
    "KnowledgeRemoved": ["session_id", "message_index"],
    "AskUserRequest": ["id", "question", "options"],
}

# Seed 002 (turn-loop kernel_event.rs): kind -> wire fields.
TURN_LOOP_FIELDS = {
    "schema_version": ["version"],
    "turn_started": ["turn_id", "mode", "input_text", "max_steps"],
    "turn_ended": ["turn_id", "outcome", "total_steps"],
    "model_request_issued": ["turn_id", "step_idx", "request_fp", "token_budget"],
    "model_delta": ["turn_id", "step_idx", "kind", "call_id", "text"],
    "model_message": [
        "turn_id",
        "step_idx",
        "usage",
        "block_count",
        "text_preview",
        "assistant_text",
    ],
    "tool_call_planned": [
        "turn_id",
        "step_idx",
        "call_id",
        "tool_name",
        "input_json",
        "decision",
    ],
    "tool_call_started": ["turn_id", "call_id", "wave_idx"],
    "tool_call_finished": [
        "turn_id",
        "call_id",
        "tool_name",
        "outcome",
        "duration_ms",
        "wrote_state",
        "result_preview",
        "session_content",
    ],
    "turn_approval_resolved": ["turn_id", "call_id", "verdict"],
    "compaction_artifact_created": [
        "turn_id",
        "artifact_id",
        "replaced_range",
        "summary_token_count",
    ],
    "context_overflow_recovered": ["turn_id", "step_idx", "strategy", "source_budget_cap"],
    "steer_injected": ["turn_id", "step_idx", "text"],
    "scratchpad_reminder_injected": ["turn_id", "step_idx", "area_path"],
    "scratchpad_summary_injected": ["turn_id", "at_step"],
    "cycle_briefing_injected": ["turn_id", "cycle", "step_idx"],
    "topic_memory_injected": ["turn_id", "step_idx", "block_token_est"],
    "memory_plane_queried": ["turn_id", "step_idx", "layer", "query_key", "compiler_source"],
    "layered_context_seam_injected": [
        "turn_id",
        "step_idx",
        "level",
        "messages_covered",
        "text_preview",
    ],
    "loop_guard_triggered": ["turn_id", "call_id", "reason"],
    "capacity_checkpoint": [
        "turn_id",
        "step_idx",
        "kind",
        "tokens_used",
        "token_budget",
        "action",
        "cooldown_blocked",
    ],
    "cycle_advanced": ["turn_id", "from_cycle", "to_cycle", "reason"],
    "step_limit_continuation": ["turn_id", "step_idx", "lht_objective_injected"],
    "loop_guard_continuation": ["turn_id", "step_idx"],
    "deferred_tool_activated": ["turn_id", "step_idx", "tool_name"],
}

# Seed 001 (replay.rs): the fields the OS audit snapshot reads, per kind.
OS_FIELDS_READ = {
    "agent_process_changed": [
        "agent_id",
        "parent_session_id",
        "role",
        "isolation",
        "context_inheritance",
        "state",
        "permitted_capability_ids",
        "result_termination",
    ],
    "signal_disposed": ["signal_id", "disposition", "queue_depth"],
    "suspended": ["reason", "pending_calls"],
    "budget_exceeded": ["budget"],
    "tool_gated": ["tool_name", "call_id", "blocked", "reason"],
}

OS_EXTRA_KINDS = [
    "page_in",
    "context_renewed",
    "large_result_spooled",
    "agent_spawned",
    "memory_retrieval_result",
]

# The record of the supervisor and turn-loop categories (the generated table shows the same).
EXPECTED_CATEGORIES = {
    "proc": {
        "agent_created",
        "agent_started",
        "agent_stopped",
        "agent_failed",
        "agent_group_created",
        "agent_group_member_completed",
    },
    "ipc": {"message_received", "agent_output", "ask_user_request", "steer_injected"},
    "syscall": {
        "approval_requested",
        "approval_resolved",
        "tool_execution_started",
        "tool_execution_finished",
        "tool_execution_progress",
        "calendar_event_created",
        "calendar_event_updated",
        "calendar_event_deleted",
        "email_sent",
        "tool_call_planned",
        "tool_call_started",
        "tool_call_finished",
        "turn_approval_resolved",
        "loop_guard_triggered",
        "deferred_tool_activated",
    },
    "mm": {
        "memory_stored",
        "memory_recalled",
        "memory_recall_used",
        "knowledge_persisted",
        "knowledge_removed",
        "compaction_artifact_created",
        "context_overflow_recovered",
        "scratchpad_reminder_injected",
        "scratchpad_summary_injected",
        "cycle_briefing_injected",
        "topic_memory_injected",
        "memory_plane_queried",
        "layered_context_seam_injected",
    },
    "sched": {
        "seed_created",
        "evaluation_complete",
        "phase_started",
        "phase_completed",
        "project_created",
        "project_activated",
        "evolution_started",
        "evolution_max_reached",
        "token_usage_update",
        "reasoning_fragment",
        "schema_version",
        "turn_started",
        "turn_ended",
        "model_request_issued",
        "model_delta",
        "model_message",
        "capacity_checkpoint",
        "cycle_advanced",
        "step_limit_continuation",
        "loop_guard_continuation",
    },
}


def test_catalogue_is_the_three_families_in_order() -> None:
    assert len(SUPERVISOR_EVENT_TYPES) == 33
    assert len(TURN_LOOP_EVENT_TYPES) == 25
    assert len(OS_EVENT_TYPES) == 27
    assert ALL_EVENT_TYPES == SUPERVISOR_EVENT_TYPES + TURN_LOOP_EVENT_TYPES + OS_EVENT_TYPES
    assert get_args(ev.SupervisorEvent) == SUPERVISOR_EVENT_TYPES
    assert get_args(ev.TurnLoopEvent) == TURN_LOOP_EVENT_TYPES
    assert get_args(ev.OsEvent) == OS_EVENT_TYPES
    assert get_args(ev.AnyKernelEvent) == ALL_EVENT_TYPES
    assert eventbus.AnyKernelEvent == ev.AnyKernelEvent


def test_every_tag_is_unique_across_the_catalogue() -> None:
    tags = [tag_of(cls) for cls in ALL_EVENT_TYPES]
    duplicates = {t for t in tags if tags.count(t) > 1}
    assert not duplicates
    assert len(set(ALL_EVENT_TYPES)) == len(ALL_EVENT_TYPES)


@pytest.mark.parametrize("cls", ALL_EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_tag_is_explicit_snake_case(cls: type[KernelEvent]) -> None:
    tag = tag_of(cls)
    assert tag != cls.__name__
    assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", tag)
    assert cls.__struct_config__.tag_field == "event_type"
    assert issubclass(cls, KernelEvent)


def test_kind_mapping_maps_every_tag_to_its_class() -> None:
    assert dict(EVENT_TYPES_BY_KIND) == {tag_of(cls): cls for cls in ALL_EVENT_TYPES}
    assert list(EVENT_TYPES_BY_KIND) == [tag_of(cls) for cls in ALL_EVENT_TYPES]
    with pytest.raises(TypeError):
        EVENT_TYPES_BY_KIND["x"] = KernelEvent  # type: ignore[index]


def test_supervisor_family_has_every_oxios_variant_with_its_fields() -> None:
    assert [cls.__name__ for cls in SUPERVISOR_EVENT_TYPES] == list(SUPERVISOR_FIELDS)
    for cls in SUPERVISOR_EVENT_TYPES:
        assert tag_of(cls) == snake(cls.__name__)
        assert wire_fields(cls) == SUPERVISOR_FIELDS[cls.__name__], cls.__name__


def test_supervisor_ids_are_uuids_and_serde_defaults_match() -> None:
    hints = {f.name: f for f in msgspec.structs.fields(ev.AgentGroupMemberCompleted)}
    assert hints["group_id"].type is uuid.UUID
    assert hints["agent_id"].type is uuid.UUID
    assert msgspec.structs.fields(ev.MessageReceived)[0].type is uuid.UUID
    defaults = {
        (cls.__name__, f.encode_name): f.default
        for cls in SUPERVISOR_EVENT_TYPES
        for f in msgspec.structs.fields(cls)
        if f.default is not msgspec.NODEFAULT
    }
    assert defaults == {
        ("AgentStopped", "success"): False,
        ("ApprovalRequested", "session_id"): None,
        ("ToolExecutionStarted", "context"): None,
        ("ToolExecutionProgress", "tab_id"): None,
        ("ToolExecutionProgress", "context"): None,
        ("EmailSent", "template_name"): None,
    }


def test_turn_loop_family_has_every_seed_variant_with_its_fields() -> None:
    assert [tag_of(cls) for cls in TURN_LOOP_EVENT_TYPES] == list(TURN_LOOP_FIELDS)
    for cls in TURN_LOOP_EVENT_TYPES:
        assert wire_fields(cls) == TURN_LOOP_FIELDS[tag_of(cls)], cls.__name__
        if cls is not ev.SchemaVersion:
            assert snake(cls.__name__) == tag_of(cls)


def test_turn_loop_approval_resolved_is_renamed_and_says_so() -> None:
    assert tag_of(ev.TurnApprovalResolved) == "turn_approval_resolved"
    assert tag_of(ev.ApprovalResolved) == "approval_resolved"
    doc = ev.TurnApprovalResolved.__doc__ or ""
    assert "ApprovalResolved" in doc
    assert "renamed" in doc


def test_os_family_has_every_observation_and_session_kind() -> None:
    tags = [tag_of(cls) for cls in OS_EVENT_TYPES]
    assert sorted(tags) == sorted([*KERNEL_OBSERVATION_KINDS, *OS_EXTRA_KINDS])
    for cls in OS_EVENT_TYPES:
        assert cls.__name__ == "".join(p.title() for p in tag_of(cls).split("_"))
        fields = wire_fields(cls)
        assert fields[:2] == ["turn", "session_id"], cls.__name__


@pytest.mark.parametrize(("kind", "fields"), sorted(OS_FIELDS_READ.items()))
def test_os_events_carry_the_fields_the_audit_snapshot_reads(kind: str, fields: list[str]) -> None:
    assert set(fields) <= set(wire_fields(EVENT_TYPES_BY_KIND[kind]))


def test_supervisor_and_turn_loop_categories_are_the_recorded_ones() -> None:
    actual: dict[str, set[str]] = {c.value: set() for c in Category}
    for cls in SUPERVISOR_EVENT_TYPES + TURN_LOOP_EVENT_TYPES:
        actual[cls.category.value].add(tag_of(cls))
    assert actual == EXPECTED_CATEGORIES


@pytest.mark.parametrize("cls", ALL_EVENT_TYPES, ids=lambda c: c.__name__)
def test_events_are_frozen_and_keyword_only(cls: type[KernelEvent]) -> None:
    event = sample_event(cls)
    first = msgspec.structs.fields(cls)[0].name
    with pytest.raises(AttributeError):
        setattr(event, first, getattr(event, first))
    with pytest.raises(TypeError):
        cls(*msgspec.structs.astuple(event))
    assert cls(**msgspec.structs.asdict(event)) == event


@pytest.mark.parametrize("cls", ALL_EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_event_class_is_documented(cls: type[KernelEvent]) -> None:
    assert cls.__doc__
    assert cls.__doc__.strip()


def test_nested_variant_tags_are_unique_per_union() -> None:
    for union in (ev.TurnOutcome, ev.ToolOutcome, ev.CapacityAction):
        variants = get_args(union)
        tags = [v.__struct_config__.tag for v in variants]
        assert len(set(tags)) == len(tags)
        assert all(v.__struct_config__.tag_field == "type" for v in variants)
