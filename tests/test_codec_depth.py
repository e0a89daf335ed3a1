"""The depth limit is exact, counts MessagePack map keys, and is checked in linear time.

A document with more opening brackets (container markers) than ``max_depth`` is decoded
untyped and walked; that walk must cost time and memory in proportion to the document, not
to its size times its depth, or the check itself is the denial of service it guards against.
"""

from __future__ import annotations

import contextlib
import re
import tracemalloc
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventbus.codec import decode_json, decode_msgpack
from eventbus.events import ToolExecutionStarted

PATH_SEGMENT = re.compile(r"\.[A-Za-z_]\w*|\[\d+\]|\[\.\.\.\]")


def tool_started(args: bytes) -> bytes:
    return (
        b'{"event_type":"tool_execution_started","session_id":"s","tool_name":"t",'
        b'"tool_call_id":"c","tool_args":' + args + b"}"
    )


def packed(args_packed: bytes) -> bytes:
    """The MessagePack event whose ``tool_args`` is the raw MessagePack ``args_packed``."""
    event = msgspec.json.decode(tool_started(b'"@@ARGS@@"'))
    return msgspec.msgpack.encode(event).replace(msgspec.msgpack.encode("@@ARGS@@"), args_packed)


def depth(value: Any) -> int:
    """Levels of containers in ``value``, map keys included (a scalar is level 0)."""
    if isinstance(value, dict):
        return 1 + max([0, *(max(depth(k), depth(v)) for k, v in value.items())])
    if isinstance(value, list | tuple):
        return 1 + max([0, *map(depth, value)])
    return 0


def shown_segments(message: str) -> tuple[list[str], bool]:
    where = re.fullmatch(r"Input is nested deeper than max_depth=\d+ - at `\$(.*)`", message)
    assert where is not None, message
    path = where.group(1)
    truncated = path.endswith("...") and not path.endswith("[...]")
    body = path[:-3] if truncated else path
    segments = PATH_SEGMENT.findall(body)
    assert "".join(segments) == body, message
    return segments, truncated


JSON_TREES = st.recursive(
    st.integers(0, 9) | st.text("ab[{", max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("xy", max_size=2), inner),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None)
@given(tree=JSON_TREES, max_depth=st.integers(1, 12))
def test_json_is_rejected_exactly_when_deeper_than_max_depth(tree: Any, max_depth: int) -> None:
    doc = tool_started(msgspec.json.encode(tree))
    levels = 1 + depth(tree)  # the event object is level 1
    if levels <= max_depth:
        event = decode_json(doc, max_depth=max_depth)
        assert isinstance(event, ToolExecutionStarted)
        assert event.tool_args == tree
        return
    with pytest.raises(msgspec.DecodeError) as info:
        decode_json(doc, max_depth=max_depth)
    # The path of a container at level max_depth + 1: max_depth segments, up to 8 shown.
    segments, truncated = shown_segments(str(info.value))
    assert segments[0] == ".tool_args"
    assert len(segments) == min(max_depth, 8)
    assert truncated == (max_depth > 8)


MSGPACK_KEYS = st.recursive(
    st.integers(0, 9) | st.text("ab", max_size=2),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=8,
)
MSGPACK_TREES = st.recursive(
    st.integers(0, 9) | st.text("ab", max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(MSGPACK_KEYS, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(tree=MSGPACK_TREES, max_depth=st.integers(1, 12))
def test_msgpack_depth_counts_map_keys(tree: Any, max_depth: int) -> None:
    # Keys that are arrays nest too. Whether such an event is accepted is another check
    # (JSON values only); what is pinned here is that no key escapes the depth limit.
    doc = packed(msgspec.msgpack.encode(tree))
    if 1 + depth(tree) <= max_depth:
        with contextlib.suppress(msgspec.ValidationError):  # a key that is not a str
            decode_msgpack(doc, max_depth=max_depth)
        return
    with pytest.raises(msgspec.DecodeError, match=r"^Input is nested deeper than max_depth="):
        decode_msgpack(doc, max_depth=max_depth)


def test_a_deep_msgpack_map_key_is_too_deep_at_its_path() -> None:
    deep_key = b"\x81" + b"\x91" * 200 + b"\x01" + b"\x01"  # {[[[...1]]]: 1}
    with pytest.raises(
        msgspec.DecodeError,
        match=r"^Input is nested deeper than max_depth=64 - "
        r"at `\$\.tool_args\[\.\.\.\]\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]\.\.\.`$",
    ):
        decode_msgpack(packed(deep_key))
    with pytest.raises(
        msgspec.DecodeError,
        match=r"^Input is nested deeper than max_depth=3 - at `\$\.tool_args\[\.\.\.\]\[0\]`$",
    ):
        decode_msgpack(packed(b"\x81\x91\x91\x01\x01"), max_depth=3)


def wide_and_deep(width: int, deep: int) -> bytes:
    """``deep`` nested arrays around ``width`` empty arrays: every leaf at level deep + 2."""
    return tool_started(b"[" * deep + b",".join([b"[]"] * width) + b"]" * deep)


def peak_bytes(fn: Any, *args: Any) -> int:
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_walking_a_wide_deep_document_takes_memory_linear_in_its_size() -> None:
    # 60 levels deep, then 20 000 leaves: walking it with the path of every container in
    # hand took 60 path entries per leaf (~10 MB); depth alone takes one pointer per leaf.
    # Measured against the untyped decode the walk needs anyway, so the bound is no
    # machine's figure.
    doc = wide_and_deep(20_000, 60)
    assert doc.count(b"[") > 64
    baseline = peak_bytes(msgspec.json.decode, doc)
    assert peak_bytes(decode_json, doc) < 3 * baseline
    packed_doc = msgspec.msgpack.encode(msgspec.json.decode(doc))
    baseline = peak_bytes(msgspec.msgpack.decode, packed_doc)
    assert peak_bytes(decode_msgpack, packed_doc) < 3 * baseline


def test_non_finite_literals_keep_their_path_in_documents_with_many_brackets() -> None:
    # More than max_depth brackets sends the document through the untyped walk first.
    doc = (
        b'{"event_type":"agent_started","id":"0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01",'
        b'"x":[' + b"[]," * 70 + b"NaN]}"
    )
    with pytest.raises(
        msgspec.DecodeError,
        match=r"^Non-finite number `NaN` is not valid JSON - at `\$\.x\[70\]`$",
    ):
        decode_json(doc)
    with pytest.raises(
        msgspec.DecodeError,
        match=r"^Non-finite number `-Infinity` is not valid JSON - at `\$\.tool_args\[0\]\.a`$",
    ):
        decode_json(tool_started(b'[{"a":-Infinity},' + b"[[]]," * 40 + b"1]"))
