"""The session log recorder under load and at its edges: exit and flush end while publishers
keep going, a cancelled exit leaves a valid log, losses at the end are marked, a failed enter
leaves nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from eventbus import EventBus
from eventbus.events import PageOut
from eventbus.replay import LogGap, SessionLogRecorder, read_log

pytestmark = pytest.mark.anyio


def page_out(turn: int) -> PageOut:
    return PageOut(turn=turn, handle=f"h{turn}", tokens=turn)


async def _publish_forever(bus: EventBus[Any], started: anyio.Event, limit: int | None) -> None:
    """apublish without end (or up to ``limit`` envelopes); ``started`` once 50 went out."""
    turn = 0
    while limit is None or turn < limit:
        turn += 1
        await bus.apublish(page_out(turn))
        if turn == 50:
            started.set()


async def test_exit_writes_what_was_published_before_it_while_apublish_goes_on(
    tmp_path: Path,
) -> None:
    # The producer outlives the exit: exit drains up to the seq published when it began, then
    # returns. (Bounded, so that a drain chasing the producer fails the assertion, not hangs.)
    path = tmp_path / "s.jsonl"
    with anyio.fail_after(30):
        async with EventBus() as bus, anyio.create_task_group() as tg:
            started = anyio.Event()
            recorder = SessionLogRecorder(
                bus, path, max_buffer_size=8, batch_size=2, fsync="never"
            )
            async with recorder:
                tg.start_soon(_publish_forever, bus, started, 5000)
                await started.wait()
                target = bus.statistics().published  # exit begins now: nothing runs between
            assert bus.statistics().published < 5000  # the producer is still going
            tg.cancel_scope.cancel()
    log = read_log(path)
    assert [e.seq for e in log] == list(range(1, target + 1))
    assert log.gaps == ()
    assert recorder.statistics().written == target


async def test_a_cancelled_exit_stops_after_a_batch_and_marks_the_rest_as_a_gap(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus:
        recorder = SessionLogRecorder(bus, path, batch_size=4)
        with anyio.CancelScope() as scope:
            async with recorder:
                for turn in range(1, 51):
                    bus.publish(page_out(turn))  # the recorder has not run yet
                scope.cancel()
        assert scope.cancelled_caught
    log = read_log(path)
    assert [e.seq for e in log] == [1, 2, 3, 4]
    assert log.gaps == (LogGap(first_seq=5, last_seq=50, lost=46),)
    assert path.read_bytes().endswith(b'{"gap":{"first_seq":5,"last_seq":50,"lost":46}}\n')
    stats = recorder.statistics()
    assert (stats.written, stats.gaps, stats.lost, stats.skipped) == (4, 1, 46, 0)


async def test_a_deadline_ends_an_exit_that_publishers_keep_busy(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    with anyio.fail_after(30):
        async with EventBus() as bus, anyio.create_task_group() as tg:
            started = anyio.Event()
            recorder = SessionLogRecorder(bus, path, max_buffer_size=64, batch_size=1)
            with anyio.CancelScope() as exit_scope:
                async with recorder:
                    # (Bounded, so that an exit deaf to the deadline fails, not hangs.)
                    tg.start_soon(_publish_forever, bus, started, 5000)
                    await started.wait()
                    exit_scope.cancel()
            assert exit_scope.cancelled_caught
            tg.cancel_scope.cancel()
    log = read_log(path)  # every line whole: the log reads back
    seqs = [e.seq for e in log]
    assert seqs == list(range(1, len(seqs) + 1))
    (gap,) = log.gaps
    assert gap.first_seq == len(seqs) + 1
    assert recorder.statistics().lost == gap.lost


async def test_flush_returns_once_what_was_published_is_written_while_apublish_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.jsonl"
    async with EventBus() as bus, anyio.create_task_group() as tg:
        started = anyio.Event()
        async with SessionLogRecorder(
            bus, path, max_buffer_size=64, batch_size=16, fsync="never"
        ) as recorder:
            tg.start_soon(_publish_forever, bus, started, None)
            await started.wait()
            target = bus.statistics().published
            with anyio.fail_after(10):
                await recorder.flush()
            assert recorder.statistics().written >= target
            assert [e.seq for e in read_log(path)][:target] == list(range(1, target + 1))
            tg.cancel_scope.cancel()


async def test_flush_writes_the_gap_marker_for_envelopes_dropped_last(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    async with (
        EventBus() as bus,
        SessionLogRecorder(bus, path, overflow="drop_newest", max_buffer_size=2) as recorder,
    ):
        for turn in range(1, 6):
            bus.publish(page_out(turn))  # 3, 4 and 5 do not fit
        with anyio.fail_after(5):
            await recorder.flush()
        # A crash now would leave this file: the hole at its end is marked.
        log = read_log(path)
        assert [e.seq for e in log] == [1, 2]
        assert log.gaps == (LogGap(first_seq=3, last_seq=5, lost=3),)
        bus.publish(page_out(6))
    log = read_log(path)
    assert [e.seq for e in log] == [1, 2, 6]
    assert log.gaps == (LogGap(first_seq=3, last_seq=5, lost=3),)  # marked once


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
async def test_losses_just_before_exit_are_marked_and_counted(tmp_path: Path, policy: Any) -> None:
    path = tmp_path / "s.jsonl"
    async with (
        EventBus() as bus,
        SessionLogRecorder(bus, path, overflow=policy, max_buffer_size=2) as recorder,
    ):
        for turn in range(1, 11):
            bus.publish(page_out(turn))  # no await: the queue overflows
    log = read_log(path)
    expected_seqs, gap = {
        "drop_newest": ([1, 2], LogGap(first_seq=3, last_seq=10, lost=8)),
        "drop_oldest": ([9, 10], LogGap(first_seq=1, last_seq=8, lost=8)),
    }[policy]
    assert [e.seq for e in log] == expected_seqs
    assert log.gaps == (gap,)
    stats = recorder.statistics()
    assert (stats.written, stats.gaps, stats.lost, stats.skipped) == (2, 1, 8, 0)


async def test_a_single_envelope_lost_last_is_marked(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    async with (
        EventBus() as bus,
        SessionLogRecorder(bus, path, overflow="drop_newest", max_buffer_size=1) as recorder,
    ):
        bus.publish(page_out(1))
        bus.publish(page_out(2))  # does not fit
        with anyio.fail_after(5):
            await recorder.flush()
        assert read_log(path).gaps == (LogGap(first_seq=2, last_seq=2, lost=1),)
        bus.publish(page_out(3))
        bus.publish(page_out(4))  # does not fit either: marked on exit
    log = read_log(path)
    assert [e.seq for e in log] == [1, 3]
    assert log.gaps == (
        LogGap(first_seq=2, last_seq=2, lost=1),
        LogGap(first_seq=4, last_seq=4, lost=1),
    )


async def test_a_drop_newest_loss_when_the_bus_closes_first_is_marked(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    bus: EventBus[Any] = EventBus()
    async with SessionLogRecorder(
        bus, path, overflow="drop_newest", max_buffer_size=1
    ) as recorder:
        for turn in range(1, 4):
            bus.publish(page_out(turn))
        bus.close()
        with anyio.fail_after(5):
            await recorder.flush()
        assert read_log(path).gaps == (LogGap(first_seq=2, last_seq=3, lost=2),)
    assert recorder.statistics().lost == 2


async def test_a_failed_enter_on_a_closed_bus_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    bus: EventBus[Any] = EventBus()
    bus.close()
    with pytest.raises(anyio.ClosedResourceError, match=r"^the bus is closed"):
        async with SessionLogRecorder(bus, path):
            pass
    assert not path.exists()
    async with EventBus() as open_bus, SessionLogRecorder(open_bus, path):  # a retry works
        open_bus.publish(page_out(1))
    assert [e.seq for e in read_log(path)] == [1]


async def test_a_failed_enter_on_an_existing_file_leaves_no_subscription(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"")
    async with EventBus() as bus:
        with pytest.raises(FileExistsError, match="File exists"):
            async with SessionLogRecorder(bus, path):
                pass
        assert bus.statistics().open_subscriptions == 0
        bus.publish(page_out(1))  # nothing holds the bus back
    assert path.read_bytes() == b""
