"""Bad arguments to the decoders and the bridge codecs are TypeError/ValueError naming them.

They are rejected when the call (or the codec) is made, before any input is looked at, and
never cost memory or time in proportion to a wrong value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eventbus import AnyKernelEvent
from eventbus.bridges.nats import json_codec, msgpack_codec
from eventbus.codec import decode_json, decode_msgpack, decode_oxios_json

DECODERS: list[tuple[str, Callable[..., Any], bytes]] = [
    ("decode_json", decode_json, b"{}"),
    ("decode_msgpack", decode_msgpack, b"\x80"),
    ("decode_oxios_json", decode_oxios_json, b"{}"),
]


@pytest.mark.parametrize(
    "data", [None, 3.5, [1, 2], 5, 10**12], ids=["none", "float", "list", "int", "huge-int"]
)
def test_decode_json_rejects_data_that_is_not_bytes_or_str(data: object) -> None:
    # An int used to be passed to bytes(), which allocates that many zero bytes.
    name = type(data).__name__
    with pytest.raises(TypeError, match=rf"^data must be bytes-like or str, got {name}$"):
        decode_json(data)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=rf"^data must be bytes-like or str, got {name}$"):
        decode_oxios_json(data)  # type: ignore[arg-type]


def test_decode_json_accepts_every_bytes_like_and_str() -> None:
    doc = '{"event_type":"agent_started","id":"0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01"}'
    events = {
        decode_json(data)
        for data in (doc, doc.encode(), bytearray(doc.encode()), memoryview(doc.encode()))
    }
    assert len(events) == 1


@pytest.mark.parametrize(("name", "decode", "data"), DECODERS, ids=[d[0] for d in DECODERS])
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_size": "1"}, TypeError, r"^max_size must be an int, got str$"),
        ({"max_size": True}, TypeError, r"^max_size must be an int, got bool$"),
        ({"max_size": 1.5e6}, TypeError, r"^max_size must be an int, got float$"),
        ({"max_depth": None}, TypeError, r"^max_depth must be an int, got NoneType$"),
        ({"max_depth": False}, TypeError, r"^max_depth must be an int, got bool$"),
        ({"max_size": 0}, ValueError, r"^max_size must be >= 1, got 0$"),
        ({"max_depth": -3}, ValueError, r"^max_depth must be >= 1, got -3$"),
    ],
)
def test_limits_of_the_wrong_type_or_range_are_rejected_naming_them(
    name: str,
    decode: Callable[..., Any],
    data: bytes,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        decode(data, **kwargs)


def test_int_subclasses_are_valid_limits() -> None:
    class Size(int):
        pass

    assert decode_json(b"[]", list[int], max_size=Size(2), max_depth=Size(1)) == []
    assert decode_msgpack(b"\x90", list[int], max_size=Size(1), max_depth=Size(1)) == []


@pytest.mark.parametrize("make", [msgpack_codec, json_codec])
@pytest.mark.parametrize(
    ("max_size", "error", "message"),
    [
        (0, ValueError, r"^max_size must be >= 1, got 0$"),
        ("1M", TypeError, r"^max_size must be an int, got str$"),
        (True, TypeError, r"^max_size must be an int, got bool$"),
    ],
)
def test_bridge_codecs_check_max_size_when_built(
    make: Callable[..., Any], max_size: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make(AnyKernelEvent, max_size=max_size)
