"""MessagePack decodes free-form (``Any``) payloads to JSON values only.

MessagePack can carry what JSON cannot: ext values, timestamps, binary, and map keys that are
not strings. Decoded into an ``Any`` field (``tool_args``, ``context``) they made events that
``encode_json`` could not write, so one event from a peer broke the session log or the audit
trail that recorded it. ``decode_msgpack`` rejects them, naming where they are; typed fields
that declare ``bytes`` or ``datetime`` keep them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Annotated, Any, NamedTuple, TypedDict

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventbus import AnyKernelEvent, Envelope
from eventbus.bridges.nats import msgpack_codec
from eventbus.codec import decode_json, decode_msgpack, encode_json
from eventbus.events import ToolExecutionProgress, ToolExecutionStarted

Ext = msgspec.msgpack.Ext
WHEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def tool_started(tool_args: Any, **fields: Any) -> bytes:
    """MessagePack for a tool_execution_started event, with any MessagePack value inside."""
    return msgspec.msgpack.encode(
        {
            "event_type": "tool_execution_started",
            "session_id": "s",
            "tool_name": "t",
            "tool_call_id": "c",
            "tool_args": tool_args,
            **fields,
        }
    )


def is_json_value(value: Any) -> bool:
    """The JSON Value contract, checked independently of the codec."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is list:
        return all(map(is_json_value, value))
    if type(value) is dict:
        return all(type(k) is str and is_json_value(v) for k, v in value.items())
    return False


@pytest.mark.parametrize(
    ("tool_args", "got", "where"),
    [
        (Ext(1, b"x"), "ext", ""),
        ([{"k": Ext(5, b"")}], "ext", r"\[0\]\.k"),
        ({"blob": b"\x00\x01"}, "bytes", r"\.blob"),
        ([1, [WHEN]], "datetime", r"\[1\]\[0\]"),
        ({"not an identifier": [b""]}, "bytes", r"\[\.\.\.\]\[0\]"),
    ],
    ids=["ext", "nested-ext", "bin", "timestamp", "quoted-path"],
)
def test_non_json_values_in_any_payloads_are_validation_errors_at_their_path(
    tool_args: Any, got: str, where: str
) -> None:
    message = rf"^Expected a JSON value, got `{got}` - at `\$\.tool_args{where}`$"
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_msgpack(tool_started(tool_args))


@pytest.mark.parametrize(
    ("tool_args", "got", "where"),
    [
        ({1: "a"}, "int", ""),
        ({"x": {None: 1}}, "null", r"\.x"),
        ({"x": [{(1, 2): 0}]}, "array", r"\.x\[0\]"),
        ({b"k": 1}, "bytes", ""),
        ({"ok": 1, 2.5: 1}, "float", ""),
        ({WHEN: 1}, "datetime", ""),
    ],
    ids=["int", "nil", "array", "bin", "float", "timestamp"],
)
def test_map_keys_that_are_not_str_are_validation_errors_at_their_map(
    tool_args: Any, got: str, where: str
) -> None:
    message = rf"^Expected `str`, got `{got}` - at `key` in `\$\.tool_args{where}`$"
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_msgpack(tool_started(tool_args))


def test_the_optional_context_payloads_are_checked_too() -> None:
    with pytest.raises(
        msgspec.ValidationError, match=r"^Expected a JSON value, got `ext` - at `\$\.context\.a`$"
    ):
        decode_msgpack(tool_started({}, context={"a": Ext(1, b"")}))
    progress = {
        "event_type": "tool_execution_progress",
        "session_id": "s",
        "tool_call_id": "c",
        "tool_name": "t",
        "progress": "p",
        "context": [{3: 4}],
    }
    with pytest.raises(
        msgspec.ValidationError,
        match=r"^Expected `str`, got `int` - at `key` in `\$\.context\[0\]`$",
    ):
        decode_msgpack(msgspec.msgpack.encode(progress), ToolExecutionProgress)


def test_envelopes_and_the_bridge_codec_name_the_full_path() -> None:
    event = msgspec.msgpack.decode(tool_started({"k": "PLACEHOLDER"}))
    envelope = {"seq": 1, "event_id": "e", "ts_ns": 1, "kind": "k", "event": event}
    raw = msgspec.msgpack.encode(envelope).replace(
        msgspec.msgpack.encode("PLACEHOLDER"), msgspec.msgpack.encode(Ext(1, b"x"))
    )
    message = r"^Expected a JSON value, got `ext` - at `\$\.event\.tool_args\.k`$"
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_msgpack(raw, Envelope[AnyKernelEvent])
    with pytest.raises(msgspec.ValidationError, match=message):  # a generic class in a union
        decode_msgpack(raw, Envelope[AnyKernelEvent] | None)
    with pytest.raises(msgspec.ValidationError, match=r"at `\$\[0\]\.event\.tool_args\.k`$"):
        decode_msgpack(b"\x91" + raw, list[Envelope[AnyKernelEvent]])
    with pytest.raises(msgspec.ValidationError, match=message):
        msgpack_codec(AnyKernelEvent).decode(raw)


def test_decoding_as_any_checks_the_whole_document() -> None:
    assert decode_msgpack(msgspec.msgpack.encode({"a": [1, None]}), Any) == {"a": [1, None]}
    with pytest.raises(
        msgspec.ValidationError, match=r"^Expected a JSON value, got `ext` - at `\$`$"
    ):
        decode_msgpack(msgspec.msgpack.encode(Ext(1, b"")), Any)
    with pytest.raises(
        msgspec.ValidationError, match=r"^Expected `str`, got `int` - at `key` in `\$`$"
    ):
        decode_msgpack(msgspec.msgpack.encode({1: 2}), Any)


def test_json_values_and_nan_still_decode() -> None:
    args = {"a": [1, 2.5, None, True, "x", {"b": []}], "big": 2**64 - 1}
    event = decode_msgpack(tool_started(args))
    assert isinstance(event, ToolExecutionStarted)
    assert event.tool_args == args
    assert decode_json(encode_json(event)) == event
    # Documented: MessagePack may carry NaN and infinities in an Any payload (they are floats;
    # JSON writes them as null).
    odd = decode_msgpack(tool_started([math.nan, -math.inf]))
    assert isinstance(odd, ToolExecutionStarted)
    assert math.isnan(odd.tool_args[0])
    assert odd.tool_args[1] == -math.inf
    assert encode_json(odd.tool_args) == b"[null,null]"


class Payload(msgspec.Struct, frozen=True):
    raw: bytes
    at: dt.datetime
    extra: Any = None


class Node(msgspec.Struct, frozen=True):
    data: Any
    children: list[Node] = []


@dataclasses.dataclass
class Box:
    items: dict[str, Any]


class Pair(NamedTuple):
    n: int
    value: Any


class Row(TypedDict):
    cells: tuple[int, Any]


class Leaf(msgspec.Struct, frozen=True, tag=True):
    data: Any


class Chain(msgspec.Struct, frozen=True, tag=True):
    next: Chain | Leaf | None = None


class Sparse(TypedDict, total=False):
    n: int
    extra: Any


Described = Annotated[list[Any], msgspec.Meta(description="carries extra schema metadata")]


@pytest.mark.parametrize(
    ("tp", "good", "bad", "message"),
    [
        (
            Payload,
            Payload(raw=b"\x00", at=WHEN, extra=[1]),
            Payload(raw=b"\x00", at=WHEN, extra=[b"\x00"]),
            r"got `bytes` - at `\$\.extra\[0\]`$",
        ),
        (
            Node,
            Node(data=1, children=[Node(data={"a": 1})]),
            Node(data=1, children=[Node(data=2), Node(data={"a": WHEN})]),
            r"got `datetime` - at `\$\.children\[1\]\.data\.a`$",
        ),
        (list[Any], [1, "a"], [1, Ext(0, b"")], r"got `ext` - at `\$\[1\]`$"),
        (dict[Any, int], {"a": 1}, {"a": 1, 7: 2}, r"got `int` - at `key` in `\$`$"),
        (Box, Box(items={"a": [1]}), Box(items={"a": [{1: 1}]}), r"`key` in `\$\.items\.a\[0\]`$"),
        (Pair, Pair(1, [1]), Pair(1, [b""]), r"got `bytes` - at `\$\[1\]\[0\]`$"),
        (Row, {"cells": (1, {"a": 1})}, {"cells": (1, {"a": b""})}, r"at `\$\.cells\[1\]\.a`$"),
        (Payload | None, None, Payload(raw=b"", at=WHEN, extra=Ext(1, b"")), r"at `\$\.extra`$"),
        (list[Pair] | None, [Pair(1, 2)], [Pair(1, 2), Pair(2, b"")], r"at `\$\[1\]\[1\]`$"),
        (Described | None, [[1]], [[1], [Ext(2, b"")]], r"got `ext` - at `\$\[1\]\[0\]`$"),
        (Sparse, {"n": 1}, {"n": 1, "extra": [WHEN]}, r"got `datetime` - at `\$\.extra\[0\]`$"),
        (
            Chain,
            Chain(next=Chain(next=Leaf(data=[1]))),
            Chain(next=Chain(next=Leaf(data=[b""]))),
            r"got `bytes` - at `\$\.next\.next\.data\[0\]`$",
        ),
    ],
    ids=["typed-bytes-and-datetime", "recursive", "list", "dict-key", "dataclass", "namedtuple",
         "typeddict", "optional", "union-of-list", "annotated", "partial-typeddict",
         "recursive-union"],
)  # fmt: skip
def test_user_types_keep_typed_bytes_and_datetimes_but_check_their_any_fields(
    tp: Any, good: Any, bad: Any, message: str
) -> None:
    assert decode_msgpack(msgspec.msgpack.encode(good), tp) == good
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_msgpack(msgspec.msgpack.encode(bad), tp)


MSGPACK_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.binary(max_size=4)
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.builds(Ext, st.integers(0, 127), st.binary(max_size=3))
)
MSGPACK_KEYS = (
    st.text(max_size=4)
    | st.integers(-5, 5)
    | st.none()
    | st.booleans()
    | st.binary(max_size=2)
    | st.tuples(st.integers(0, 3), st.text(max_size=2))
)
MSGPACK_VALUES = st.recursive(
    MSGPACK_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(MSGPACK_KEYS, inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(tool_args=MSGPACK_VALUES, context=st.none() | MSGPACK_VALUES)
def test_every_event_decoded_from_msgpack_holds_json_values_and_encodes_as_json(
    tool_args: Any, context: Any
) -> None:
    raw = tool_started(tool_args, **({} if context is None else {"context": context}))
    try:
        event = decode_msgpack(raw)
    except msgspec.ValidationError:
        assert not (is_json_value(tool_args) and is_json_value(context))
        return
    assert isinstance(event, ToolExecutionStarted)
    assert is_json_value(event.tool_args)
    assert is_json_value(event.context)
    assert decode_json(encode_json(event)) == event
