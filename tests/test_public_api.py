"""The public names are pinned: adding or removing one is a deliberate, reviewed change."""

from __future__ import annotations

import eventbus
import eventbus.events

EVENTBUS_ALL = [
    "AnyKernelEvent",
    "BusStatistics",
    "Category",
    "Envelope",
    "EventBus",
    "KernelEvent",
    "OverflowPolicy",
    "Primitive",
    "Subscription",
    "SubscriptionStatistics",
    "category_for_kind",
]

EVENTS_ALL = [
    "ALL_EVENT_TYPES",
    "AgentCreated",
    "AgentFailed",
    "AgentGroupCreated",
    "AgentGroupMemberCompleted",
    "AgentOutput",
    "AgentPreempted",
    "AgentProcessChanged",
    "AgentSpawned",
    "AgentStarted",
    "AgentStopped",
    "AnyKernelEvent",
    "ApprovalRequested",
    "ApprovalResolved",
    "ApprovalVerdict",
    "AskUserRequest",
    "BudgetExceeded",
    "CalendarEventCreated",
    "CalendarEventDeleted",
    "CalendarEventUpdated",
    "CapabilityChanged",
    "CapacityAction",
    "CapacityActionAbort",
    "CapacityActionContinue",
    "CapacityActionHandoff",
    "CapacityActionTrim",
    "CapacityCheckpoint",
    "CapacityCheckpointKind",
    "Category",
    "CheckpointTaken",
    "CompactionArtifactCreated",
    "Compressed",
    "ContextOverflowRecovered",
    "ContextRenewed",
    "CycleAdvanced",
    "CycleBriefingInjected",
    "DeferredToolActivated",
    "DeltaKind",
    "EVENT_TYPES_BY_KIND",
    "EmailSent",
    "EvaluationComplete",
    "EvolutionMaxReached",
    "EvolutionStarted",
    "KERNEL_OBSERVATION_KINDS",
    "KernelEvent",
    "KnowledgePersisted",
    "KnowledgeRemoved",
    "LargeResultSpooled",
    "LayeredContextSeamInjected",
    "LoopGuardContinuation",
    "LoopGuardTriggered",
    "MemoryPlaneQueried",
    "MemoryQueried",
    "MemoryRecallUsed",
    "MemoryRecalled",
    "MemoryRetrievalResult",
    "MemoryStored",
    "MemoryValidationFailed",
    "MemoryWritten",
    "MessageRange",
    "MessageReceived",
    "MilestoneAdvanced",
    "MilestoneBlocked",
    "MilestoneEvidence",
    "ModelDelta",
    "ModelMessage",
    "ModelRequestIssued",
    "OS_EVENT_TYPES",
    "OsEvent",
    "OverflowStrategy",
    "PageIn",
    "PageInRequested",
    "PageOut",
    "PhaseCompleted",
    "PhaseStarted",
    "PolicyDecision",
    "Primitive",
    "ProjectActivated",
    "ProjectCreated",
    "ReasoningFragment",
    "Renewed",
    "RequestFingerprint",
    "Resumed",
    "Rollbacked",
    "SUPERVISOR_EVENT_TYPES",
    "SchemaVersion",
    "ScratchpadReminderInjected",
    "ScratchpadSummaryInjected",
    "SeedCreated",
    "SignalDisposed",
    "SteerInjected",
    "StepLimitContinuation",
    "SupervisorEvent",
    "Suspended",
    "TURN_LOOP_EVENT_TYPES",
    "TokenUsageUpdate",
    "ToolCallFinished",
    "ToolCallPlanned",
    "ToolCallStarted",
    "ToolExecutionFinished",
    "ToolExecutionProgress",
    "ToolExecutionStarted",
    "ToolGated",
    "ToolOutcome",
    "ToolOutcomeBlocked",
    "ToolOutcomeGuardHalt",
    "ToolOutcomeSuccess",
    "ToolOutcomeTimeout",
    "ToolOutcomeToolError",
    "TopicMemoryInjected",
    "TurnApprovalResolved",
    "TurnEnded",
    "TurnLoopEvent",
    "TurnLoopMode",
    "TurnOutcome",
    "TurnOutcomeBudget",
    "TurnOutcomeCompleted",
    "TurnOutcomeCycleHandoff",
    "TurnOutcomeFailed",
    "TurnOutcomeInterrupted",
    "TurnOutcomeLoopGuard",
    "TurnOutcomeMaxSteps",
    "TurnStarted",
    "Usage",
    "WorkflowBatchSpawned",
    "WorkflowCompleted",
    "category_for_kind",
    "primitive_for_kind",
]


def test_eventbus_exports_exactly_the_pinned_names() -> None:
    assert sorted(eventbus.__all__) == sorted(EVENTBUS_ALL)
    for name in eventbus.__all__:
        assert getattr(eventbus, name) is not None


def test_eventbus_events_exports_exactly_the_pinned_names() -> None:
    assert sorted(eventbus.events.__all__) == sorted(EVENTS_ALL)
    for name in eventbus.events.__all__:
        assert getattr(eventbus.events, name) is not None


def test_top_level_event_names_are_the_catalogue_objects() -> None:
    for name in ("AnyKernelEvent", "Category", "KernelEvent", "Primitive", "category_for_kind"):
        assert getattr(eventbus, name) is getattr(eventbus.events, name)


AUDIT_ALL = [
    "GENESIS_HASH",
    "REDACTED",
    "AccessDenied",
    "AgentExit",
    "AgentSpawn",
    "AuditAction",
    "AuditEntry",
    "AuditMapper",
    "AuditMode",
    "AuditTrail",
    "Auditor",
    "AuditorStatistics",
    "ConfigChange",
    "CronTrigger",
    "EventsDropped",
    "GitCommit",
    "MapFn",
    "MemoryRead",
    "MemoryWrite",
    "Other",
    "ProgramInstall",
    "Redactor",
    "ToolCall",
    "ToolResult",
    "TrailStatistics",
    "attach_audit_trail",
    "entry_hash",
    "entry_schema",
    "extract_agent_id",
    "is_secret_key",
    "kernel_event_to_audit_action",
    "map_kernel_event",
    "rebuild_audit_trail",
    "redact_secrets",
    "verify_chain",
]

AUDIT_SINKS_ALL = [
    "AuditSink",
    "JsonlContents",
    "JsonlSink",
    "SqliteSink",
    "read_jsonl",
    "verify_sink",
]


def test_audit_exports_exactly_the_pinned_names() -> None:
    import audit
    import audit.sinks

    assert sorted(audit.__all__) == sorted(AUDIT_ALL)
    assert sorted(audit.sinks.__all__) == sorted(AUDIT_SINKS_ALL)
    for module in (audit, audit.sinks):
        for name in module.__all__:
            assert getattr(module, name) is not None


REPLAY_ALL = [
    "DEFAULT_MAX_LINE_BYTES",
    "BudgetExceededRecord",
    "FsyncPolicy",
    "LogGap",
    "OsSnapshot",
    "ProcessRecord",
    "RecorderStatistics",
    "ScratchpadStepState",
    "SessionLog",
    "SessionLogRecorder",
    "SignalDisposedRecord",
    "SuspendRecord",
    "active_tools",
    "last_capacity_action",
    "lht_continuation_count",
    "log_has_required_categories",
    "read_log",
    "rebuild_os_snapshot",
    "replay",
    "scratchpad_step_state",
    "scratchpad_summary_injected",
]


def test_eventbus_replay_exports_exactly_the_pinned_names() -> None:
    import eventbus.replay

    assert sorted(eventbus.replay.__all__) == sorted(REPLAY_ALL)
    for name in eventbus.replay.__all__:
        assert getattr(eventbus.replay, name) is not None


TESTING_ALL = [
    "CapturedEvents",
    "Expectation",
    "assert_audited",
    "assert_closed",
    "assert_empty",
    "assert_lagged",
    "assert_received",
    "capture_events",
    "expect",
]


def test_eventbus_testing_exports_exactly_the_pinned_names() -> None:
    import eventbus.testing

    assert sorted(eventbus.testing.__all__) == sorted(TESTING_ALL)
    for name in eventbus.testing.__all__:
        assert getattr(eventbus.testing, name).__doc__, name


BRIDGES_NATS_ALL = [
    "MSG_ID_HEADER",
    "ORIGIN_HEADER",
    "BridgeStatistics",
    "Codec",
    "NatsBridge",
    "json_codec",
    "msgpack_codec",
    "subject_for",
]


def test_eventbus_bridges_nats_exports_exactly_the_pinned_names() -> None:
    import eventbus.bridges

    nats_module = __import__("pytest").importorskip("eventbus.bridges.nats")
    assert eventbus.bridges.__all__ == []
    assert sorted(nats_module.__all__) == sorted(BRIDGES_NATS_ALL)
    for name in BRIDGES_NATS_ALL:
        assert getattr(nats_module, name) is not None
