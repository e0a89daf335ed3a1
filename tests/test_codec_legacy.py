"""Old and foreign JSON still decodes: oxios's externally tagged form, and serde defaults."""

from __future__ import annotations

import uuid

import msgspec
import pytest

import eventbus.events as ev
from eventbus.codec import decode_json, decode_oxios_json, encode_json

A = "0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01"
B = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e02"
C = "2d3e4f5a-6b7c-4d8e-9fa0-1b2c3d4e5f03"

# One hand-written oxios document per supervisor variant, as serde_json writes the enum.
OXIOS_JSON = {
    "AgentCreated": f'{{"AgentCreated":{{"id":"{A}","name":"researcher"}}}}',
    "AgentStarted": f'{{"AgentStarted":{{"id":"{A}"}}}}',
    "AgentStopped": f'{{"AgentStopped":{{"id":"{A}","success":true}}}}',
    "AgentFailed": f'{{"AgentFailed":{{"id":"{A}","error":"boom"}}}}',
    "MessageReceived": f'{{"MessageReceived":{{"from":"{A}","content":"hi"}}}}',
    "SeedCreated": f'{{"SeedCreated":{{"seed_id":"{B}"}}}}',
    "EvaluationComplete": f'{{"EvaluationComplete":{{"seed_id":"{B}","passed":false}}}}',
    "PhaseStarted": '{"PhaseStarted":{"session_id":"s1","phase":"Interview"}}',
    "PhaseCompleted": (
        '{"PhaseCompleted":{"session_id":"s1","phase":"Interview","result_summary":"ok"}}'
    ),
    "AgentOutput": f'{{"AgentOutput":{{"session_id":"s1","agent_id":"{A}","output":"done"}}}}',
    "ApprovalRequested": (
        f'{{"ApprovalRequested":{{"id":"{C}","tool_name":"shell_exec","action":"exec",'
        '"resource":"/bin/rm","reason":"destructive","session_id":"s1"}}'
    ),
    "ApprovalResolved": f'{{"ApprovalResolved":{{"id":"{C}","approved":true}}}}',
    "MemoryStored": '{"MemoryStored":{"id":"m-1","memory_type":"fact","source":"chat"}}',
    "MemoryRecalled": '{"MemoryRecalled":{"query":"rust errors","count":3}}',
    "AgentGroupCreated": f'{{"AgentGroupCreated":{{"group_id":"{B}","agent_count":4}}}}',
    "AgentGroupMemberCompleted": (
        f'{{"AgentGroupMemberCompleted":{{"group_id":"{B}","agent_id":"{A}","success":true}}}}'
    ),
    "ProjectCreated": (
        f'{{"ProjectCreated":{{"project_id":"{C}","name":"oxios","source":"git"}}}}'
    ),
    "ProjectActivated": f'{{"ProjectActivated":{{"project_id":"{C}","name":"oxios"}}}}',
    "EvolutionStarted": (
        f'{{"EvolutionStarted":{{"seed_id":"{A}","new_seed_id":"{B}","iteration":0}}}}'
    ),
    "EvolutionMaxReached": (
        f'{{"EvolutionMaxReached":{{"seed_id":"{A}","final_score":0.82,"iterations":5}}}}'
    ),
    "ToolExecutionStarted": (
        '{"ToolExecutionStarted":{"session_id":"s1","tool_name":"read_file",'
        '"tool_call_id":"call_1","tool_args":{"path":"/src/main.rs"}}}'
    ),
    "ToolExecutionFinished": (
        '{"ToolExecutionFinished":{"session_id":"s1","tool_call_id":"call_1",'
        '"tool_name":"read_file","duration_ms":234,"is_error":false,'
        '"output_summary":"fn main() {}"}}'
    ),
    "ToolExecutionProgress": (
        '{"ToolExecutionProgress":{"session_id":"s1","tool_call_id":"call_1",'
        f'"tool_name":"browse","progress":"loading","tab_id":"{B}",'
        '"context":{"kind":"navigate"}}}'
    ),
    "MemoryRecallUsed": (
        '{"MemoryRecallUsed":{"session_id":"s1","query":"rust errors","count":3,"source":"warm"}}'
    ),
    "TokenUsageUpdate": (
        '{"TokenUsageUpdate":{"session_id":"s1","input_tokens":1234,"output_tokens":567}}'
    ),
    "ReasoningFragment": (
        '{"ReasoningFragment":{"session_id":"s1","content":"compaction done",'
        '"source":"compaction"}}'
    ),
    "CalendarEventCreated": (
        '{"CalendarEventCreated":{"uid":"ev-1","title":"standup",'
        '"start":"2025-01-06T09:00:00Z","end":"2025-01-06T09:15:00Z"}}'
    ),
    "CalendarEventUpdated": '{"CalendarEventUpdated":{"uid":"ev-1","title":"standup (moved)"}}',
    "CalendarEventDeleted": '{"CalendarEventDeleted":{"uid":"ev-1","title":"standup"}}',
    "EmailSent": (
        '{"EmailSent":{"subject":"Weekly report","message_id":"<m1@oxios>",'
        '"template_name":"weekly"}}'
    ),
    "KnowledgePersisted": (
        '{"KnowledgePersisted":{"session_id":"s1","message_index":12,'
        '"path":"notes/rust.md","source":"user"}}'
    ),
    "KnowledgeRemoved": '{"KnowledgeRemoved":{"session_id":"s1","message_index":12}}',
    "AskUserRequest": (
        '{"AskUserRequest":{"id":"q-1","question":"Proceed?","options":["yes","no"]}}'
    ),
}


def test_every_supervisor_variant_has_a_hand_written_oxios_document() -> None:
    assert list(OXIOS_JSON) == [cls.__name__ for cls in ev.SUPERVISOR_EVENT_TYPES]


@pytest.mark.parametrize("variant", list(OXIOS_JSON))
def test_oxios_externally_tagged_json_decodes(variant: str) -> None:
    text = OXIOS_JSON[variant]
    event = decode_oxios_json(text.encode())
    assert type(event).__name__ == variant
    # The fields are the ones written: re-encoding gives the same object plus the tag.
    body = msgspec.json.decode(text)[variant]
    encoded = msgspec.json.decode(encode_json(event))
    assert encoded == {"event_type": type(event).__struct_config__.tag, **body}
    assert decode_oxios_json(text) == event  # str input too


def test_oxios_documents_keep_uuid_and_json_values() -> None:
    event = decode_oxios_json(OXIOS_JSON["ToolExecutionProgress"])
    assert isinstance(event, ev.ToolExecutionProgress)
    assert event.tab_id == uuid.UUID(B)
    assert event.context == {"kind": "navigate"}
    msg = decode_oxios_json(OXIOS_JSON["MessageReceived"])
    assert isinstance(msg, ev.MessageReceived)
    assert msg.from_ == uuid.UUID(A)


def test_legacy_tool_execution_progress_without_tab_id() -> None:
    # The seed's own legacy document: tab_id and context absent.
    legacy = """{
        "ToolExecutionProgress": {
            "session_id": "s-old",
            "tool_call_id": "call_legacy",
            "tool_name": "browse",
            "progress": "step 1"
        }
    }"""
    event = decode_oxios_json(legacy)
    assert event == ev.ToolExecutionProgress(
        session_id="s-old", tool_call_id="call_legacy", tool_name="browse", progress="step 1"
    )
    assert isinstance(event, ev.ToolExecutionProgress)
    assert event.tab_id is None
    assert b"tab_id" not in encode_json(event)
    assert b"context" not in encode_json(event)


def test_oxios_1_0_agent_stopped_without_success_is_a_plain_stop() -> None:
    event = decode_oxios_json(f'{{"AgentStopped":{{"id":"{A}"}}}}')
    assert event == ev.AgentStopped(id=uuid.UUID(A), success=False)
    assert b'"success":false' in encode_json(event)


@pytest.mark.parametrize(
    ("variant", "body", "expected"),
    [
        (
            "ApprovalRequested",
            f'{{"id":"{C}","tool_name":"t","action":"a","resource":"r","reason":"x"}}',
            {"session_id": None},
        ),
        (
            "ToolExecutionStarted",
            '{"session_id":"s","tool_name":"t","tool_call_id":"c","tool_args":null}',
            {"context": None, "tool_args": None},
        ),
        ("EmailSent", '{"subject":"s","message_id":"m"}', {"template_name": None}),
    ],
)
def test_oxios_optional_fields_default_when_absent(
    variant: str, body: str, expected: dict[str, object]
) -> None:
    event = decode_oxios_json(f'{{"{variant}":{body}}}')
    for name, value in expected.items():
        assert getattr(event, name) == value


def test_oxios_1_0_approval_requested_without_tool_name_is_rejected() -> None:
    # tool_name has no serde default in the oxios version the catalogue follows.
    doc = f'{{"ApprovalRequested":{{"id":"{C}","action":"a","resource":"r","reason":"x"}}}}'
    with pytest.raises(
        msgspec.ValidationError,
        match=r"^Object missing required field `tool_name` - at `\$\.ApprovalRequested`$",
    ):
        decode_oxios_json(doc)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ('{"Nope":{}}', r"^Object contains unknown field `Nope`$"),
        ("{}", r"^Expected an object with exactly one oxios variant key, got none - at `\$`$"),
        (
            f'{{"AgentStarted":{{"id":"{A}"}},"SeedCreated":{{"seed_id":"{B}"}}}}',
            r"^Expected an object with exactly one oxios variant key, "
            r"got `AgentStarted`, `SeedCreated` - at `\$`$",
        ),
        ('{"AgentStarted":{"id":"not-a-uuid"}}', r"^Invalid UUID - at `\$\.AgentStarted\.id`$"),
        ('"AgentStarted"', r"^Expected `object`, got `str`$"),
        (
            '{"MemoryRecalled":{"query":"q","count":-1}}',
            r"^Expected `int` >= 0 - at `\$\.MemoryRecalled\.count`$",
        ),
    ],
)
def test_bad_oxios_documents_are_rejected_with_a_path(doc: str, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_oxios_json(doc)


def test_oxios_decoding_applies_the_size_limit() -> None:
    with pytest.raises(msgspec.DecodeError, match=r"^Input is \d+ bytes, larger than max_size=16"):
        decode_oxios_json(OXIOS_JSON["AgentStarted"], max_size=16)


# -- internally tagged JSON written before serde-default fields existed -----------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            f'{{"event_type":"agent_stopped","id":"{A}"}}',
            ev.AgentStopped(id=uuid.UUID(A), success=False),
        ),
        (
            '{"event_type":"topic_memory_injected","turn_id":"t","step_idx":1}',
            ev.TopicMemoryInjected(turn_id="t", step_idx=1, block_token_est=0),
        ),
        (
            '{"event_type":"memory_plane_queried","turn_id":"t","step_idx":1,'
            '"layer":"episodic","query_key":"k"}',
            ev.MemoryPlaneQueried(
                turn_id="t", step_idx=1, layer="episodic", query_key="k", compiler_source=""
            ),
        ),
        (
            '{"event_type":"capacity_checkpoint","turn_id":"t","step_idx":2,'
            '"kind":"post_tool","tokens_used":8000,"token_budget":32000,'
            '"action":{"type":"continue"}}',
            ev.CapacityCheckpoint(
                turn_id="t",
                step_idx=2,
                kind=ev.CapacityCheckpointKind.POST_TOOL,
                tokens_used=8000,
                token_budget=32000,
                action=ev.CapacityActionContinue(),
                cooldown_blocked=False,
            ),
        ),
        (
            '{"event_type":"model_message","turn_id":"t","step_idx":0,'
            '"usage":{"input_tokens":10,"output_tokens":5},"block_count":1}',
            ev.ModelMessage(
                turn_id="t",
                step_idx=0,
                usage=ev.Usage(input_tokens=10, output_tokens=5),
                block_count=1,
            ),
        ),
        (
            '{"event_type":"tool_call_finished","turn_id":"t","call_id":"c",'
            '"tool_name":"read_file","outcome":{"type":"success"},"duration_ms":42,'
            '"wrote_state":false}',
            ev.ToolCallFinished(
                turn_id="t",
                call_id="c",
                tool_name="read_file",
                outcome=ev.ToolOutcomeSuccess(),
                duration_ms=42,
                wrote_state=False,
            ),
        ),
        (
            '{"event_type":"model_delta","turn_id":"t","step_idx":0,"kind":"text","text":"he"}',
            ev.ModelDelta(turn_id="t", step_idx=0, kind=ev.DeltaKind.TEXT, text="he"),
        ),
        (
            '{"event_type":"signal_disposed","turn":2,"signal_id":"sig-a",'
            '"disposition":"queue","queue_depth":1}',
            ev.SignalDisposed(turn=2, signal_id="sig-a", disposition="queue", queue_depth=1),
        ),
    ],
)
def test_json_without_defaulted_fields_decodes(doc: str, expected: ev.KernelEvent) -> None:
    assert decode_json(doc) == expected


def test_skip_if_empty_fields_are_omitted_exactly_when_empty() -> None:
    quiet = ev.ToolCallFinished(
        turn_id="t",
        call_id="c",
        tool_name="x",
        outcome=ev.ToolOutcomeTimeout(),
        duration_ms=1,
        wrote_state=True,
    )
    assert b"result_preview" not in encode_json(quiet)
    loud = msgspec.structs.replace(quiet, result_preview="42 lines")
    assert b'"result_preview":"42 lines"' in encode_json(loud)
    # serde-default fields without skip_serializing_if are always written.
    assert b'"cooldown_blocked":false' in encode_json(
        ev.CapacityCheckpoint(
            turn_id="t",
            step_idx=0,
            kind=ev.CapacityCheckpointKind.PRE_REQUEST,
            tokens_used=0,
            token_budget=1,
            action=ev.CapacityActionTrim(),
        )
    )
