"""OS observation events: the agent OS's paging, scheduling, process-table and signal events.

One class per kernel observation kind (``KERNEL_OBSERVATION_KINDS``) plus the session-log
kinds ``page_in``, ``context_renewed``, ``large_result_spooled``, ``agent_spawned`` and
``memory_retrieval_result``. The tag is the kind string exactly and the class name is its
CamelCase; each class's ``category`` is ``category_for_kind(tag)``.

Every event carries ``turn``, the turn it happened in, and ``session_id`` (``None`` when the
log the event came from is itself the session's). Fields the OS audit snapshot reads are
required; the others default, so sparse logs decode. Session logs that write ``category``
and ``primitive`` on each event still decode: those keys are ignored, because here they are
class data (:attr:`KernelEvent.category`, :attr:`KernelEvent.primitive`).
"""

from __future__ import annotations

from typing import ClassVar, TypeAlias, get_args

from ._base import U32, U64, KernelEvent
from ._taxonomy import Category

__all__ = [
    "OS_EVENT_TYPES",
    "AgentPreempted",
    "AgentProcessChanged",
    "AgentSpawned",
    "BudgetExceeded",
    "CapabilityChanged",
    "CheckpointTaken",
    "Compressed",
    "ContextRenewed",
    "LargeResultSpooled",
    "MemoryQueried",
    "MemoryRetrievalResult",
    "MemoryValidationFailed",
    "MemoryWritten",
    "MilestoneAdvanced",
    "MilestoneBlocked",
    "MilestoneEvidence",
    "OsEvent",
    "PageIn",
    "PageInRequested",
    "PageOut",
    "Renewed",
    "Resumed",
    "Rollbacked",
    "SignalDisposed",
    "Suspended",
    "ToolGated",
    "WorkflowBatchSpawned",
    "WorkflowCompleted",
]


class _OsEvent(KernelEvent, frozen=True, kw_only=True):
    # Shared fields; the concrete classes override ``category``.
    category: ClassVar[Category] = Category.SCHED
    turn: U32
    session_id: str | None = None


# -- mm: compression, paging, renewal, spooling, memory ----------------------------------------


class Compressed(_OsEvent, tag="compressed", frozen=True, kw_only=True):
    """Working context was compressed from ``tokens_before`` to ``tokens_after`` tokens."""

    category: ClassVar[Category] = Category.MM
    tokens_before: U64 = 0
    tokens_after: U64 = 0
    strategy: str = ""


class PageOut(_OsEvent, tag="page_out", frozen=True, kw_only=True):
    """Content behind ``handle`` (``tokens`` tokens) was paged out of working context."""

    category: ClassVar[Category] = Category.MM
    handle: str
    tokens: U64 = 0
    reason: str = ""


class PageIn(_OsEvent, tag="page_in", frozen=True, kw_only=True):
    """Content behind ``handle`` (``tokens`` tokens) was paged back into working context."""

    category: ClassVar[Category] = Category.MM
    handle: str
    tokens: U64 = 0


class PageInRequested(_OsEvent, tag="page_in_requested", frozen=True, kw_only=True):
    """The agent asked for ``handle`` to be paged in."""

    category: ClassVar[Category] = Category.MM
    handle: str
    reason: str = ""


class Renewed(_OsEvent, tag="renewed", frozen=True, kw_only=True):
    """The kernel renewed the working context (generation ``generation``), observed live."""

    category: ClassVar[Category] = Category.MM
    generation: U32 = 0
    carried_tokens: U64 = 0
    reason: str = ""


class ContextRenewed(_OsEvent, tag="context_renewed", frozen=True, kw_only=True):
    """The session log's record of a context renewal (generation ``generation``)."""

    category: ClassVar[Category] = Category.MM
    generation: U32 = 0
    carried_tokens: U64 = 0
    reason: str = ""


class LargeResultSpooled(_OsEvent, tag="large_result_spooled", frozen=True, kw_only=True):
    """A tool result too large for the context was spooled to ``handle`` (``size_bytes``)."""

    category: ClassVar[Category] = Category.MM
    call_id: str
    handle: str
    size_bytes: U64 = 0


class MemoryWritten(_OsEvent, tag="memory_written", frozen=True, kw_only=True):
    """Long-term memory entry ``memory_id`` was written in ``layer``."""

    category: ClassVar[Category] = Category.MM
    memory_id: str
    layer: str = ""
    key: str = ""


class MemoryQueried(_OsEvent, tag="memory_queried", frozen=True, kw_only=True):
    """Long-term memory was queried with ``query``."""

    category: ClassVar[Category] = Category.MM
    query: str
    layer: str = ""


class MemoryValidationFailed(_OsEvent, tag="memory_validation_failed", frozen=True, kw_only=True):
    """A memory write or read of ``memory_id`` failed validation, for ``reason``."""

    category: ClassVar[Category] = Category.MM
    memory_id: str
    reason: str


class MemoryRetrievalResult(_OsEvent, tag="memory_retrieval_result", frozen=True, kw_only=True):
    """A memory query returned ``hits`` entries (``memory_ids``).

    Its category is ``sched``, not ``mm``: the kernel's ``category_for_kind`` does not list
    ``memory_retrieval_result`` and files it under its ``sched`` fallback; this catalogue
    follows the kernel so that class and kind never disagree.
    """

    category: ClassVar[Category] = Category.SCHED
    query: str
    hits: U32 = 0
    memory_ids: tuple[str, ...] = ()


# -- syscall: gates and capabilities -------------------------------------------------------------


class ToolGated(_OsEvent, tag="tool_gated", frozen=True, kw_only=True):
    """A governance gate adjudicated tool call ``call_id``; ``blocked`` says if it refused."""

    category: ClassVar[Category] = Category.SYSCALL
    tool_name: str
    call_id: str
    blocked: bool
    reason: str = ""


class CapabilityChanged(_OsEvent, tag="capability_changed", frozen=True, kw_only=True):
    """Capability ``capability_id`` was ``mounted`` or ``unmounted`` (the ``change``)."""

    category: ClassVar[Category] = Category.SYSCALL
    capability_id: str
    change: str
    reason: str = ""


# -- sched: budgets, suspend/resume, checkpoints, milestones, rollback ----------------------------


class BudgetExceeded(_OsEvent, tag="budget_exceeded", frozen=True, kw_only=True):
    """Budget ``budget`` (e.g. ``tokens``, ``steps``, ``wall_clock``) was exceeded.

    ``limit`` and ``used`` are given when the budget is numeric.
    """

    category: ClassVar[Category] = Category.SCHED
    budget: str
    limit: U64 | None = None
    used: U64 | None = None


class Suspended(_OsEvent, tag="suspended", frozen=True, kw_only=True):
    """The session suspended, for ``reason`` (e.g. ``ask_user``), with ``pending_calls``."""

    category: ClassVar[Category] = Category.SCHED
    reason: str
    pending_calls: tuple[str, ...]


class Resumed(_OsEvent, tag="resumed", frozen=True, kw_only=True):
    """The session resumed."""

    category: ClassVar[Category] = Category.SCHED
    reason: str = ""


class CheckpointTaken(_OsEvent, tag="checkpoint_taken", frozen=True, kw_only=True):
    """Checkpoint ``checkpoint_id`` was taken."""

    category: ClassVar[Category] = Category.SCHED
    checkpoint_id: str
    reason: str = ""


class Rollbacked(_OsEvent, tag="rollbacked", frozen=True, kw_only=True):
    """The session rolled back to checkpoint ``checkpoint_id``, for ``reason``."""

    category: ClassVar[Category] = Category.SCHED
    checkpoint_id: str
    reason: str = ""


class MilestoneAdvanced(_OsEvent, tag="milestone_advanced", frozen=True, kw_only=True):
    """Milestone ``milestone_id`` was reached."""

    category: ClassVar[Category] = Category.SCHED
    milestone_id: str
    title: str = ""


class MilestoneBlocked(_OsEvent, tag="milestone_blocked", frozen=True, kw_only=True):
    """Milestone ``milestone_id`` is blocked, for ``reason``."""

    category: ClassVar[Category] = Category.SCHED
    milestone_id: str
    reason: str = ""


class MilestoneEvidence(_OsEvent, tag="milestone_evidence", frozen=True, kw_only=True):
    """Evidence towards milestone ``milestone_id`` was recorded."""

    category: ClassVar[Category] = Category.SCHED
    milestone_id: str
    evidence: str = ""


# -- proc: the process table ----------------------------------------------------------------------


class AgentProcessChanged(_OsEvent, tag="agent_process_changed", frozen=True, kw_only=True):
    """A sub-agent process changed state; the newest event per ``agent_id`` is its state.

    ``state`` is the process state (e.g. ``running``, ``joined``); ``result_termination``
    says how a finished process ended (e.g. ``completed``), ``None`` while it runs.
    """

    category: ClassVar[Category] = Category.PROC
    agent_id: str
    parent_session_id: str
    role: str
    isolation: str
    context_inheritance: str
    state: str
    permitted_capability_ids: tuple[str, ...] = ()
    result_termination: str | None = None


class AgentSpawned(_OsEvent, tag="agent_spawned", frozen=True, kw_only=True):
    """Sub-agent ``agent_id`` was spawned by session ``parent_session_id``."""

    category: ClassVar[Category] = Category.PROC
    agent_id: str
    parent_session_id: str
    role: str = ""


class AgentPreempted(_OsEvent, tag="agent_preempted", frozen=True, kw_only=True):
    """Sub-agent ``agent_id`` was preempted, for ``reason``."""

    category: ClassVar[Category] = Category.PROC
    agent_id: str
    reason: str = ""


class WorkflowBatchSpawned(_OsEvent, tag="workflow_batch_spawned", frozen=True, kw_only=True):
    """A workflow batch ``batch_id`` spawned ``agent_ids``."""

    category: ClassVar[Category] = Category.PROC
    batch_id: str
    agent_ids: tuple[str, ...] = ()


class WorkflowCompleted(_OsEvent, tag="workflow_completed", frozen=True, kw_only=True):
    """Workflow batch ``batch_id`` completed: ``succeeded`` and ``failed`` agents."""

    category: ClassVar[Category] = Category.PROC
    batch_id: str
    succeeded: U32 = 0
    failed: U32 = 0


# -- ipc: signals ---------------------------------------------------------------------------------


class SignalDisposed(_OsEvent, tag="signal_disposed", frozen=True, kw_only=True):
    """Signal ``signal_id`` was disposed as ``disposition`` (e.g. ``queue``, ``deliver``,
    ``drop``), leaving ``queue_depth`` signals queued."""

    category: ClassVar[Category] = Category.IPC
    signal_id: str
    disposition: str
    queue_depth: U32


OsEvent: TypeAlias = (
    Compressed
    | PageOut
    | PageIn
    | PageInRequested
    | Renewed
    | ContextRenewed
    | Rollbacked
    | CapabilityChanged
    | MilestoneAdvanced
    | MilestoneBlocked
    | MilestoneEvidence
    | CheckpointTaken
    | AgentProcessChanged
    | WorkflowBatchSpawned
    | WorkflowCompleted
    | AgentPreempted
    | AgentSpawned
    | ToolGated
    | SignalDisposed
    | BudgetExceeded
    | Suspended
    | Resumed
    | MemoryWritten
    | MemoryQueried
    | MemoryValidationFailed
    | MemoryRetrievalResult
    | LargeResultSpooled
)
"""Any OS observation or session event."""

OS_EVENT_TYPES: tuple[type[KernelEvent], ...] = get_args(OsEvent)
"""Every OS event class, in catalogue order."""
