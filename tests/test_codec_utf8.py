"""Text that is not valid Unicode is a msgspec.DecodeError, wherever it sits in the document.

A decoder that let UnicodeDecodeError or UnicodeEncodeError escape would break every caller
that handles ``msgspec.DecodeError``: the bridge's Codec contract, read_log, the CLI.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from eventbus import AnyKernelEvent, Envelope
from eventbus.bridges.nats import json_codec, msgpack_codec
from eventbus.codec import decode_json, decode_msgpack, decode_oxios_json

U = "0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01"
BAD = b"\xff\xfe"  # never valid in UTF-8


def tool_started(args: bytes, name: bytes = b"t") -> bytes:
    return (
        b'{"event_type":"tool_execution_started","session_id":"s","tool_name":"'
        + name
        + b'","tool_call_id":"c","tool_args":'
        + args
        + b"}"
    )


def envelope(origin: bytes) -> bytes:
    return (
        b'{"seq":1,"event_id":"e","ts_ns":0,"kind":"agent_started","event":'
        b'{"event_type":"agent_started","id":"' + U.encode() + b'"},"origin":"' + origin + b'"}'
    )


def packed(doc: bytes) -> bytes:
    """The MessagePack twin of a JSON ``doc`` whose strings hold ``BAD`` (not valid UTF-8)."""
    marker = "@@MARK@"  # 7 bytes: a fixstr, header 0xa7
    text = doc.replace(BAD, marker.encode()).decode()
    raw = msgspec.msgpack.encode(msgspec.json.decode(text))
    assert raw.count(msgspec.msgpack.encode(marker)) == 1
    # The same string with its payload replaced by as many invalid bytes (length unchanged).
    return raw.replace(msgspec.msgpack.encode(marker), b"\xa7" + b"\xff" * 7)


JSON_CASES = {
    "typed field": tool_started(b"{}", name=BAD),
    "any value": tool_started(b'{"x":["' + BAD + b'"]}'),
    "any key": tool_started(b'{"' + BAD + b'":1}'),
    "many brackets": tool_started(b"[" + b"[]," * 80 + b'"' + BAD + b'"]'),
}


@pytest.mark.parametrize("doc", JSON_CASES.values(), ids=JSON_CASES.keys())
def test_invalid_utf8_in_json_is_a_decode_error_at_its_byte(doc: bytes) -> None:
    at = doc.index(BAD)
    message = rf"^JSON is malformed: invalid UTF-8 \(byte {at}\)$"
    for data in (doc, bytearray(doc), memoryview(doc)):
        with pytest.raises(msgspec.DecodeError, match=message) as info:
            decode_json(data)
        assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_invalid_utf8_in_any_typed_target_is_a_decode_error() -> None:
    message = r"^JSON is malformed: invalid UTF-8 \(byte {}\)$"
    with pytest.raises(msgspec.DecodeError, match=message.format(6)):
        decode_json(b'{"a":"' + BAD + b'"}', Any)
    with pytest.raises(msgspec.DecodeError, match=message.format(2)):
        decode_oxios_json(b'{"' + BAD + b'":{}}')


@pytest.mark.parametrize("doc", JSON_CASES.values(), ids=JSON_CASES.keys())
def test_invalid_utf8_in_msgpack_is_a_decode_error(doc: bytes) -> None:
    with pytest.raises(
        msgspec.DecodeError, match=r"^MessagePack data is malformed: invalid UTF-8 in a string$"
    ) as info:
        decode_msgpack(packed(doc))
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize(
    "text",
    [
        '{"event_type":"agent_started","id":"\ud800"}',
        '{"event_type":"tool_execution_started","tool_args":{"é":"\udfff"}}',
        "[" * 70 + '"\ud800"' + "]" * 70,
    ],
    ids=["typed field", "any value", "many brackets"],
)
def test_a_str_holding_a_lone_surrogate_is_a_decode_error(text: str) -> None:
    at = next(i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff")
    with pytest.raises(
        msgspec.DecodeError, match=rf"^JSON is malformed: lone surrogate \(character {at}\)$"
    ) as info:
        decode_json(text)
    assert isinstance(info.value.__cause__, UnicodeEncodeError)
    with pytest.raises(msgspec.DecodeError, match=r"^JSON is malformed: lone surrogate"):
        decode_oxios_json(text)


def test_bridge_codecs_raise_decode_error_for_invalid_utf8() -> None:
    # The bridge counts and skips msgspec.DecodeError; anything else escaped its import loop.
    doc = envelope(BAD)
    with pytest.raises(msgspec.DecodeError, match=r"^JSON is malformed: invalid UTF-8"):
        json_codec(AnyKernelEvent).decode(doc)
    with pytest.raises(msgspec.DecodeError, match=r"^MessagePack data is malformed: invalid UTF"):
        msgpack_codec(AnyKernelEvent).decode(packed(doc))


def test_valid_non_ascii_text_still_decodes() -> None:
    doc = envelope("nœud-é-😀".encode())
    env = decode_json(doc, Envelope[AnyKernelEvent])
    assert env.origin == "nœud-é-😀"
    assert decode_json(doc.decode(), Envelope[AnyKernelEvent]) == env
    assert msgpack_codec(AnyKernelEvent).decode(msgspec.msgpack.encode(env)) == env
