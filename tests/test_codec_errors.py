"""Bad input gets a typed msgspec error naming where it is, never a crash or a half event."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from eventbus import AnyKernelEvent, Envelope
from eventbus.codec import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    decode_json,
    decode_msgpack,
    encode_json,
    encode_msgpack,
)
from eventbus.events import AgentStarted, ToolExecutionStarted

U = "0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01"


def tool_started(args: str) -> bytes:
    return (
        b'{"event_type":"tool_execution_started","session_id":"s","tool_name":"t",'
        b'"tool_call_id":"c","tool_args":' + args.encode() + b"}"
    )


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_defaults_are_one_mebibyte_and_64_levels() -> None:
    assert DEFAULT_MAX_SIZE == 1024 * 1024
    assert DEFAULT_MAX_DEPTH == 64


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b'{"event_type":', r"^Input data was truncated$"),
        (b"not json", r"^JSON is malformed: invalid character \(byte 4\)$"),
        (
            f'{{"event_type":"agent_started","id":"{U}",}}'.encode(),
            r"^JSON is malformed: trailing comma in object \(byte 74\)$",
        ),
        (b"", r"^Input data was truncated$"),
    ],
)
def test_malformed_json_is_a_decode_error(doc: bytes, message: str) -> None:
    with pytest.raises(msgspec.DecodeError, match=message):
        decode_json(doc)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        # unknown event_type
        (b'{"event_type":"nope"}', r"^Invalid value 'nope' - at `\$\.event_type`$"),
        (f'{{"id":"{U}"}}'.encode(), r"^Object missing required field `event_type`$"),
        # wrong field type
        (
            b'{"event_type":"signal_disposed","turn":"2","signal_id":"s",'
            b'"disposition":"q","queue_depth":1}',
            r"^Expected `int`, got `str` - at `\$\.turn`$",
        ),
        (
            b'{"event_type":"agent_started","id":"not-a-uuid"}',
            r"^Invalid UUID - at `\$\.id`$",
        ),
        # missing required field
        (b'{"event_type":"agent_started"}', r"^Object missing required field `id`$"),
        # out of the Rust integer ranges
        (
            b'{"event_type":"memory_recalled","query":"q","count":-1}',
            r"^Expected `int` >= 0 - at `\$\.count`$",
        ),
        (
            b'{"event_type":"schema_version","version":4294967296}',
            r"^Expected `int` <= 4294967295 - at `\$\.version`$",
        ),
        # nested types
        (
            b'{"event_type":"turn_started","turn_id":"t","mode":"turbo","input_text":"x",'
            b'"max_steps":1}',
            r"^Invalid enum value 'turbo' - at `\$\.mode`$",
        ),
        (
            b'{"event_type":"turn_ended","turn_id":"t","outcome":{"type":"exploded"},'
            b'"total_steps":1}',
            r"^Invalid value 'exploded' - at `\$\.outcome\.type`$",
        ),
        (
            b'{"event_type":"tool_call_planned","turn_id":"t","step_idx":0,"call_id":"c",'
            b'"tool_name":"x","input_json":"{}","decision":{"approval_required":true}}',
            r"^Object missing required field `parallel_eligible` - at `\$\.decision`$",
        ),
        (b"[]", r"^Expected `object`, got `array`$"),
    ],
)
def test_invalid_events_are_validation_errors_naming_the_field(doc: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_json(doc)
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_msgpack(encode_msgpack(msgspec.json.decode(doc)))


def test_errors_inside_an_envelope_carry_the_full_path() -> None:
    doc = (
        b'{"seq":1,"event_id":"e","ts_ns":1,"kind":"signal_disposed","event":'
        b'{"event_type":"signal_disposed","turn":-1,"signal_id":"s","disposition":"q",'
        b'"queue_depth":1}}'
    )
    with pytest.raises(
        msgspec.ValidationError, match=r"^Expected `int` >= 0 - at `\$\.event\.turn`$"
    ):
        decode_json(doc, type=Envelope[AnyKernelEvent])
    with pytest.raises(msgspec.ValidationError, match=r"^Object missing required field `event`$"):
        decode_json(
            b'{"seq":1,"event_id":"e","ts_ns":1,"kind":"k"}', type=Envelope[AnyKernelEvent]
        )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_rejected_with_their_path(literal: str) -> None:
    doc = (
        f'{{"event_type":"evolution_max_reached","seed_id":"{U}","final_score":{literal},'
        '"iterations":1}'
    )
    message = rf"^Non-finite number `{literal}` is not valid JSON - at `\$\.final_score`$"
    with pytest.raises(msgspec.DecodeError, match=message):
        decode_json(doc.encode())
    with pytest.raises(msgspec.DecodeError, match=message):
        decode_json(doc)
    with pytest.raises(
        msgspec.DecodeError,
        match=rf"^Non-finite number `{literal}` is not valid JSON - at `\$\.tool_args\.x\[1\]`$",
    ):
        decode_json(tool_started(f'{{"x":[1,{literal}]}}'))


def test_non_finite_numbers_by_overflow_are_rejected_in_typed_and_any_fields() -> None:
    doc = f'{{"event_type":"evolution_max_reached","seed_id":"{U}","final_score":-1e999,'
    with pytest.raises(
        msgspec.ValidationError, match=r"^Number out of range - at `\$\.final_score`$"
    ):
        decode_json((doc + '"iterations":1}').encode())
    with pytest.raises(
        msgspec.ValidationError, match=r"^Number out of range - at `\$\.tool_args\[\.\.\.\]\[0\]`$"
    ):
        decode_json(tool_started('{"x":[1e999]}'))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), r"^Expected `float` >= -1\.7976931348623157e\+308 - at `\$\.final_score`$"),
        (float("inf"), r"^Expected `float` <= 1\.7976931348623157e\+308 - at `\$\.final_score`$"),
    ],
)
def test_non_finite_msgpack_floats_are_rejected_in_typed_fields(
    value: float, message: str
) -> None:
    doc = {
        "event_type": "evolution_max_reached",
        "seed_id": U,
        "final_score": value,
        "iterations": 1,
    }
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_msgpack(msgspec.msgpack.encode(doc))


def test_nesting_deeper_than_the_limit_is_rejected_with_its_path() -> None:
    # The event is level 1, so tool_args may hold 63 levels of nested objects, not 64.
    assert decode_json(tool_started(nested(63)))
    with pytest.raises(
        msgspec.DecodeError,
        match=r"^Input is nested deeper than max_depth=64 - "
        r"at `\$\.tool_args\.a\.a\.a\.a\.a\.a\.a\.\.\.`$",
    ):
        decode_json(tool_started(nested(64)))


def test_depth_limit_is_configurable_and_counts_arrays_too() -> None:
    doc = tool_started('{"a":[[1]]}')  # levels: event 1, tool_args 2, list 3, list 4
    assert decode_json(doc, max_depth=4)
    with pytest.raises(
        msgspec.DecodeError,
        match=r"^Input is nested deeper than max_depth=3 - at `\$\.tool_args\.a\[0\]`$",
    ):
        decode_json(doc, max_depth=3)
    with pytest.raises(
        msgspec.DecodeError,
        match=r"^Input is nested deeper than max_depth=3 - at `\$\.tool_args\.a\[0\]`$",
    ):
        decode_msgpack(encode_msgpack(decode_json(doc)), max_depth=3)


def test_many_shallow_containers_are_not_too_deep() -> None:
    # More opening brackets than max_depth, but side by side: the exact walk accepts them.
    doc = tool_started("[" + ",".join(["[1]"] * 200) + "]")
    event = decode_json(doc)
    assert isinstance(event, ToolExecutionStarted)
    assert len(event.tool_args) == 200
    assert decode_msgpack(encode_msgpack(event)) == event


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    event = decode_json(tool_started('{"code":"' + "[{" * 500 + '"}'))
    assert isinstance(event, ToolExecutionStarted)


def test_nesting_beyond_the_interpreter_stack_is_a_depth_error_not_a_crash() -> None:
    for doc in (b"[" * 200_000 + b"]" * 200_000, b"[" * 200_000):
        with pytest.raises(
            msgspec.DecodeError, match=r"^Input is nested deeper than max_depth=64 - at `\$`$"
        ):
            decode_json(doc)
    packed = b"\x91" * 200_000 + b"\x01"
    with pytest.raises(
        msgspec.DecodeError, match=r"^Input is nested deeper than max_depth=64 - at `\$`$"
    ):
        decode_msgpack(packed)


def test_documents_larger_than_max_size_are_rejected_before_decoding() -> None:
    event = AgentStarted(id=uuid.UUID(U))
    data = encode_json(event)
    assert decode_json(data, max_size=len(data)) == event
    with pytest.raises(
        msgspec.DecodeError,
        match=rf"^Input is {len(data)} bytes, larger than max_size={len(data) - 1} - at `\$`$",
    ):
        decode_json(data, max_size=len(data) - 1)
    with pytest.raises(
        msgspec.DecodeError,
        match=r"^Input is 1048577 bytes, larger than max_size=1048576 - at `\$`$",
    ):
        decode_json(b" " * (1024 * 1024 + 1))
    packed = encode_msgpack(event)
    with pytest.raises(
        msgspec.DecodeError,
        match=rf"^Input is {len(packed)} bytes, larger than max_size=10 - at `\$`$",
    ):
        decode_msgpack(packed, max_size=10)


def test_str_input_is_measured_in_utf8_bytes() -> None:
    doc = encode_json(AgentStarted(id=uuid.UUID(U))).decode()
    doc = doc[:-1] + ',"note":"' + "é" * 10 + '"}'  # 10 characters, 20 bytes
    size = len(doc.encode())
    assert decode_json(doc, max_size=size)
    with pytest.raises(
        msgspec.DecodeError, match=rf"^Input is {size} bytes, larger than max_size={size - 1}"
    ):
        decode_json(doc, max_size=size - 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": 0}, r"^max_size must be >= 1, got 0$"),
        ({"max_depth": 0}, r"^max_depth must be >= 1, got 0$"),
        ({"max_size": -5, "max_depth": 3}, r"^max_size must be >= 1, got -5$"),
    ],
)
def test_bad_limits_are_value_errors(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_json(b"{}", **kwargs)
    with pytest.raises(ValueError, match=message):
        decode_msgpack(b"\x80", **kwargs)


def test_bad_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError, match=r"^data must be bytes-like, got str$"):
        decode_msgpack("abc")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^Type '42' is not supported$"):
        decode_json(b"{}", type=42)
    with pytest.raises(TypeError, match=r"^Encoding objects of type object is unsupported$"):
        encode_json(object())


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"\xc1", r"^MessagePack data is malformed: invalid opcode '\\xc1' \(byte 0\)$"),
        (b"\x81\xa1", r"^Input data was truncated$"),
    ],
)
def test_malformed_msgpack_is_a_decode_error(doc: bytes, message: str) -> None:
    with pytest.raises(msgspec.DecodeError, match=message):
        decode_msgpack(doc)
