"""Text fields that carry tool arguments: stored redacted in the resource as in the action, in
the trail and in the stores; and what ``ToolCall.args_json`` makes of JSON strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from audit import REDACTED, AuditMapper, AuditTrail, ToolCall, attach_audit_trail
from audit._mapper import MAX_PARSED_ARGS_BYTES
from audit._redact import TextPlan, scan_plan
from audit.sinks import JsonlSink, SqliteSink
from eventbus import EventBus
from eventbus.events import (
    DeltaKind,
    KernelEvent,
    ModelDelta,
    PolicyDecision,
    ToolCallPlanned,
)

SECRET = "sk-LIVE-SECRET-123"
DECISION = PolicyDecision(approval_required=False, parallel_eligible=True, read_only=True)


def planned(input_json: str) -> ToolCallPlanned:
    return ToolCallPlanned(
        turn_id="t1",
        step_idx=0,
        call_id="c1",
        tool_name="http",
        input_json=input_json,
        decision=DECISION,
    )


def arg_delta(
    text: str, kind: DeltaKind = DeltaKind.TOOL_CALL_ARG, call_id: str | None = "c1"
) -> ModelDelta:
    return ModelDelta(turn_id="t1", step_idx=0, kind=kind, call_id=call_id, text=text)


# One event per catalogue class with a text field carrying tool arguments, with SECRET in it.
CARRIERS: list[KernelEvent] = [
    planned(f'{{"url": "https://x", "api_key": "{SECRET}"}}'),
    planned(f'{{"headers": {{"Authorization": "Bearer {SECRET}"}}}}'),
    planned(f'"{{\\"api_key\\": \\"{SECRET}\\"}}"'),  # double-encoded
    arg_delta(f'{{"api_key": "{SECRET}"}}'),
    arg_delta(SECRET),  # a piece with no key in it: the key came in an earlier piece
]


def test_the_catalogue_classes_with_argument_text_are_known() -> None:
    from eventbus.events import OS_EVENT_TYPES, SUPERVISOR_EVENT_TYPES, TURN_LOOP_EVENT_TYPES

    with_text = {
        cls.__name__
        for cls in (*SUPERVISOR_EVENT_TYPES, *TURN_LOOP_EVENT_TYPES, *OS_EVENT_TYPES)
        if isinstance(scan_plan(cls), TextPlan)
    }
    assert with_text == {"ToolCallPlanned", "ModelDelta"}


@pytest.mark.parametrize("event", CARRIERS, ids=lambda e: type(e).__name__)
def test_argument_text_is_redacted_in_resource_and_action(event: KernelEvent) -> None:
    mapper = AuditMapper()
    _, action, _ = mapper.map(event, "k")
    resource = mapper.resource(event)
    assert SECRET not in resource
    assert SECRET not in msgspec.json.encode(action).decode()
    assert REDACTED in resource


@pytest.mark.anyio
@pytest.mark.parametrize("store", ["sqlite", "jsonl"])
@pytest.mark.parametrize("event", CARRIERS, ids=lambda e: type(e).__name__)
async def test_argument_text_never_reaches_the_trail_or_the_store(
    tmp_path: Path, store: str, event: KernelEvent
) -> None:
    trail = AuditTrail()
    sink = SqliteSink(tmp_path / "a.db") if store == "sqlite" else JsonlSink(tmp_path / "a.jsonl")
    with sink:
        async with EventBus() as bus, attach_audit_trail(bus, trail, sink=sink) as auditor:
            bus.publish(event)
            await auditor.flush()
    [entry] = trail.entries()
    assert SECRET not in msgspec.json.encode(entry).decode()
    stored = [(p.name, p.read_bytes()) for p in tmp_path.iterdir()]  # noqa: ASYNC240
    assert stored
    for name, data in stored:  # the store, its WAL, its anchor
        assert SECRET.encode() not in data, name


def test_the_resource_holds_what_the_action_holds() -> None:
    event = planned('{"url": "https://x", "token": "t-1"}')
    mapper = AuditMapper()
    _, action, _ = mapper.map(event, "tool_call_planned")
    assert isinstance(action, ToolCall)
    resource = msgspec.json.decode(mapper.resource(event))
    assert resource["input_json"] == action.args_json == '{"token":"[REDACTED]","url":"https://x"}'
    assert resource["tool_name"] == "http"


def test_arguments_are_parsed_once_per_event() -> None:
    calls: list[str] = []

    class Counting(AuditMapper):
        def _args_json(self, raw: str) -> str:
            calls.append(raw)
            return super()._args_json(raw)

    mapper = Counting()
    event = planned('{"token": "t-1"}')
    mapper.map(event, "tool_call_planned")
    mapper.resource(event)
    assert len(calls) == 1
    mapper.resource(planned("".join(['{"token": ', '"t-1"}'])))  # equal, not the same: parsed
    assert len(calls) == 2


def test_argument_fragments_are_replaced_whole_and_text_deltas_kept() -> None:
    mapper = AuditMapper()
    stored = msgspec.json.decode(mapper.resource(arg_delta('"path": "/tmp"')))
    assert stored["text"] == "[REDACTED] (tool-call argument fragment, 14 bytes)"
    assert stored["call_id"] == "c1"
    text = msgspec.json.decode(mapper.resource(arg_delta("Hello", DeltaKind.TEXT, None)))
    assert text["text"] == "Hello"
    # a call id marks arguments whatever the kind says (fail closed)
    odd = msgspec.json.decode(mapper.resource(arg_delta("Hello", DeltaKind.TEXT)))
    assert odd["text"] == "[REDACTED] (tool-call argument fragment, 5 bytes)"
    untagged = msgspec.json.decode(mapper.resource(arg_delta("Hi", call_id=None)))
    assert untagged["text"] == "[REDACTED] (tool-call argument fragment, 2 bytes)"
    empty = msgspec.json.decode(mapper.resource(arg_delta("")))
    assert empty["text"] == ""


def test_without_a_redactor_argument_text_is_stored_as_it_is() -> None:
    event = planned(f'{{"api_key": "{SECRET}"}}')
    assert SECRET in AuditMapper(redact=None).resource(event)
    assert SECRET in AuditMapper(redact=None).resource(arg_delta(SECRET))


def test_a_custom_redactor_sees_the_parsed_arguments() -> None:
    seen: list[Any] = []

    def redact(value: Any) -> Any:
        seen.append(value)
        if isinstance(value, dict) and "url" in value:
            return {**value, "url": "<url>"}
        return value

    mapper = AuditMapper(redact=redact)
    resource = msgspec.json.decode(mapper.resource(planned('{"url": "https://x"}')))
    assert resource["input_json"] == '{"url":"<url>"}'
    assert {"url": "https://x"} in seen


def test_a_custom_event_with_a_json_text_field_is_redacted_too() -> None:
    class Call(msgspec.Struct, tag="call"):
        name: str
        params_json: str | None = None

    assert isinstance(scan_plan(Call), TextPlan)
    stored = msgspec.json.decode(
        AuditMapper().resource(Call(name="n", params_json='{"password": "hunter2"}'))
    )
    assert stored == {"name": "n", "params_json": '{"password":"[REDACTED]"}', "type": "call"}
    assert msgspec.json.decode(AuditMapper().resource(Call(name="n"))) == {
        "name": "n",
        "params_json": None,
        "type": "call",
    }


# -- args_json -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ('"password=hunter2"', "[REDACTED] (text arguments, 18 bytes)"),
        ('"Bearer abc"', "[REDACTED] (text arguments, 12 bytes)"),
        ('"{\\"api_key\\": \\"sk-LIVE-1\\"}"', '{"api_key":"[REDACTED]"}'),
        ('"[{\\"token\\": 1}, 2]"', '[{"token":"[REDACTED]"},2]'),
        ('"\\"password=hunter2\\""', "[REDACTED] (text arguments, 22 bytes)"),  # triple
        ('"pa\\u0073sword=hunter2"', "[REDACTED] (text arguments, 23 bytes)"),
        ('"ls -la"', '"ls -la"'),
        ('"\\"ls -la\\""', '"\\"ls -la\\""'),  # a JSON string in a JSON string: kept
        ('"{\\"cmd\\": \\"ls\\"}"', '{"cmd":"ls"}'),  # double-encoded, nothing secret
        ('"42"', "42"),
        ("not json password=hunter2", "[REDACTED] (unparsable arguments, 25 bytes)"),
        ("not json at all", "not json at all"),
    ],
)
def test_args_json_reads_json_strings_as_text_or_as_json(raw: str, stored: str) -> None:
    assert AuditMapper().args_json(raw) == stored


def test_args_json_keeps_json_strings_without_a_redactor() -> None:
    assert AuditMapper(redact=None).args_json('"password=hunter2"') == '"password=hunter2"'


def test_args_json_does_not_parse_huge_text() -> None:
    mapper = AuditMapper()
    fits = '{"data": "%s"}' % ("x" * (MAX_PARSED_ARGS_BYTES - 12))
    huge = '{"data": "%s"}' % ("x" * (MAX_PARSED_ARGS_BYTES - 11))
    assert len(fits) == MAX_PARSED_ARGS_BYTES
    assert mapper.args_json(fits).startswith('{"data":"xxx')  # parsed, re-encoded
    kept = mapper.args_json(huge)
    assert kept.startswith('{"data": "xxx')  # kept as text, cut
    head, marker = kept.split("…")
    assert marker == f"[truncated {len(huge) - len(head)} bytes]"
    secret = huge.replace("data", "token")
    assert mapper.args_json(secret) == (f"[REDACTED] (unparsable arguments, {len(secret)} bytes)")


def test_args_json_reads_lone_surrogates_as_question_marks() -> None:
    mapper = AuditMapper()
    assert mapper.args_json('{"path": "report-\udcff.txt"}') == '{"path":"report-?.txt"}'
    assert mapper.args_json("not json \udcff") == "not json ?"
    resource = msgspec.json.decode(mapper.resource(planned('{"path": "\udcff"}')))
    assert resource["input_json"] == '{"path":"?"}'
