"""The session log recorder: complete by default, gap markers when lossy, drains on exit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from eventbus import Envelope, EventBus
from eventbus.events import PageOut
from eventbus.replay import LogGap, SessionLogRecorder, read_log
from eventbus.replay import _recorder as recorder_module

pytestmark = pytest.mark.anyio


def page_out(turn: int) -> PageOut:
    return PageOut(turn=turn, handle=f"h{turn}", tokens=turn)


async def test_records_every_envelope_in_order_and_reads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    published: list[Envelope[Any]] = []
    async with EventBus() as bus, SessionLogRecorder(bus, path) as recorder:
        for turn in range(1, 301):
            published.append(await bus.apublish(page_out(turn)))
        await recorder.flush()
        assert recorder.statistics().written == 300

    assert list(read_log(path)) == published
    data = path.read_bytes()
    assert data.count(b"\n") == 300
    assert data.endswith(b"\n")
    assert b"\r" not in data


async def test_sees_only_what_is_published_after_it_is_entered(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        bus.publish(page_out(1))
        async with SessionLogRecorder(bus, path):
            bus.publish(page_out(2))
    assert [e.seq for e in read_log(path)] == [2]


async def test_exit_drains_what_is_still_buffered(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        async with SessionLogRecorder(bus, path, batch_size=3) as recorder:
            for turn in range(1, 11):
                bus.publish(page_out(turn))  # no await: the recorder has not run yet
            assert recorder.statistics().written == 0
        assert recorder.statistics().written == 10
    assert [e.seq for e in read_log(path)] == list(range(1, 11))


async def test_exit_drains_also_when_the_body_raises(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        with pytest.raises(KeyError):  # noqa: PT012
            async with SessionLogRecorder(bus, path):
                bus.publish(page_out(1))
                raise KeyError("boom")
    assert [e.seq for e in read_log(path)] == [1]


async def test_lossless_by_default_publish_refuses_when_the_recorder_is_full(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus, SessionLogRecorder(bus, path, max_buffer_size=3):
        for turn in range(1, 4):
            bus.publish(page_out(turn))
        with pytest.raises(anyio.WouldBlock):
            bus.publish(page_out(4))
        await bus.apublish(page_out(4))  # waits for the recorder instead
    assert [e.seq for e in read_log(path)] == [1, 2, 3, 4]


async def test_lossless_recorder_keeps_up_with_apublish_through_a_tiny_queue(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.jsonl"
    async with (
        EventBus() as bus,
        SessionLogRecorder(bus, path, max_buffer_size=2, batch_size=2) as recorder,
    ):
        for turn in range(1, 201):
            await bus.apublish(page_out(turn))
    log = read_log(path)
    assert [e.seq for e in log] == list(range(1, 201))
    assert log.gaps == ()
    assert recorder.statistics().gaps == 0


async def test_lossy_recorder_writes_a_gap_marker_where_envelopes_were_lost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        recorder = SessionLogRecorder(bus, path, overflow="drop_newest", max_buffer_size=2)
        with capture_logs() as logs:
            async with recorder:
                for turn in range(1, 6):
                    bus.publish(page_out(turn))  # 3, 4 and 5 do not fit
                await recorder.flush()
                bus.publish(page_out(6))
        stats = recorder.statistics()

    log = read_log(path)
    assert [e.seq for e in log] == [1, 2, 6]
    assert log.gaps == (LogGap(first_seq=3, last_seq=5, lost=3),)
    lines = path.read_bytes().splitlines()
    assert lines[2] == b'{"gap":{"first_seq":3,"last_seq":5,"lost":3}}'
    assert (stats.written, stats.gaps, stats.lost) == (3, 1, 3)
    assert {"event": "session_log_gap", "log_level": "warning", "path": str(path), "lost": 3,
            "gaps": 1} in logs  # fmt: skip


async def test_lossy_drop_oldest_loss_at_the_start_is_a_gap_too(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        bus.publish(page_out(0))
        async with SessionLogRecorder(bus, path, overflow="drop_oldest", max_buffer_size=2):
            for turn in range(1, 6):
                bus.publish(page_out(turn))  # seq 2..6; 2, 3 and 4 are evicted
    log = read_log(path)
    assert [e.seq for e in log] == [5, 6]
    assert log.gaps == (LogGap(first_seq=2, last_seq=4, lost=3),)


async def test_refuses_an_existing_file_unless_appending(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        async with SessionLogRecorder(bus, path):
            bus.publish(page_out(1))
        with pytest.raises(FileExistsError):
            async with SessionLogRecorder(bus, path):
                pass
        async with SessionLogRecorder(bus, path, append=True):
            bus.publish(page_out(2))
    assert [e.seq for e in read_log(path)] == [1, 2]


@pytest.mark.parametrize(
    "torn",
    [
        b'{"seq":3,"event_id":"01a2',
        b"x" * 70_000,
        b'{"causation_id":null,"event_id":"\xff"}',  # whole JSON, not UTF-8: no record either
    ],
)
async def test_appending_cuts_a_torn_final_line_and_keeps_the_log_readable(
    tmp_path: Path, torn: bytes
) -> None:
    # A power cut mid-write left the start of a line; appending after it glued the next line
    # to it, and read_log then failed on that line for the whole log. (70,000 bytes: longer
    # than one backwards read.)
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        async with SessionLogRecorder(bus, path):
            bus.publish(page_out(1))
            bus.publish(page_out(2))
        path.write_bytes(path.read_bytes() + torn)
        assert [e.seq for e in read_log(path)] == [1, 2]  # the torn line is skipped
        with capture_logs() as logs:
            async with SessionLogRecorder(bus, path, append=True):
                bus.publish(page_out(3))
                bus.publish(page_out(4))
    assert [e.seq for e in read_log(path)] == [1, 2, 3, 4]
    assert read_log(path).torn_lines == 0
    (cut,) = [e for e in logs if e["event"] == "session_log_torn_tail_cut"]
    assert (cut["torn_bytes"], cut["log_level"]) == (len(torn), "warning")


async def test_appending_after_a_whole_last_record_without_a_newline_keeps_it(
    tmp_path: Path,
) -> None:
    # As a Rust kernel's log may end: read_log keeps such a record, so appending must too.
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        async with SessionLogRecorder(bus, path):
            bus.publish(page_out(1))
            bus.publish(page_out(2))
        path.write_bytes(path.read_bytes().rstrip(b"\n"))
        with capture_logs() as logs:
            async with SessionLogRecorder(bus, path, append=True):
                bus.publish(page_out(3))
    assert [e.seq for e in read_log(path)] == [1, 2, 3]
    assert not [e for e in logs if e["event"] == "session_log_torn_tail_cut"]


async def test_appending_to_a_file_without_a_torn_line_changes_nothing_before_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        async with SessionLogRecorder(bus, path):
            bus.publish(page_out(1))
        before = path.read_bytes()
        with capture_logs() as logs:
            async with SessionLogRecorder(bus, path, append=True):
                bus.publish(page_out(2))
    assert path.read_bytes().startswith(before)
    assert not [e for e in logs if e["event"] == "session_log_torn_tail_cut"]
    empty = tmp_path / "new.jsonl"  # append=True creates a missing file
    async with EventBus() as bus, SessionLogRecorder(bus, empty, append=True):
        bus.publish(page_out(1))
    assert [e.seq for e in read_log(empty)] == [1]


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(recorder_module.os, "fsync", counting_fsync)
    return calls


async def test_fsync_always_syncs_every_batch(tmp_path: Path, fsyncs: list[int]) -> None:
    async with (
        EventBus() as bus,
        SessionLogRecorder(bus, tmp_path / "s.jsonl", fsync="always", batch_size=1) as rec,
    ):
        for turn in range(5):
            await bus.apublish(page_out(turn))
        await rec.flush()
        assert rec.statistics().batches == 5
        assert len(fsyncs) == 5
    assert rec.statistics().fsyncs == len(fsyncs) == 5


async def test_fsync_never_does_not_sync(tmp_path: Path, fsyncs: list[int]) -> None:
    async with EventBus() as bus, SessionLogRecorder(bus, tmp_path / "s.jsonl", fsync="never"):
        for turn in range(5):
            await bus.apublish(page_out(turn))
    assert fsyncs == []


async def test_fsync_batch_syncs_when_idle_and_on_exit(tmp_path: Path, fsyncs: list[int]) -> None:
    async with EventBus() as bus:
        async with SessionLogRecorder(bus, tmp_path / "s.jsonl", batch_size=2) as rec:
            for turn in range(1, 6):
                bus.publish(page_out(turn))
            await rec.flush()  # three batches; only the last finds the queue empty
            assert (rec.statistics().batches, len(fsyncs)) == (3, 1)
            bus.publish(page_out(6))
        # The drain on exit wrote the last one and synced it.
        assert (rec.statistics().written, len(fsyncs)) == (6, 2)


async def test_a_failed_write_propagates_out_of_the_recorder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(recorder_module.os, "fsync", broken_fsync)
    async with EventBus() as bus:
        with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
            async with SessionLogRecorder(bus, tmp_path / "s.jsonl", fsync="always"):
                await bus.apublish(page_out(1))
                await anyio.sleep_forever()
    assert info.group_contains(OSError, match="No space left")


async def test_bus_closing_first_leaves_a_complete_log(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    bus: EventBus[Any] = EventBus()
    async with SessionLogRecorder(bus, path) as recorder:
        bus.publish(page_out(1))
        bus.publish(page_out(2))
        bus.close()
        await recorder.flush()
        assert recorder.statistics().written == 2
    assert [e.seq for e in read_log(path)] == [1, 2]


async def test_flush_needs_a_running_recorder(tmp_path: Path) -> None:
    async with EventBus() as bus:
        recorder = SessionLogRecorder(bus, tmp_path / "s.jsonl")
        with pytest.raises(RuntimeError, match=r"^the recorder is not running"):
            await recorder.flush()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"overflow": "wait"},
            r"^overflow must be one of 'drop_oldest', 'drop_newest', 'block', got 'wait'$",
        ),
        ({"fsync": "sometimes"}, r"^fsync must be one of 'always', 'batch', 'never', got "),
        ({"batch_size": 0}, r"^batch_size must be >= 1, got 0$"),
        ({"max_buffer_size": 0}, r"^max_buffer_size must be >= 1, got 0$"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SessionLogRecorder(EventBus(), tmp_path / "s.jsonl", **kwargs)


@pytest.mark.parametrize("name", ["batch_size", "max_buffer_size"])
@pytest.mark.parametrize("value", [2.0, True, "8"])
def test_sizes_of_the_wrong_type_are_a_type_error(
    tmp_path: Path, name: str, value: object
) -> None:
    with pytest.raises(TypeError, match=rf"^{name} must be an int, got {type(value).__name__}$"):
        SessionLogRecorder(EventBus(), tmp_path / "s.jsonl", **{name: value})  # type: ignore[arg-type]
