"""Reading session logs back: our envelope lines, Rust kernel lines, torn tails, corrupt lines."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from structlog.testing import capture_logs

from eventbus import Category, Envelope, KernelEvent
from eventbus.codec import encode_json
from eventbus.events import (
    AgentStarted,
    AgentStopped,
    AnyKernelEvent,
    PageOut,
    Suspended,
    ToolExecutionStarted,
    TurnLoopMode,
    TurnStarted,
)
from eventbus.replay import LogGap, read_log

FIXTURES = Path(__file__).parent / "fixtures"


def envelope(seq: int, event: Any, **fields: Any) -> Envelope[Any]:
    tag = type(event).__struct_config__.tag
    return Envelope(seq, f"bus-{seq}", 1_000 + seq, tag, event, **fields)


def page_out(turn: int) -> PageOut:
    return PageOut(turn=turn, handle=f"h{turn}", tokens=10 * turn)


def write_lines(path: Path, *lines: bytes, end: bytes = b"\n") -> Path:
    path.write_bytes(b"\n".join(lines) + end)
    return path


def test_reads_recorded_envelopes_in_file_order(tmp_path: Path) -> None:
    envelopes = [
        envelope(1, page_out(1)),
        envelope(2, Suspended(turn=1, reason="ask_user", pending_calls=("c1",))),
        envelope(3, page_out(2), correlation_id="bus-1", causation_id="bus-2", origin="n1"),
    ]
    path = write_lines(tmp_path / "s.jsonl", *(encode_json(e) for e in envelopes))

    log = read_log(path)

    assert list(log) == envelopes
    assert log.envelopes == tuple(envelopes)
    assert len(log) == 3
    assert log[2] == envelopes[2]
    assert log.torn_lines == 0
    assert log.gaps == ()
    assert log.line_count == 3
    assert list(log) == envelopes  # iterable more than once


def test_reads_an_envelope_whose_keys_are_not_in_canonical_order(tmp_path: Path) -> None:
    line = (
        b'{"seq":4,"event_id":"e4","ts_ns":9,"kind":"page_out",'
        b'"event":{"event_type":"page_out","turn":1,"handle":"h"}}'
    )
    log = read_log(write_lines(tmp_path / "s.jsonl", line))
    assert log.envelopes == (Envelope(4, "e4", 9, "page_out", PageOut(turn=1, handle="h")),)


def test_torn_final_line_is_skipped_counted_and_logged(tmp_path: Path) -> None:
    whole = [encode_json(envelope(i, page_out(i))) for i in (1, 2)]
    torn = encode_json(envelope(3, page_out(3)))[:40]
    path = tmp_path / "s.jsonl"
    path.write_bytes(whole[0] + b"\n" + whole[1] + b"\n" + torn)

    with capture_logs() as logs:
        log = read_log(path)

    assert [e.seq for e in log] == [1, 2]
    assert log.torn_lines == 1
    assert log.line_count == 3
    assert logs == [
        {
            "event": "session_log_torn_tail",
            "log_level": "warning",
            "path": str(path),
            "line": 3,
            "size": 40,
        }
    ]


def test_final_line_without_newline_that_decodes_is_kept(tmp_path: Path) -> None:
    lines = [encode_json(envelope(i, page_out(i))) for i in (1, 2)]
    log = read_log(write_lines(tmp_path / "s.jsonl", *lines, end=b""))
    assert [e.seq for e in log] == [1, 2]
    assert log.torn_lines == 0


def test_invalid_final_line_without_newline_is_an_error_not_a_torn_tail(tmp_path: Path) -> None:
    good = encode_json(envelope(1, page_out(1)))
    path = write_lines(tmp_path / "s.jsonl", good, b'{"event_type":"nope"}', end=b"")
    with pytest.raises(msgspec.ValidationError, match=r"^line 2 of .*: Invalid value 'nope'"):
        read_log(path)


def test_malformed_line_in_the_middle_is_an_error_naming_the_line(tmp_path: Path) -> None:
    good = encode_json(envelope(1, page_out(1)))
    path = write_lines(tmp_path / "s.jsonl", good, good, b'{"seq": 3, "ev', good)
    with pytest.raises(
        msgspec.DecodeError, match=r"^line 3 of .*s\.jsonl: Input data was truncated$"
    ):
        read_log(path)


def test_invalid_line_in_the_middle_is_a_validation_error_naming_the_line(
    tmp_path: Path,
) -> None:
    good = encode_json(envelope(1, page_out(1)))
    bad = good.replace(b'"turn":1', b'"turn":-1')
    path = write_lines(tmp_path / "s.jsonl", good, bad, good)
    with pytest.raises(
        msgspec.ValidationError, match=r"^line 2 of .*: Expected `int` >= 0 - at `\$.event.turn`$"
    ):
        read_log(path)


def test_corrupt_final_line_with_its_newline_is_an_error_not_a_torn_tail(tmp_path: Path) -> None:
    good = encode_json(envelope(1, page_out(1)))
    path = write_lines(tmp_path / "s.jsonl", good, good[:30])
    with pytest.raises(msgspec.DecodeError, match=r"^line 2 of "):
        read_log(path)


def test_empty_line_is_an_error(tmp_path: Path) -> None:
    good = encode_json(envelope(1, page_out(1)))
    path = write_lines(tmp_path / "s.jsonl", good, b"", good)
    with pytest.raises(msgspec.DecodeError, match=r"^line 2 of .*: empty line$"):
        read_log(path)


@pytest.mark.parametrize(
    "bad",
    [
        encode_json(Envelope(1, "e1", 0, "page_in", page_out(1))),
        # The same envelope, keys in another order (another branch of the reader).
        b'{"seq":1,"event_id":"e1","ts_ns":0,"kind":"page_in",'
        b'"event":{"event_type":"page_out","turn":1,"handle":"h"}}',
        # A Rust turn-loop envelope (seed 002).
        b'{"seq":1,"ts_ms":0,"kind":"page_in","event":{"event_type":"page_out","turn":1,'
        b'"handle":"h"}}',
    ],
    ids=["recorded", "reordered", "rust"],
)
def test_envelope_whose_kind_is_not_its_events_tag_is_rejected(tmp_path: Path, bad: bytes) -> None:
    with pytest.raises(
        msgspec.ValidationError,
        match=r"^line 1 of .*: envelope kind 'page_in' does not match the event's tag 'page_out'$",
    ):
        read_log(write_lines(tmp_path / "s.jsonl", bad))


def test_a_line_longer_than_max_line_bytes_is_rejected(tmp_path: Path) -> None:
    good = encode_json(envelope(1, page_out(1)))
    big = encode_json(envelope(2, PageOut(turn=2, handle="x" * 500)))
    path = write_lines(tmp_path / "s.jsonl", good, big, good)
    with pytest.raises(
        msgspec.DecodeError, match=r"^line 2 of .*: line is longer than max_line_bytes=300$"
    ):
        read_log(path, max_line_bytes=300)
    assert len(read_log(path, max_line_bytes=len(big))) == 3


def test_max_line_bytes_must_be_a_positive_int(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^max_line_bytes must be >= 1, got 0$"):
        read_log(tmp_path / "missing.jsonl", max_line_bytes=0)
    with pytest.raises(TypeError, match=r"^max_line_bytes must be an int, got str$"):
        read_log(tmp_path / "missing.jsonl", max_line_bytes="300")  # type: ignore[arg-type]


def test_a_line_nested_deeper_than_max_depth_is_rejected_and_read_when_allowed(
    tmp_path: Path,
) -> None:
    # The bus and the recorder take any depth; read_log had the codec's 64 and no way round.
    nested: Any = "leaf"
    for _ in range(70):
        nested = [nested]
    deep = ToolExecutionStarted(
        session_id="s", tool_name="t", tool_call_id="c", tool_args={"deep": nested}
    )
    path = write_lines(tmp_path / "s.jsonl", encode_json(envelope(1, deep)))
    with pytest.raises(
        msgspec.DecodeError, match=r"^line 1 of .*: .*nested deeper than max_depth=64"
    ):
        read_log(path)
    assert read_log(path, max_depth=80)[0].event == deep
    with pytest.raises(ValueError, match=r"^max_depth must be >= 1, got 0$"):
        read_log(path, max_depth=0)
    with pytest.raises(TypeError, match=r"^max_depth must be an int, got float$"):
        read_log(path, max_depth=64.0)  # type: ignore[arg-type]


def test_a_line_that_is_not_utf8_is_an_error_naming_its_line(tmp_path: Path) -> None:
    # It surfaced as a bare UnicodeDecodeError, without the line or the file.
    good = encode_json(envelope(1, page_out(1)))
    bad = encode_json(envelope(2, PageOut(turn=2, handle="x"))).replace(b'"x"', b'"\xff"')
    path = write_lines(tmp_path / "s.jsonl", good, bad, good)
    with pytest.raises(
        msgspec.DecodeError, match=r"^line 2 of .*: JSON is malformed: invalid UTF-8 \(byte \d+\)$"
    ):
        read_log(path)


def test_a_line_of_another_shape_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"^line 1 of .*: Expected an envelope"):
        read_log(write_lines(tmp_path / "s.jsonl", b'{"hello": "world", "n": 1}'))
    with pytest.raises(msgspec.ValidationError, match=r"^line 1 of .*: Expected `object`"):
        read_log(write_lines(tmp_path / "t.jsonl", b"[1, 2]"))


def test_gap_markers_are_collected_in_order(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "s.jsonl",
        encode_json(envelope(1, page_out(1))),
        b'{"gap":{"first_seq":2,"last_seq":4,"lost":3}}',
        encode_json(envelope(5, page_out(5))),
        b'{"gap":{"first_seq":6,"last_seq":6,"lost":1}}',
        encode_json(envelope(7, page_out(7))),
    )
    log = read_log(path)
    assert [e.seq for e in log] == [1, 5, 7]
    assert log.gaps == (
        LogGap(first_seq=2, last_seq=4, lost=3),
        LogGap(first_seq=6, last_seq=6, lost=1),
    )
    assert log.lost == 4


def test_rust_event_type_lines_get_envelopes_numbered_by_line(tmp_path: Path) -> None:
    log = read_log(FIXTURES / "events_spawn_lifecycle.jsonl")

    assert [e.seq for e in log] == list(range(1, 21))
    first, third = log[0], log[2]
    assert first.kind == "schema_version"
    assert (third.seq, third.event_id, third.ts_ns, third.kind) == (3, "line-3", 0, "tool_gated")
    assert (third.correlation_id, third.causation_id, third.replayed) == (None, None, False)


def test_rust_turn_loop_envelopes_keep_their_seq_and_time(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "s.jsonl",
        b'{"seq":7,"ts_ms":1700000000123,"kind":"turn_started","event":{"event_type":'
        b'"turn_started","turn_id":"t","mode":"agent","input_text":"hi","max_steps":3}}',
    )
    [env] = read_log(path)
    assert env == Envelope(
        7,
        "line-1",
        1_700_000_000_123_000_000,
        "turn_started",
        TurnStarted(turn_id="t", mode=TurnLoopMode.AGENT, input_text="hi", max_steps=3),
    )


def test_oxios_externally_tagged_lines_are_read(tmp_path: Path) -> None:
    agent = uuid.UUID("6f1c1f3e-4d7b-4c0a-9a51-2f0f3f1b7a10")
    path = write_lines(
        tmp_path / "s.jsonl",
        b'{"AgentStarted":{"id":"6f1c1f3e-4d7b-4c0a-9a51-2f0f3f1b7a10"}}',
        b'{"AgentStopped":{"id":"6f1c1f3e-4d7b-4c0a-9a51-2f0f3f1b7a10"}}',
    )
    log = read_log(path)
    assert [(e.seq, e.kind, e.event) for e in log] == [
        (1, "agent_started", AgentStarted(id=agent)),
        (2, "agent_stopped", AgentStopped(id=agent, success=False)),
    ]


def test_forms_may_be_mixed_in_one_file(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "s.jsonl",
        b'{"event_type":"page_out","turn":1,"handle":"a"}',
        encode_json(envelope(2, page_out(2))),
    )
    assert [e.event for e in read_log(path)] == [PageOut(turn=1, handle="a"), page_out(2)]


class CacheFlushed(KernelEvent, tag="cache_flushed", frozen=True, kw_only=True):
    category: ClassVar[Category] = Category.MM
    entries: int


def test_custom_events_decode_with_the_type_given(tmp_path: Path) -> None:
    mine = envelope(1, CacheFlushed(entries=3))
    path = write_lines(tmp_path / "s.jsonl", encode_json(mine))
    with pytest.raises(msgspec.ValidationError, match=r"^line 1 of .*`\$.event.event_type`$"):
        read_log(path)
    log = read_log(path, type=CacheFlushed | AnyKernelEvent)
    assert list(log) == [mine]
