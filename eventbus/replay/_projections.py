"""Projections: small pure folds of turn-loop events into state (seed 002)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from .._envelope import Envelope
from ..events import (
    CapacityAction,
    CapacityCheckpoint,
    DeferredToolActivated,
    KernelEvent,
    ModelRequestIssued,
    ScratchpadSummaryInjected,
    StepLimitContinuation,
    ToolCallFinished,
    ToolOutcomeSuccess,
)

__all__ = [
    "ScratchpadStepState",
    "active_tools",
    "last_capacity_action",
    "lht_continuation_count",
    "scratchpad_step_state",
    "scratchpad_summary_injected",
]

Events = Iterable[Envelope[Any] | KernelEvent]


def _events(items: Events) -> Iterator[object]:
    for item in items:
        yield item.event if isinstance(item, Envelope) else item


def active_tools(events: Events, turn_id: str, initial: Iterable[str] = ()) -> frozenset[str]:
    """The tools active in turn ``turn_id``: ``initial`` plus every deferred tool activated.

    :returns: ``initial`` and the ``tool_name`` of each
        :class:`~eventbus.events.DeferredToolActivated` of that turn. Activation is never
        undone, so the set only grows along the log.
    """
    active = set(initial)
    for event in _events(events):
        if isinstance(event, DeferredToolActivated) and event.turn_id == turn_id:
            active.add(event.tool_name)
    return frozenset(active)


class ScratchpadStepState(msgspec.Struct, frozen=True, kw_only=True):
    """The scratchpad counters of a turn's current step.

    Attributes:
        readonly_successes: Successful tool calls in the step that wrote no state.
        scratchpad_writes: Successful state-writing calls of ``scratchpad_*`` tools.
    """

    readonly_successes: int = 0
    scratchpad_writes: int = 0


def scratchpad_step_state(events: Events, turn_id: str) -> ScratchpadStepState:
    """The scratchpad counters of turn ``turn_id``'s current step.

    A :class:`~eventbus.events.ModelRequestIssued` of the turn starts a step and resets the
    counters; each successful :class:`~eventbus.events.ToolCallFinished` of the turn then
    counts as a read-only success (``wrote_state`` false) or, if it wrote state from a tool
    whose name starts with ``scratchpad_``, as a scratchpad write. Failed calls and other
    state-writing tools count nowhere.
    """
    readonly = writes = 0
    for event in _events(events):
        if isinstance(event, ModelRequestIssued):
            if event.turn_id == turn_id:
                readonly = writes = 0
        elif (
            isinstance(event, ToolCallFinished)
            and event.turn_id == turn_id
            and isinstance(event.outcome, ToolOutcomeSuccess)
        ):
            if not event.wrote_state:
                readonly += 1
            elif event.tool_name.startswith("scratchpad_"):
                writes += 1
    return ScratchpadStepState(readonly_successes=readonly, scratchpad_writes=writes)


def lht_continuation_count(events: Events, turn_id: str) -> int:
    """How many times turn ``turn_id`` continued past its step limit (long-horizon tasks).

    :returns: the number of :class:`~eventbus.events.StepLimitContinuation` of the turn.
    """
    return sum(
        1
        for event in _events(events)
        if isinstance(event, StepLimitContinuation) and event.turn_id == turn_id
    )


def last_capacity_action(events: Events, turn_id: str) -> CapacityAction | None:
    """What the last capacity checkpoint of turn ``turn_id`` decided.

    :returns: the ``action`` of the turn's last :class:`~eventbus.events.CapacityCheckpoint`,
        or ``None`` if it had none.
    """
    action: CapacityAction | None = None
    for event in _events(events):
        if isinstance(event, CapacityCheckpoint) and event.turn_id == turn_id:
            action = event.action
    return action


def scratchpad_summary_injected(events: Events, turn_id: str) -> bool:
    """Whether a scratchpad summary was injected into turn ``turn_id``.

    :returns: ``True`` if the log holds a :class:`~eventbus.events.ScratchpadSummaryInjected`
        of the turn.
    """
    return any(
        isinstance(event, ScratchpadSummaryInjected) and event.turn_id == turn_id
        for event in _events(events)
    )
