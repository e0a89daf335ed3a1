"""schemas/: generated, in sync with the classes, valid, and validating what the codec writes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
from hypothesis import given, settings
from test_events_samples import event_strategy, sample_event

import eventbus.schema as schema
from eventbus import Category, Envelope, KernelEvent
from eventbus.codec import encode_json
from eventbus.events import ALL_EVENT_TYPES

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
FAMILY_FILE = {
    "supervisor": "supervisor_event.json",
    "turn_loop": "turn_loop_event.json",
    "os": "os_event.json",
}


def validator(name: str) -> jsonschema.protocols.Validator:
    doc = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(doc)


VALIDATORS = {name: validator(name) for name in [*FAMILY_FILE.values(), "kernel_event.json"]}
ENVELOPE = validator("envelope.json")


def test_schema_files_are_exactly_the_generated_ones() -> None:
    # The drift test: regenerate in memory and compare with the committed files.
    generated = schema.generate()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMAS.iterdir() if p.is_file()}
    assert sorted(on_disk) == sorted(generated)
    for name, text in generated.items():
        assert on_disk[name] == text, f"schemas/{name} is stale: python -m eventbus.schema --write"
    assert schema.check(SCHEMAS) == []


def test_generation_is_deterministic_and_pretty() -> None:
    first, second = schema.generate(), schema.generate()
    assert first == second
    for name, text in first.items():
        assert text.endswith("\n")
        if name.endswith(".json"):
            doc = json.loads(text)
            assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            assert doc["title"] == name.removesuffix(".json")


@pytest.mark.parametrize("name", [f"{n}.json" for n in schema.WIRE_TYPES])
def test_every_schema_is_a_valid_json_schema(name: str) -> None:
    doc = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(doc)
    # Generic definitions get readable names.
    assert all("eventbus." not in key for key in doc.get("$defs", {}))


@pytest.mark.parametrize("cls", ALL_EVENT_TYPES, ids=lambda c: c.__name__)
def test_encoded_events_of_every_class_validate_against_the_schema_files(
    cls: type[KernelEvent],
) -> None:
    event = sample_event(cls)
    instance = json.loads(encode_json(event))
    VALIDATORS["kernel_event.json"].validate(instance)
    VALIDATORS[FAMILY_FILE[schema.family_of(cls)]].validate(instance)
    env = Envelope(seq=1, event_id="e-1", ts_ns=1, kind=instance["event_type"], event=event)
    ENVELOPE.validate(json.loads(encode_json(env)))
    # ...and only its own family's schema accepts it.
    for family, name in FAMILY_FILE.items():
        if family != schema.family_of(cls):
            assert not VALIDATORS[name].is_valid(instance)


@settings(max_examples=200, deadline=None)
@given(event=event_strategy())
def test_generated_events_validate_against_the_schema(event: KernelEvent) -> None:
    VALIDATORS["kernel_event.json"].validate(json.loads(encode_json(event)))


@pytest.mark.parametrize(
    ("instance", "why"),
    [
        ({"event_type": "nope"}, "unknown event_type"),
        ({"event_type": "agent_started"}, "missing id"),
        ({"event_type": "signal_disposed", "turn": "2", "signal_id": "s",
          "disposition": "q", "queue_depth": 1}, "turn is a string"),
        ({"event_type": "memory_recalled", "query": "q", "count": -1}, "negative count"),
        ({"event_type": "turn_ended", "turn_id": "t", "outcome": {"type": "exploded"},
          "total_steps": 1}, "unknown outcome"),
        ({"event_type": "turn_started", "turn_id": "t", "mode": "turbo", "input_text": "",
          "max_steps": 1}, "unknown mode"),
    ],
)  # fmt: skip
def test_the_schema_rejects_what_the_decoder_rejects(instance: dict[str, Any], why: str) -> None:
    assert not VALIDATORS["kernel_event.json"].is_valid(instance), why


# -- shape tests: one event of each family, pinned byte for byte --------------------------------


def test_shape_of_a_supervisor_event() -> None:
    from eventbus.events import ToolExecutionProgress

    event = ToolExecutionProgress(
        session_id="s-abc",
        tool_call_id="call_42",
        tool_name="browse",
        progress="loading https://example.com",
        tab_id=uuid.UUID("0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01"),
    )
    assert encode_json(event) == (
        b'{"event_type":"tool_execution_progress",'
        b'"progress":"loading https://example.com",'
        b'"session_id":"s-abc",'
        b'"tab_id":"0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01",'
        b'"tool_call_id":"call_42",'
        b'"tool_name":"browse"}'
    )


def test_shape_of_a_turn_loop_event() -> None:
    from eventbus.events import TurnLoopMode, TurnStarted

    event = TurnStarted(
        turn_id="TURN-001", mode=TurnLoopMode.AGENT, input_text="hello", max_steps=20
    )
    assert encode_json(event) == (
        b'{"event_type":"turn_started","input_text":"hello","max_steps":20,'
        b'"mode":"agent","turn_id":"TURN-001"}'
    )


def test_shape_of_a_turn_loop_event_with_nested_types() -> None:
    from eventbus.events import (
        CompactionArtifactCreated,
        MessageRange,
        ModelRequestIssued,
        RequestFingerprint,
        ToolCallFinished,
        ToolOutcomeBlocked,
    )

    assert encode_json(
        ModelRequestIssued(
            turn_id="TURN-001",
            step_idx=1,
            request_fp=RequestFingerprint(static_prefix_sha256="aaabbb", full_prefix_sha256="ccc"),
            token_budget=16000,
        )
    ) == (
        b'{"event_type":"model_request_issued","request_fp":{"full_prefix_sha256":"ccc",'
        b'"static_prefix_sha256":"aaabbb"},"step_idx":1,"token_budget":16000,'
        b'"turn_id":"TURN-001"}'
    )
    assert encode_json(
        ToolCallFinished(
            turn_id="TURN-001",
            call_id="CALL-001",
            tool_name="read_file",
            outcome=ToolOutcomeBlocked("policy"),
            duration_ms=42,
            wrote_state=False,
        )
    ) == (
        b'{"call_id":"CALL-001","duration_ms":42,"event_type":"tool_call_finished",'
        b'"outcome":{"reason":"policy","type":"blocked"},"tool_name":"read_file",'
        b'"turn_id":"TURN-001","wrote_state":false}'
    )
    assert encode_json(
        CompactionArtifactCreated(
            turn_id="t", artifact_id="a1", replaced_range=MessageRange(3, 9), summary_token_count=5
        )
    ) == (
        b'{"artifact_id":"a1","event_type":"compaction_artifact_created",'
        b'"replaced_range":{"from":3,"to":9},"summary_token_count":5,"turn_id":"t"}'
    )


def test_shape_of_an_os_event() -> None:
    from eventbus.events import AgentProcessChanged

    event = AgentProcessChanged(
        turn=4,
        agent_id="child-1",
        parent_session_id="parent",
        role="worker",
        isolation="shared",
        context_inheritance="none",
        state="joined",
        result_termination="completed",
    )
    assert encode_json(event) == (
        b'{"agent_id":"child-1","context_inheritance":"none",'
        b'"event_type":"agent_process_changed","isolation":"shared",'
        b'"parent_session_id":"parent","permitted_capability_ids":[],'
        b'"result_termination":"completed","role":"worker","session_id":null,'
        b'"state":"joined","turn":4}'
    )


def test_shape_of_an_envelope() -> None:
    from eventbus.events import Resumed

    env = Envelope(seq=7, event_id="e-7", ts_ns=99, kind="resumed", event=Resumed(turn=3))
    assert encode_json(env) == (
        b'{"causation_id":null,"correlation_id":null,'
        b'"event":{"event_type":"resumed","reason":"","session_id":null,"turn":3},'
        b'"event_id":"e-7","kind":"resumed","origin":null,"replayed":false,"seq":7,"ts_ns":99}'
    )


# -- the generated table and the command line -----------------------------------------------


def test_readme_table_lists_every_kind_with_its_class_family_and_category() -> None:
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    assert "python -m eventbus.schema --write" in readme
    assert "Generated" in readme
    for cls in ALL_EVENT_TYPES:
        row = (
            f"| `{cls.__struct_config__.tag}` | `{cls.__name__}` | {schema.family_of(cls)} "
            f"| {cls.category.value} | {cls.category.primitive.value} |"
        )
        assert row in readme


def test_family_of_refuses_user_defined_events() -> None:
    class Mine(KernelEvent, tag="mine", frozen=True, kw_only=True):
        category: ClassVar[Category] = Category.MM

    with pytest.raises(ValueError, match=r"^cls must be a built-in event class, got "):
        schema.family_of(Mine)


def test_write_then_check_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "out"
    assert schema.check(target) == sorted(schema.generate())
    assert schema.write(target) == sorted(schema.generate())
    assert schema.check(target) == []
    assert schema.write(target) == []  # nothing changed, nothing rewritten
    (target / "os_event.json").write_text("{}\n", encoding="utf-8")
    (target / "retired.json").write_text("{}\n", encoding="utf-8")
    (target / "notes.txt").write_text("kept\n", encoding="utf-8")
    assert schema.check(target) == ["os_event.json", "retired.json"]
    assert schema.write(target) == ["os_event.json"]
    assert (target / "notes.txt").exists()
    (target / "envelope.json").write_bytes(b"\xff\xfe damaged")  # not UTF-8: stale, no error
    assert schema.check(target) == ["envelope.json", "retired.json"]
    assert schema.write(target) == ["envelope.json"]
    assert schema.check(target) == ["retired.json"]


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schemas"
    assert schema.main(["--check", str(target)]) == 1
    assert f"stale: {target / 'kernel_event.json'}" in capsys.readouterr().err
    assert schema.main(["--write", str(target)]) == 0
    assert f"wrote {target / 'README.md'}" in capsys.readouterr().out
    assert schema.main(["--check", str(target)]) == 0
    assert capsys.readouterr().out == f"{target}: up to date\n"
    assert schema.main(["--type", "envelope"]) == 0
    assert capsys.readouterr().out == schema.render_schema("envelope")
    assert schema.main([]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "kernel_event"


def test_module_runs_as_a_command_and_finds_the_committed_schemas_fresh() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eventbus.schema", "--check", str(SCHEMAS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{SCHEMAS}: up to date\n"
