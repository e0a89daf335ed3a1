"""Turn-loop projections (seed 002): small pure folds, each pinned by a behaviour."""

from __future__ import annotations

from eventbus import Envelope
from eventbus.events import (
    CapacityActionContinue,
    CapacityActionTrim,
    CapacityCheckpoint,
    CapacityCheckpointKind,
    DeferredToolActivated,
    KernelEvent,
    ModelRequestIssued,
    RequestFingerprint,
    ScratchpadSummaryInjected,
    StepLimitContinuation,
    ToolCallFinished,
    ToolOutcome,
    ToolOutcomeSuccess,
    ToolOutcomeToolError,
    TurnLoopMode,
    TurnStarted,
)
from eventbus.replay import (
    ScratchpadStepState,
    active_tools,
    last_capacity_action,
    lht_continuation_count,
    scratchpad_step_state,
    scratchpad_summary_injected,
)

FP = RequestFingerprint(static_prefix_sha256="aaa", full_prefix_sha256="bbb")


def started(turn_id: str) -> TurnStarted:
    return TurnStarted(turn_id=turn_id, mode=TurnLoopMode.AGENT, input_text="go", max_steps=10)


def request(turn_id: str, step: int) -> ModelRequestIssued:
    return ModelRequestIssued(turn_id=turn_id, step_idx=step, request_fp=FP, token_budget=32000)


def finished(
    turn_id: str,
    tool: str,
    *,
    wrote_state: bool,
    outcome: ToolOutcome | None = None,
) -> ToolCallFinished:
    return ToolCallFinished(
        turn_id=turn_id,
        call_id=f"call-{tool}",
        tool_name=tool,
        outcome=outcome or ToolOutcomeSuccess(),
        duration_ms=10,
        wrote_state=wrote_state,
    )


def checkpoint(turn_id: str, step: int, action: object) -> CapacityCheckpoint:
    return CapacityCheckpoint(
        turn_id=turn_id,
        step_idx=step,
        kind=CapacityCheckpointKind.POST_TOOL,
        tokens_used=1000 * step,
        token_budget=32000,
        action=action,  # type: ignore[arg-type]
    )


def test_scratchpad_summary_injected_only_for_its_turn() -> None:
    events: list[KernelEvent] = [started("t1"), ScratchpadSummaryInjected(turn_id="t1", at_step=2)]
    assert scratchpad_summary_injected(events, "t1")
    assert not scratchpad_summary_injected(events, "t2")
    assert not scratchpad_summary_injected([started("t1")], "t1")


def test_active_tools_adds_deferred_activations_of_the_turn() -> None:
    events = [
        started("t2"),
        DeferredToolActivated(turn_id="t2", step_idx=1, tool_name="tool_search_tool_regex"),
        DeferredToolActivated(turn_id="other", step_idx=1, tool_name="write_file"),
    ]
    active = active_tools(events, "t2", initial=("read_file", "shell_exec"))
    assert active == frozenset({"read_file", "shell_exec", "tool_search_tool_regex"})
    assert active_tools([], "t2") == frozenset()


def test_scratchpad_step_state_resets_at_each_model_request() -> None:
    events = [
        request("t3", 1),
        finished("t3", "read_file", wrote_state=False),
        finished("t3", "shell_exec", wrote_state=False),
        request("t3", 2),
        finished("t3", "scratchpad_append", wrote_state=True),
    ]
    assert scratchpad_step_state(events, "t3") == ScratchpadStepState(
        readonly_successes=0, scratchpad_writes=1
    )
    assert scratchpad_step_state(events[:3], "t3") == ScratchpadStepState(
        readonly_successes=2, scratchpad_writes=0
    )


def test_scratchpad_step_state_ignores_failures_other_writers_and_other_turns() -> None:
    events = [
        request("t3", 1),
        finished("t3", "read_file", wrote_state=False, outcome=ToolOutcomeToolError(message="x")),
        finished("t3", "write_file", wrote_state=True),
        finished("t3", "scratchpad_set", wrote_state=True),
        request("other", 9),  # another turn's request does not reset this turn's step
        finished("other", "read_file", wrote_state=False),
        finished("t3", "grep", wrote_state=False),
    ]
    assert scratchpad_step_state(events, "t3") == ScratchpadStepState(
        readonly_successes=1, scratchpad_writes=1
    )


def test_lht_continuation_count_counts_the_turns_step_limit_continuations() -> None:
    events = [
        StepLimitContinuation(turn_id="t4", step_idx=20, lht_objective_injected=True),
        StepLimitContinuation(turn_id="t4", step_idx=40, lht_objective_injected=False),
    ]
    assert lht_continuation_count(events, "t4") == 2
    assert lht_continuation_count(events, "other-turn") == 0


def test_last_capacity_action_is_the_turns_latest_checkpoint_decision() -> None:
    events = [
        checkpoint("t6", 1, CapacityActionContinue()),
        checkpoint("t6", 2, CapacityActionTrim()),
        checkpoint("other", 3, CapacityActionContinue()),
    ]
    assert last_capacity_action(events, "t6") == CapacityActionTrim()
    assert last_capacity_action(events, "other") == CapacityActionContinue()
    assert last_capacity_action(events, "t0") is None


def test_projections_accept_envelopes() -> None:
    events = [
        Envelope(1, "e1", 0, "step_limit_continuation",
                 StepLimitContinuation(turn_id="t", step_idx=1, lht_objective_injected=True)),
        Envelope(2, "e2", 0, "scratchpad_summary_injected",
                 ScratchpadSummaryInjected(turn_id="t", at_step=1)),
    ]  # fmt: skip
    assert lht_continuation_count(events, "t") == 1
    assert scratchpad_summary_injected(events, "t")
