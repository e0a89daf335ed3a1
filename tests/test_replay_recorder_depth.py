"""The recorder's depth check agrees with the reader's: it skips exactly the lines the codec
refuses as too deep, whatever the strings hold, and trusts only the event classes whose
annotations bound their depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventbus import Envelope, EventBus
from eventbus.codec import decode_json, encode_json
from eventbus.replay import SessionLogRecorder, read_log
from eventbus.replay import _recorder as recorder_module

pytestmark = pytest.mark.anyio

# Strings full of what could fool a scan of the bytes: brackets, quotes, backslashes.
_tricky_text = st.text(alphabet='ab"\\[]{}\n\u00e9', max_size=6)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=30,
)


def codec_refuses(line: bytes, max_depth: int) -> bool:
    """The reader's verdict: its decoder, its limit (and for no other reason)."""
    try:
        decode_json(line, Any, max_size=len(line), max_depth=max_depth)
    except msgspec.DecodeError as exc:
        error = str(exc)
    else:
        return False
    assert "nested deeper than max_depth" in error
    return True


@settings(max_examples=300, deadline=None)
@given(value=_json_values, max_depth=st.integers(min_value=1, max_value=8), long=st.booleans())
def test_the_depth_scan_agrees_with_the_codec(value: Any, max_depth: int, long: bool) -> None:
    if long:  # past the size where brackets are found one by one instead of counted
        value = [value, "x" * recorder_module._FIND_BRACKETS_FROM]
    line = encode_json(value)
    refused = codec_refuses(line, max_depth)
    assert recorder_module._nests_deeper(line, max_depth) == refused
    brackets = line.count(b"{") + line.count(b"[")
    assert recorder_module._has_more_brackets(line, max_depth) == (brackets > max_depth)
    if refused:  # the cheap gate never lets a deep line through
        assert brackets > max_depth


class Grid(msgspec.Struct, tag="grid", frozen=True):
    rows: dict[str, list[list[int]]]  # the struct is level 1: at most 4 levels


class Tree(msgspec.Struct, tag="tree", frozen=True):
    children: tuple[Tree, ...] = ()  # recursive: no bound


class Note(msgspec.Struct, tag="note", frozen=True):
    body: dict[str, Any] | None = None  # unbounded behind a union


def envelope(seq: int, event: Any) -> Envelope[Any]:
    return Envelope(seq, f"e{seq}", 1, type(event).__struct_config__.tag, event)


def tree(levels: int) -> Tree:
    node = Tree()
    for _ in range(levels - 1):
        node = Tree(children=(node,))
    return node


@pytest.mark.parametrize("max_depth", [4, 5, 6, 9])
@pytest.mark.parametrize(
    "events",
    [
        [Grid(rows={}), Grid(rows={"a": []}), Grid(rows={"a": [[]]}), Grid(rows={"a": [[1]]})],
        [tree(1), tree(2), tree(3), tree(4)],
        [Note(), Note(body={}), Note(body={"a": []}), Note(body={"a": [[{}]]})],
    ],
    ids=["bounded", "recursive", "any-in-a-union"],
)
async def test_writes_exactly_the_envelopes_the_reader_accepts(
    tmp_path: Path, max_depth: int, events: list[Any]
) -> None:
    path = tmp_path / "s.jsonl"
    envelopes = [envelope(seq, event) for seq, event in enumerate(events, 1)]
    accepted = [e for e in envelopes if not codec_refuses(encode_json(e), max_depth)]
    async with EventBus() as bus, SessionLogRecorder(bus, path, max_depth=max_depth) as rec:
        for e in envelopes:
            bus.publish_envelope(e, keep_seq=True)
    log = read_log(path, type=Grid | Tree | Note, max_depth=max_depth)
    assert list(log) == accepted
    assert rec.statistics().skipped == len(envelopes) - len(accepted)
