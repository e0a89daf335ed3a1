"""Replaying a session log into a bus: the live run again, except for ``replayed``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from eventbus import Envelope, EventBus, Subscription
from eventbus.events import PageOut, Resumed, Suspended
from eventbus.replay import SessionLogRecorder, read_log, rebuild_os_snapshot, replay

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures"


def drain(sub: Subscription[Any]) -> list[Envelope[Any]]:
    out: list[Envelope[Any]] = []
    while True:
        try:
            out.append(sub.receive_nowait())
        except anyio.WouldBlock:
            return out


def live(envelopes: list[Envelope[Any]]) -> list[Envelope[Any]]:
    return [msgspec.structs.replace(e, replayed=False) for e in envelopes]


async def test_replay_delivers_the_recorded_envelopes_marked_replayed() -> None:
    log = read_log(FIXTURES / "events_ask_user.jsonl")
    async with EventBus() as bus:
        with bus.subscribe(max_buffer_size=100) as sub:
            assert await replay(log, bus) == 18
            received = drain(sub)
        assert bus.statistics().published == 18
    assert all(e.replayed for e in received)
    assert live(received) == list(log)  # seq, ids, timestamps, causation: all as recorded
    assert received[5].causation_id == log[4].event_id


async def test_replay_keeps_the_seq_gaps_of_a_lossy_log() -> None:
    log = [
        Envelope(3, "e3", 30, "page_out", PageOut(turn=1, handle="a")),
        Envelope(7, "e7", 70, "page_out", PageOut(turn=2, handle="b")),
    ]
    async with EventBus() as bus:
        with bus.subscribe() as sub:
            await replay(log, bus)
            assert [e.seq for e in drain(sub)] == [3, 7]


async def test_replay_refuses_a_bus_past_the_logs_first_seq_before_publishing() -> None:
    log = read_log(FIXTURES / "events_ask_user.jsonl")
    async with EventBus() as bus:
        bus.publish(PageOut(turn=0, handle="x"))
        with bus.subscribe() as sub:
            with pytest.raises(
                ValueError,
                match=r"^the bus has already published seq 1 and the log starts at seq 1: "
                r"replay into a fresh bus, or pass keep_seq=False to renumber$",
            ):
                await replay(log, bus)
            assert drain(sub) == []


async def test_replay_of_a_log_numbered_from_0_says_no_bus_numbers_so() -> None:
    # It said "the bus has already published seq 0", of a fresh bus.
    log = [Envelope(0, "e0", 1, "page_out", PageOut(turn=0, handle="x"))]
    async with EventBus() as bus:
        with pytest.raises(
            ValueError,
            match=r"^the log starts at seq 0, and a bus numbers its envelopes from 1: pass "
            r"keep_seq=False to renumber$",
        ):
            await replay(log, bus)
        assert await replay(log, bus, keep_seq=False) == 1


async def test_replay_without_keep_seq_renumbers_and_keeps_the_rest() -> None:
    log = read_log(FIXTURES / "events_ask_user.jsonl")
    async with EventBus() as bus:
        for turn in range(5):
            bus.publish(PageOut(turn=turn, handle="x"))
        with bus.subscribe(max_buffer_size=100) as sub:
            await replay(log, bus, keep_seq=False)
            received = drain(sub)
    assert [e.seq for e in received] == list(range(6, 24))
    assert [(e.event_id, e.ts_ns, e.event) for e in received] == [
        (e.event_id, e.ts_ns, e.event) for e in log
    ]


async def test_replay_stops_at_a_seq_that_goes_backwards_with_keep_seq() -> None:
    log = [
        Envelope(1, "a", 0, "page_out", PageOut(turn=1, handle="a")),
        Envelope(2, "b", 0, "page_out", PageOut(turn=2, handle="b")),
        Envelope(1, "c", 0, "page_out", PageOut(turn=3, handle="c")),
    ]
    async with EventBus() as bus:
        with bus.subscribe() as sub:
            with pytest.raises(ValueError, match=r"^envelope.seq must be greater than"):
                await replay(log, bus)
            assert [e.event_id for e in drain(sub)] == ["a", "b"]


async def test_replay_of_nothing_publishes_nothing() -> None:
    async with EventBus() as bus:
        assert await replay([], bus) == 0
        assert bus.statistics().published == 0


async def test_replay_waits_for_a_full_lossless_subscriber() -> None:
    log = [Envelope(i, f"e{i}", i, "page_out", PageOut(turn=i, handle="h")) for i in range(1, 201)]
    seen: list[int] = []
    async with EventBus() as bus:
        sub = bus.subscribe(overflow="block", max_buffer_size=1)

        async def consume() -> None:
            async for envelope in sub:
                seen.append(envelope.seq)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await replay(log, bus)
                bus.close()
    assert seen == list(range(1, 201))


async def test_a_recorded_replay_records_the_same_log(tmp_path: Path) -> None:
    # Live run -> log A; replay A into a fresh bus with a recorder -> log B; A and B agree.
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    async with EventBus() as bus, SessionLogRecorder(bus, first):
        await bus.apublish(Suspended(turn=1, reason="ask_user", pending_calls=("c1",)))
        envelope = await bus.apublish(Resumed(turn=2))
        with bus.caused_by(envelope):
            await bus.apublish(PageOut(turn=2, handle="h"))
    recorded = read_log(first)
    async with EventBus() as bus, SessionLogRecorder(bus, second):
        await replay(recorded, bus)
    again = read_log(second)
    assert all(e.replayed for e in again)
    assert live(list(again)) == list(recorded)
    assert rebuild_os_snapshot(again) == rebuild_os_snapshot(recorded)


async def test_replay_lets_other_tasks_run_during_a_long_log() -> None:
    log = [Envelope(i, f"e{i}", i, "page_out", PageOut(turn=i, handle="h")) for i in range(1, 201)]
    published_when_run: list[int] = []
    async with EventBus() as bus:

        async def other_task() -> None:
            published_when_run.append(bus.statistics().published)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(other_task)
                assert await replay(log, bus) == 200
    # It ran in the middle of the replay, at one of its checkpoints (one every 64 at least;
    # trio may run the replay on to its next checkpoint first), not after it.
    assert len(published_when_run) == 1
    assert 0 < published_when_run[0] < 200
