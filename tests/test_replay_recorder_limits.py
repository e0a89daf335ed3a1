"""The session log recorder never writes a line its reader refuses: an envelope too large, too
deeply nested or not encodable at all becomes a gap marker, and the recording goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from structlog.testing import capture_logs

from eventbus import Envelope, EventBus
from eventbus.codec import DEFAULT_MAX_DEPTH, encode_json
from eventbus.events import PageOut, ToolExecutionStarted
from eventbus.replay import DEFAULT_MAX_LINE_BYTES, LogGap, SessionLogRecorder, read_log

pytestmark = pytest.mark.anyio


def tool_call(seq: int, args: Any) -> Envelope[Any]:
    event = ToolExecutionStarted(session_id="s", tool_name="t", tool_call_id="c", tool_args=args)
    return Envelope(seq, f"e{seq}", 1, "tool_execution_started", event)


def nested(levels: int) -> Any:
    """``levels`` lists, one inside the other; as ``tool_args`` the innermost is at level
    ``2 + levels`` (the envelope is level 1, its event level 2)."""
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def skipped_logs(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "session_log_envelope_skipped"]


async def test_a_line_longer_than_max_line_bytes_becomes_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    limit = len(encode_json(tool_call(1, {"blob": "x" * 100})))
    async with EventBus() as bus:
        recorder = SessionLogRecorder(bus, path, max_line_bytes=limit)
        with capture_logs() as logs:
            async with recorder:
                bus.publish_envelope(tool_call(1, {"blob": "x" * 100}), keep_seq=True)  # fits
                bus.publish_envelope(tool_call(2, {"blob": "x" * 101}), keep_seq=True)  # 1 over
                bus.publish_envelope(tool_call(3, {"blob": "x" * 99}), keep_seq=True)
    log = read_log(path, max_line_bytes=limit)
    assert [e.seq for e in log] == [1, 3]
    assert log.gaps == (LogGap(first_seq=2, last_seq=2, lost=1),)
    stats = recorder.statistics()
    assert (stats.written, stats.gaps, stats.lost, stats.skipped) == (2, 1, 1, 1)
    (logged,) = skipped_logs(logs)
    assert logged == {
        "event": "session_log_envelope_skipped",
        "log_level": "warning",
        "path": str(path),
        "seq": 2,
        "kind": "tool_execution_started",
        "reason": "line_too_long",
        "size": limit + 1,
        "max_line_bytes": limit,
    }


async def test_by_default_a_line_over_the_readers_limit_is_not_written(tmp_path: Path) -> None:
    # The reviewer's case: 2 MB of tool_args made the whole log unreadable.
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus, SessionLogRecorder(bus, path) as recorder:
        bus.publish_envelope(tool_call(1, "x" * DEFAULT_MAX_LINE_BYTES), keep_seq=True)
        await recorder.flush()  # the hole is marked at once, not when the next one comes
        assert read_log(path).gaps == (LogGap(first_seq=1, last_seq=1, lost=1),)
        bus.publish_envelope(tool_call(2, "x"), keep_seq=True)
    log = read_log(path)
    assert [e.seq for e in log] == [2]
    assert log.gaps == (LogGap(first_seq=1, last_seq=1, lost=1),)


async def test_nesting_deeper_than_the_readers_limit_becomes_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    deepest_allowed = DEFAULT_MAX_DEPTH - 2
    async with EventBus() as bus:
        recorder = SessionLogRecorder(bus, path)
        with capture_logs() as logs:
            async with recorder:
                bus.publish_envelope(tool_call(1, nested(deepest_allowed)), keep_seq=True)
                bus.publish_envelope(tool_call(2, nested(deepest_allowed + 1)), keep_seq=True)
                bus.publish_envelope(tool_call(3, nested(70)), keep_seq=True)
                bus.publish_envelope(tool_call(4, "ok"), keep_seq=True)
    log = read_log(path)  # the reader's defaults
    assert [e.seq for e in log] == [1, 4]
    assert log[0].event.tool_args == nested(deepest_allowed)
    assert log.gaps == (LogGap(first_seq=2, last_seq=3, lost=2),)
    assert recorder.statistics().skipped == 2
    (logged,) = skipped_logs(logs)  # once, not per envelope
    assert (logged["seq"], logged["reason"], logged["max_depth"]) == (2, "too_deep", 64)


async def test_max_depth_is_the_recorders_own_limit(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus, SessionLogRecorder(bus, path, max_depth=5) as recorder:
        bus.publish_envelope(tool_call(1, nested(3)), keep_seq=True)  # level 5
        bus.publish_envelope(tool_call(2, nested(4)), keep_seq=True)  # level 6
    assert [e.seq for e in read_log(path, max_depth=5)] == [1]
    assert recorder.statistics().skipped == 1


@pytest.mark.parametrize(
    "args",
    [
        [{"k": [1, {}]} for _ in range(200)],  # many brackets, shallow
        "[{" * 500,  # brackets inside a string
        {"[": ["{"] * 100},
    ],
)
async def test_many_brackets_without_depth_are_written(tmp_path: Path, args: Any) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus, SessionLogRecorder(bus, path) as recorder:
        bus.publish_envelope(tool_call(1, args), keep_seq=True)
    assert [e.event.tool_args for e in read_log(path)] == [args]
    assert recorder.statistics().skipped == 0


@pytest.mark.parametrize(
    ("args", "written"),
    [
        # tool_args is level 3 here, so its "deep" lists end at level 3 + levels
        ({"blob": "x" * 10_000, "deep": nested(DEFAULT_MAX_DEPTH - 3)}, True),
        ({"blob": "x" * 10_000, "deep": nested(DEFAULT_MAX_DEPTH - 2)}, False),
        ({"blob": "[{" * 10_000}, True),
        ({"blob": "]}" * 10_000, "deep": nested(DEFAULT_MAX_DEPTH - 2)}, False),
        ([{"k": [1, {}]} for _ in range(2_000)], True),
    ],
    ids=["deepest-allowed", "one-too-deep", "brackets-in-a-string", "closers-in-a-string", "wide"],
)
async def test_long_lines_are_checked_for_depth_too(
    tmp_path: Path, args: Any, written: bool
) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus, SessionLogRecorder(bus, path) as recorder:
        bus.publish_envelope(tool_call(1, args), keep_seq=True)
    log = read_log(path)
    assert [e.event.tool_args for e in log] == ([args] if written else [])
    assert recorder.statistics().skipped == (0 if written else 1)


def _recursive() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (msgspec.msgpack.Ext(1, b"x"), "Encoding objects of type msgspec.msgpack.Ext"),
        ({(1,): 1}, "Only dicts with str keys are supported"),
        (_recursive(), "maximum recursion depth exceeded"),
    ],
)
async def test_an_unencodable_envelope_becomes_a_gap_and_the_body_goes_on(
    tmp_path: Path, args: Any, error: str
) -> None:
    # A msgpack peer can send an Ext value in tool_args: the recorder must not die of it and
    # cancel the body it wraps.
    path = tmp_path / "s.jsonl"
    body_finished = False
    async with EventBus() as bus:
        recorder = SessionLogRecorder(bus, path)
        with capture_logs() as logs:
            async with recorder:
                bus.publish_envelope(tool_call(1, args), keep_seq=True)
                await recorder.flush()
                bus.publish_envelope(tool_call(2, args), keep_seq=True)
                await recorder.flush()
                bus.publish(PageOut(turn=1, handle="h", tokens=1))
                await anyio.lowlevel.checkpoint()
                body_finished = True
    assert body_finished
    log = read_log(path)
    assert [e.seq for e in log] == [3]
    assert log.gaps == (
        LogGap(first_seq=1, last_seq=1, lost=1),
        LogGap(first_seq=2, last_seq=2, lost=1),
    )
    stats = recorder.statistics()
    assert (stats.written, stats.gaps, stats.lost, stats.skipped) == (1, 2, 2, 2)
    (logged,) = skipped_logs(logs)
    assert (logged["seq"], logged["reason"]) == (1, "unencodable")
    assert error in logged["error"]


async def test_each_reason_is_logged_once(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        recorder = SessionLogRecorder(bus, path, max_line_bytes=1000)
        with capture_logs() as logs:
            async with recorder:
                for seq in range(1, 7, 3):
                    bus.publish_envelope(tool_call(seq, "x" * 1000), keep_seq=True)
                    bus.publish_envelope(tool_call(seq + 1, nested(70)), keep_seq=True)
                    bus.publish_envelope(tool_call(seq + 2, {1: 2}), keep_seq=True)
    assert [(e["seq"], e["reason"]) for e in skipped_logs(logs)] == [
        (1, "line_too_long"),
        (2, "too_deep"),
        (3, "unencodable"),
    ]
    assert recorder.statistics().skipped == 6
    assert read_log(path).gaps == (LogGap(first_seq=1, last_seq=6, lost=6),)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_line_bytes": 255}, ValueError, r"^max_line_bytes must be >= 256, got 255$"),
        ({"max_line_bytes": 2.0}, TypeError, r"^max_line_bytes must be an int, got float$"),
        ({"max_depth": 1}, ValueError, r"^max_depth must be >= 2, got 1$"),
        ({"max_depth": "64"}, TypeError, r"^max_depth must be an int, got str$"),
    ],
)
def test_limits_too_small_for_a_gap_marker_are_rejected(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SessionLogRecorder(EventBus(), tmp_path / "s.jsonl", **kwargs)


async def test_the_smallest_limits_still_hold_a_gap_marker_for_any_seq(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    big = 2**63 - 1
    async with EventBus() as bus, SessionLogRecorder(bus, path, max_line_bytes=256, max_depth=2):
        bus.publish_envelope(tool_call(big - 1, "x" * 300), keep_seq=True)
        bus.publish_envelope(tool_call(big, []), keep_seq=True)  # level 3: too deep
    log = read_log(path, max_line_bytes=256, max_depth=2)
    assert log.gaps == (LogGap(first_seq=1, last_seq=big, lost=big),)
