"""The category taxonomy: five wire categories rolling up to three kernel primitives."""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "KERNEL_OBSERVATION_KINDS",
    "Category",
    "Primitive",
    "category_for_kind",
    "primitive_for_kind",
]


class Primitive(enum.StrEnum):
    """One of the three kernel primitives every event rolls up to.

    The values are the lowercase labels used on the wire and in logs.
    """

    SYSCALL = "syscall"
    """P1, the adjudication trap: governance, capabilities, tool approval and gating."""
    SCHED = "sched"
    """P2, the task table and the scheduler: lifecycle, budgets, turns, signals."""
    MM = "mm"
    """P3, the handle table and paging: compression, page-in/out, long-term memory."""


class Category(enum.StrEnum):
    """The fine-grained decision plane of a kernel event (a stable audit label).

    Every event class declares one as class data (``MyEvent.category``); it is not a field on
    the wire. :attr:`primitive` rolls it up to one of the three :class:`Primitive` values.
    """

    SYSCALL = "syscall"
    """Governance gates, capability mount/unmount, tool approval and execution."""
    SCHED = "sched"
    """Scheduling, turns, budgets, phases, suspend/resume, checkpoints, milestones, rollback."""
    MM = "mm"
    """Working and long-term memory: compression, paging, renewal, memory reads and writes."""
    PROC = "proc"
    """The (sub-)agent process table: creation, start, stop, spawn, preemption."""
    IPC = "ipc"
    """Messages and signals between agents, users and the kernel."""

    @property
    def primitive(self) -> Primitive:
        """The primitive this category rolls up to: ``proc`` and ``ipc`` roll up to ``sched``.

        The process table *is* the scheduler's task table, and signal disposition feeds the
        scheduler, so both are facets of :attr:`Primitive.SCHED`.
        """
        return _PRIMITIVES[self]


_PRIMITIVES: Final[dict[Category, Primitive]] = {
    Category.SYSCALL: Primitive.SYSCALL,
    Category.SCHED: Primitive.SCHED,
    Category.MM: Primitive.MM,
    Category.PROC: Primitive.SCHED,
    Category.IPC: Primitive.SCHED,
}

KERNEL_OBSERVATION_KINDS: Final[tuple[str, ...]] = (
    "compressed",
    "page_out",
    "page_in_requested",
    "renewed",
    "rollbacked",
    "capability_changed",
    "milestone_advanced",
    "milestone_blocked",
    "milestone_evidence",
    "checkpoint_taken",
    "agent_process_changed",
    "workflow_batch_spawned",
    "workflow_completed",
    "agent_preempted",
    "tool_gated",
    "signal_disposed",
    "budget_exceeded",
    "suspended",
    "resumed",
    "memory_written",
    "memory_queried",
    "memory_validation_failed",
)
"""Every kernel observation kind that belongs in a unified OS event log, in the kernel's order.

Session-only kinds (``page_in``, ``context_renewed``, ``large_result_spooled``,
``agent_spawned``, ``memory_retrieval_result``) are not observations and are not listed here,
although :func:`category_for_kind` classifies them.
"""

_KIND_CATEGORIES: Final[dict[str, Category]] = {
    "tool_gated": Category.SYSCALL,
    "capability_changed": Category.SYSCALL,
    "suspended": Category.SCHED,
    "resumed": Category.SCHED,
    "budget_exceeded": Category.SCHED,
    "checkpoint_taken": Category.SCHED,
    "rollbacked": Category.SCHED,
    "milestone_advanced": Category.SCHED,
    "milestone_blocked": Category.SCHED,
    "milestone_evidence": Category.SCHED,
    "compressed": Category.MM,
    "page_out": Category.MM,
    "page_in": Category.MM,
    "page_in_requested": Category.MM,
    "renewed": Category.MM,
    "context_renewed": Category.MM,
    "large_result_spooled": Category.MM,
    "agent_process_changed": Category.PROC,
    "agent_spawned": Category.PROC,
    "workflow_batch_spawned": Category.PROC,
    "workflow_completed": Category.PROC,
    "agent_preempted": Category.PROC,
    "signal_disposed": Category.IPC,
    "memory_written": Category.MM,
    "memory_queried": Category.MM,
    "memory_validation_failed": Category.MM,
}


def category_for_kind(kind: str) -> Category:
    """Return the category of an OS observation or session ``kind`` string.

    The mapping is the kernel's own (deepstrike ``event_log``): tool gating and capability
    changes are ``syscall``; compression, paging, renewal, spooling and memory events are
    ``mm``; process-table events are ``proc``; ``signal_disposed`` is ``ipc``; everything
    else, **including any unknown kind**, is ``sched``. It never raises.

    This classifies *OS observation kinds* only. A supervisor or turn-loop event's category is
    its class attribute ``category``; ask the class, not this function, for those.
    """
    return _KIND_CATEGORIES.get(kind, Category.SCHED)


def primitive_for_kind(kind: str) -> Primitive:
    """Return the primitive of a ``kind`` string: ``category_for_kind(kind).primitive``.

    Unknown kinds roll up to :attr:`Primitive.SCHED`. It never raises.
    """
    return _PRIMITIVES[_KIND_CATEGORIES.get(kind, Category.SCHED)]
