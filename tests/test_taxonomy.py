"""The category taxonomy (seed 000) and each event class's category."""

from __future__ import annotations

from typing import ClassVar

import msgspec
import pytest
from test_events_samples import sample_event

import eventbus
from eventbus.events import (
    ALL_EVENT_TYPES,
    KERNEL_OBSERVATION_KINDS,
    OS_EVENT_TYPES,
    AgentProcessChanged,
    Category,
    KernelEvent,
    Primitive,
    category_for_kind,
    primitive_for_kind,
)

# The kernel's mapping, kind by kind (deepstrike event_log.rs).
SEED_CATEGORIES = {
    "tool_gated": "syscall",
    "capability_changed": "syscall",
    "suspended": "sched",
    "resumed": "sched",
    "budget_exceeded": "sched",
    "checkpoint_taken": "sched",
    "rollbacked": "sched",
    "milestone_advanced": "sched",
    "milestone_blocked": "sched",
    "milestone_evidence": "sched",
    "compressed": "mm",
    "page_out": "mm",
    "page_in": "mm",
    "page_in_requested": "mm",
    "renewed": "mm",
    "context_renewed": "mm",
    "large_result_spooled": "mm",
    "agent_process_changed": "proc",
    "agent_spawned": "proc",
    "workflow_batch_spawned": "proc",
    "workflow_completed": "proc",
    "agent_preempted": "proc",
    "signal_disposed": "ipc",
    "memory_written": "mm",
    "memory_queried": "mm",
    "memory_validation_failed": "mm",
    # Not in the kernel's match: its fallback applies.
    "memory_retrieval_result": "sched",
}


def test_enums_have_lowercase_string_values() -> None:
    assert [c.value for c in Category] == ["syscall", "sched", "mm", "proc", "ipc"]
    assert [p.value for p in Primitive] == ["syscall", "sched", "mm"]
    assert Category("proc") is Category.PROC
    assert Category.IPC == "ipc"


def test_categories_roll_up_to_three_primitives() -> None:
    assert Category.SYSCALL.primitive is Primitive.SYSCALL
    assert Category.SCHED.primitive is Primitive.SCHED
    assert Category.PROC.primitive is Primitive.SCHED
    assert Category.IPC.primitive is Primitive.SCHED
    assert Category.MM.primitive is Primitive.MM


@pytest.mark.parametrize(("kind", "category"), sorted(SEED_CATEGORIES.items()))
def test_category_for_kind_follows_the_kernel_mapping(kind: str, category: str) -> None:
    assert category_for_kind(kind) is Category(category)
    assert primitive_for_kind(kind) is Category(category).primitive


@pytest.mark.parametrize("kind", ["", "no_such_kind", "TOOL_GATED", "agent_started"])
def test_unknown_kinds_fall_back_to_sched(kind: str) -> None:
    assert category_for_kind(kind) is Category.SCHED
    assert primitive_for_kind(kind) is Primitive.SCHED


def test_kernel_observation_kinds_are_the_kernel_list() -> None:
    assert len(KERNEL_OBSERVATION_KINDS) == 22
    assert len(set(KERNEL_OBSERVATION_KINDS)) == 22
    assert {"page_out", "resumed", "agent_preempted"} <= set(KERNEL_OBSERVATION_KINDS)
    # Session-only kinds are classified but are not observations.
    for kind in ("page_in", "context_renewed", "large_result_spooled", "agent_spawned"):
        assert kind not in KERNEL_OBSERVATION_KINDS
    assert set(KERNEL_OBSERVATION_KINDS) <= set(SEED_CATEGORIES)


@pytest.mark.parametrize("cls", OS_EVENT_TYPES, ids=lambda c: c.__name__)
def test_os_event_category_is_the_kernel_category_of_its_tag(cls: type[KernelEvent]) -> None:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    assert cls.category is category_for_kind(tag)


@pytest.mark.parametrize("cls", ALL_EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_event_declares_its_category_as_class_data(cls: type[KernelEvent]) -> None:
    assert isinstance(cls.category, Category)
    assert "category" not in {f.name for f in msgspec.structs.fields(cls)}
    event = sample_event(cls)
    assert event.primitive is cls.category.primitive
    decoded = msgspec.json.decode(msgspec.json.encode(event))
    assert "category" not in decoded
    assert "primitive" not in decoded


def test_category_in_old_session_logs_is_ignored_not_trusted() -> None:
    # deepstrike session logs write category/primitive on each event; the class is the truth.
    data = (
        b'{"event_type":"agent_process_changed","turn":1,"category":"mm","primitive":"mm",'
        b'"agent_id":"child-1","parent_session_id":"parent","role":"worker",'
        b'"isolation":"shared","context_inheritance":"none","state":"running",'
        b'"permitted_capability_ids":[],"result_termination":null}'
    )
    event = msgspec.json.decode(data, type=eventbus.AnyKernelEvent)
    assert isinstance(event, AgentProcessChanged)
    assert event.category is Category.PROC
    assert event.primitive is Primitive.SCHED


def test_subclass_without_category_is_refused() -> None:
    with pytest.raises(
        TypeError,
        match=r"^NoCategory must declare its category as class data, "
        r"e\.g\. `category = Category\.SCHED`$",
    ):

        class NoCategory(KernelEvent, tag="no_category", frozen=True, kw_only=True):
            value: int


def test_subclass_with_category_gets_a_primitive() -> None:
    class CacheFlushed(KernelEvent, tag="cache_flushed", frozen=True, kw_only=True):
        category: ClassVar[Category] = Category.IPC
        entries: int

    event = CacheFlushed(entries=3)
    assert CacheFlushed.category is Category.IPC
    assert event.primitive is Primitive.SCHED
