"""The OS audit snapshot: kernel OS state folded from a session log (seed 001)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import msgspec

from .._envelope import Envelope
from ..events import (
    AgentProcessChanged,
    BudgetExceeded,
    KernelEvent,
    MemoryQueried,
    MemoryRetrievalResult,
    MemoryValidationFailed,
    MemoryWritten,
    PageIn,
    PageOut,
    Resumed,
    SignalDisposed,
    Suspended,
    ToolGated,
)
from ._log import SessionLog, read_log

__all__ = [
    "BudgetExceededRecord",
    "OsSnapshot",
    "ProcessRecord",
    "SignalDisposedRecord",
    "SuspendRecord",
    "log_has_required_categories",
    "rebuild_os_snapshot",
]


class SuspendRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The session's last suspension: its ``turn``, ``reason`` and ``pending_calls``."""

    turn: int
    reason: str
    pending_calls: tuple[str, ...]


class ProcessRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A sub-agent process as its newest :class:`~eventbus.events.AgentProcessChanged` left it."""

    turn: int
    agent_id: str
    parent_session_id: str
    state: str


class BudgetExceededRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One :class:`~eventbus.events.BudgetExceeded`: the ``turn`` and the ``budget`` name."""

    turn: int
    budget: str


class SignalDisposedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One :class:`~eventbus.events.SignalDisposed`: how signal ``signal_id`` was disposed."""

    turn: int
    signal_id: str
    disposition: str
    queue_depth: int


class OsSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The kernel OS state a session log adds up to: a read-only audit view.

    Built by :func:`rebuild_os_snapshot`; equal logs give equal snapshots, and snapshots
    compare with ``==`` and encode to JSON (the golden fixtures in ``tests/fixtures``). The
    fields are those of deepstrike's ``OsSnapshot``; every field defaults, so a snapshot JSON
    without the memory counters (written before they existed) still decodes.

    Attributes:
        last_suspend: The last :class:`~eventbus.events.Suspended`, or ``None``.
        last_resumed_turn: The turn of the last :class:`~eventbus.events.Resumed`, or ``None``.
            It may be older than ``last_suspend``: the session is then still suspended.
        process_by_agent: One record per agent id, in the order agents were first seen, each
            holding that agent's newest state.
        budget_exceeded: Every budget overrun, in log order.
        signals: Every signal disposition, in log order.
        page_out_count, page_in_count, tool_gated_count, memory_written_count,
        memory_queried_count, memory_validation_failed_count, memory_retrieval_result_count:
            How many events of each of those kinds the log holds.
    """

    last_suspend: SuspendRecord | None = None
    last_resumed_turn: int | None = None
    process_by_agent: tuple[ProcessRecord, ...] = ()
    budget_exceeded: tuple[BudgetExceededRecord, ...] = ()
    signals: tuple[SignalDisposedRecord, ...] = ()
    page_out_count: int = 0
    page_in_count: int = 0
    tool_gated_count: int = 0
    memory_written_count: int = 0
    memory_queried_count: int = 0
    memory_validation_failed_count: int = 0
    memory_retrieval_result_count: int = 0


def rebuild_os_snapshot(events: Iterable[Envelope[Any] | KernelEvent]) -> OsSnapshot:
    """Fold a session's events into an :class:`OsSnapshot`; a pure function, no I/O.

    :param events: envelopes (a :class:`SessionLog`, a list of received envelopes) or bare
        events, in log order; the two may be mixed.
    :returns: the snapshot. Events other than the OS kinds it reads are ignored, so the
        whole log can be passed as it is.

    Per event: :class:`~eventbus.events.Suspended` replaces ``last_suspend``;
    :class:`~eventbus.events.Resumed` sets ``last_resumed_turn``;
    :class:`~eventbus.events.AgentProcessChanged` replaces that agent's record in place (the
    newest state wins, the first-seen position stays) or appends a new one;
    :class:`~eventbus.events.BudgetExceeded` and :class:`~eventbus.events.SignalDisposed`
    append a record; paging, tool-gated and memory events count. Subclasses of those event
    classes count as them. Nothing is validated: the log is taken as it is.
    """
    last_suspend: SuspendRecord | None = None
    last_resumed: int | None = None
    processes: list[ProcessRecord] = []
    process_index: dict[str, int] = {}
    budgets: list[BudgetExceededRecord] = []
    signals: list[SignalDisposedRecord] = []
    page_out = page_in = gated = written = queried = invalid = retrieved = 0
    for item in events:
        event = item.event if isinstance(item, Envelope) else item
        match event:
            case Suspended():
                last_suspend = SuspendRecord(
                    turn=event.turn, reason=event.reason, pending_calls=tuple(event.pending_calls)
                )
            case Resumed():
                last_resumed = event.turn
            case ToolGated():
                gated += 1
            case AgentProcessChanged():
                record = ProcessRecord(
                    turn=event.turn,
                    agent_id=event.agent_id,
                    parent_session_id=event.parent_session_id,
                    state=event.state,
                )
                index = process_index.get(event.agent_id)
                if index is None:
                    process_index[event.agent_id] = len(processes)
                    processes.append(record)
                else:
                    processes[index] = record
            case BudgetExceeded():
                budgets.append(BudgetExceededRecord(turn=event.turn, budget=event.budget))
            case SignalDisposed():
                signals.append(
                    SignalDisposedRecord(
                        turn=event.turn,
                        signal_id=event.signal_id,
                        disposition=event.disposition,
                        queue_depth=event.queue_depth,
                    )
                )
            case PageOut():
                page_out += 1
            case PageIn():
                page_in += 1
            case MemoryWritten():
                written += 1
            case MemoryQueried():
                queried += 1
            case MemoryValidationFailed():
                invalid += 1
            case MemoryRetrievalResult():
                retrieved += 1
            case _:
                pass
    return OsSnapshot(
        last_suspend=last_suspend,
        last_resumed_turn=last_resumed,
        process_by_agent=tuple(processes),
        budget_exceeded=tuple(budgets),
        signals=tuple(signals),
        page_out_count=page_out,
        page_in_count=page_in,
        tool_gated_count=gated,
        memory_written_count=written,
        memory_queried_count=queried,
        memory_validation_failed_count=invalid,
        memory_retrieval_result_count=retrieved,
    )


def log_has_required_categories(
    log: SessionLog[Any] | str | os.PathLike[str], *, require_native: bool = True
) -> bool:
    """Whether every OS event line of a session log carries the category the catalogue gives.

    Deepstrike's ``session_log_has_required_categories`` checks that every kernel OS event
    in a log carries an explicit category (logs from before the taxonomy lack it). Here the
    category is class data (``Suspended.category``), never encoded by the bus, so the check
    is about what a log *file* says. For every line whose event is one of the OS event
    classes (``eventbus.events.OS_EVENT_TYPES``):

    * if the line writes a ``category`` on the event (Rust session logs do), it must equal
      the class's :attr:`~eventbus.events.KernelEvent.category`; if it writes a non-null
      ``primitive``, that must equal the category's primitive;
    * a line written by a Rust kernel without an envelope (an ``event_type``-tagged event or
      a seed-002 envelope) must write a ``category`` at all, as deepstrike requires, unless
      ``require_native`` is false;
    * an envelope line (what :class:`SessionLogRecorder` writes) needs none: its ``kind``
      names the class, and the class holds the category.

    Lines of other events (supervisor, turn loop, your own) are not checked.

    :param log: a :class:`SessionLog` from :func:`read_log`, or a path to read.
    :param require_native: require the category on Rust-written OS event lines (default).
    :returns: ``True`` if every OS event line passes, ``False`` at the first that does not.
    :raises: what :func:`read_log` raises, when given a path.

    Given a :class:`SessionLog` it does not re-read the file: the reader kept the labels of
    each OS event line. Events that never were JSON (a list of envelopes in memory) carry no
    wire labels, which is why this takes a log, not events.
    """
    if not isinstance(log, SessionLog):
        log = read_log(log)
    for labels in log._labels:
        expected = labels.expected
        if labels.category is None:
            if labels.native and require_native:
                return False
        elif labels.category != expected.value:
            return False
        if labels.primitive is not None and labels.primitive != expected.primitive.value:
            return False
    return True
