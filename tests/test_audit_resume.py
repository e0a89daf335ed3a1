"""An auditor attached to a store that already holds entries: continue it, or refuse it.

A restarted process that forgot ``resume=True`` used to write seq 1 again: SQLite refused it
deep inside the writer thread, JSONL took it and its chain then read as tampered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from audit import AuditEntry, AuditMapper, Auditor, AuditTrail, Other, attach_audit_trail
from audit.sinks import AuditSink, JsonlSink, SqliteSink, verify_sink
from eventbus import EventBus
from eventbus.events import Category, KernelEvent

pytestmark = pytest.mark.anyio

MODES = pytest.mark.parametrize("mode", ["queued", "lossless", "inline"])


class Ping(KernelEvent, tag="ping", frozen=True, kw_only=True):
    category: ClassVar[Category] = Category.IPC
    n: int


def pinger() -> AuditMapper:
    mapper = AuditMapper()
    mapper.register(Ping, lambda e: ("pinger", Other(detail=f"ping:{e.n}")))
    return mapper


@pytest.fixture(params=["jsonl", "sqlite"])
def open_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], AuditSink]:
    path = tmp_path / f"audit.{'db' if request.param == 'sqlite' else 'jsonl'}"
    return lambda: SqliteSink(path) if request.param == "sqlite" else JsonlSink(path)


async def run(
    sink: AuditSink,
    trail: AuditTrail,
    numbers: range,
    mode: str,
    resume: bool = False,
    **options: Any,
) -> Auditor:
    async with (
        EventBus() as bus,
        attach_audit_trail(
            bus,
            trail,
            mapper=pinger(),
            sink=sink,
            mode=mode,  # type: ignore[arg-type]
            resume=resume,
            **options,
        ) as auditor,
    ):
        for n in numbers:
            bus.publish(Ping(n=n))
        await auditor.flush()
    return auditor


def path_of(sink: AuditSink) -> str:
    return sink._path  # type: ignore[attr-defined, no-any-return]


@MODES
async def test_a_restart_without_resume_is_refused_before_it_writes(
    open_sink: Callable[[], AuditSink], mode: str
) -> None:
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, AuditTrail(), range(5), mode)
    with open_sink() as sink:  # type: ignore[attr-defined]
        with pytest.raises(
            ValueError,
            match=r"^sink already holds entries up to seq 5 that this trail does not continue "
            r"\(its last seq is 0\): pass resume=True to continue the store, or give a new one$",
        ):
            await run(sink, AuditTrail(), range(5, 8), mode)
        assert [e.seq for e in sink.load_tail(100)] == [1, 2, 3, 4, 5]
    assert verify_sink(path_of(sink)) is None


@MODES
async def test_a_restart_with_resume_continues_the_store(
    open_sink: Callable[[], AuditSink], mode: str
) -> None:
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, AuditTrail(), range(5), mode)
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, AuditTrail(), range(5, 8), mode, resume=True)
        stored = sink.load_tail(100)
    assert [e.seq for e in stored] == list(range(1, 9))
    assert [e.action for e in stored][-1] == Other(detail="ping:7")
    assert verify_sink(path_of(sink)) is None


async def test_a_trail_that_ends_where_the_store_ends_needs_no_resume(
    open_sink: Callable[[], AuditSink],
) -> None:
    trail = AuditTrail()
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, trail, range(3), "queued")
        await run(sink, trail, range(3, 5), "queued")  # the same trail, attached again
        assert [e.seq for e in sink.load_tail(100)] == [1, 2, 3, 4, 5]
    assert verify_sink(path_of(sink)) is None


async def test_a_trail_with_the_stores_last_seq_but_another_chain_is_refused(
    open_sink: Callable[[], AuditSink],
) -> None:
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, AuditTrail(), range(2), "queued")
        impostor = AuditTrail()
        for i in range(2):
            impostor.append("someone", Other(detail=f"else {i}"))
        with pytest.raises(ValueError, match=r"^sink already holds entries up to seq 2 "):
            await run(sink, impostor, range(2, 3), "queued")
        assert len(sink.load_tail(100)) == 2


async def test_an_empty_store_needs_no_resume(open_sink: Callable[[], AuditSink]) -> None:
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, AuditTrail(), range(0), "queued")  # opened, nothing written
        await run(sink, AuditTrail(), range(2), "queued")
        assert [e.seq for e in sink.load_tail(100)] == [1, 2]


class GatedSink:
    """A sink whose reads wait until :attr:`release` is set (after setting :attr:`reading`)."""

    def __init__(self, inner: AuditSink) -> None:
        self.inner = inner
        self.reading = threading.Event()
        self.release = threading.Event()

    def write(self, entries: Sequence[AuditEntry]) -> None:
        self.inner.write(entries)

    def load_tail(self, n: int) -> list[AuditEntry]:
        self.reading.set()
        assert self.release.wait(10)
        return self.inner.load_tail(n)

    def close(self) -> None:
        self.inner.close()


async def publish_while_the_auditor_reads_the_store(
    sink: GatedSink, trail: AuditTrail, mode: str
) -> ValueError | None:
    """Start an auditor on ``sink`` and publish once while it reads the store; return
    the ValueError it was refused with, if it was."""
    refused: list[ValueError] = []
    async with EventBus() as bus:

        async def start() -> None:
            try:
                async with attach_audit_trail(
                    bus,
                    trail,
                    mapper=pinger(),
                    sink=sink,
                    mode=mode,  # type: ignore[arg-type]
                ) as auditor:
                    bus.publish(Ping(n=1))
                    await auditor.flush()
            except ValueError as exc:
                refused.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(start)
                assert await anyio.to_thread.run_sync(sink.reading.wait, 10)
                bus.publish(Ping(n=0))  # while the auditor checks the store
                sink.release.set()
    return refused[0] if refused else None


@MODES
async def test_an_auditor_refused_at_start_records_nothing_in_its_trail(
    open_sink: Callable[[], AuditSink], mode: str
) -> None:
    # In inline mode the tap was attached before the check: an event published while the
    # store was read went into the user's trail, though the auditor was refused.
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, AuditTrail(), range(3), "queued")
    trail = AuditTrail()
    with open_sink() as sink:  # type: ignore[attr-defined]
        refused = await publish_while_the_auditor_reads_the_store(GatedSink(sink), trail, mode)
        assert [e.seq for e in sink.load_tail(100)] == [1, 2, 3]
    assert isinstance(refused, ValueError)
    assert (len(trail), trail.last_seq) == (0, 0)


@MODES
async def test_an_auditor_accepted_at_start_writes_what_its_trail_holds(
    open_sink: Callable[[], AuditSink], mode: str
) -> None:
    trail = AuditTrail()
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, trail, range(3), "queued")
        refused = await publish_while_the_auditor_reads_the_store(GatedSink(sink), trail, mode)
        assert refused is None
        assert sink.load_tail(100) == trail.entries()
        assert trail.entries()[-1].action == Other(detail="ping:1")
    assert verify_sink(path_of(sink)) is None


# -- a trail attached to its store again: it fills in what the store lacks ---------------------


async def run_without_a_sink(trail: AuditTrail, numbers: range) -> None:
    async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=pinger()) as auditor:
        for n in numbers:
            bus.publish(Ping(n=n))
        await auditor.flush()


@MODES
@pytest.mark.parametrize("chain", [True, False], ids=["chain", "no_chain"])
async def test_a_trail_attached_again_writes_the_store_what_it_recorded_meanwhile(
    open_sink: Callable[[], AuditSink], mode: str, chain: bool
) -> None:
    trail = AuditTrail(hash_chain=chain)
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, trail, range(3), mode)
    await run_without_a_sink(trail, range(3, 5))  # seq 4 and 5: the store never saw them
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, trail, range(5, 7), mode)
        stored = sink.load_tail(100)
    assert [e.seq for e in stored] == list(range(1, 8))
    assert stored == trail.entries()
    assert verify_sink(path_of(sink)) is None


class FailingSink:
    """A sink whose writes raise ``OSError`` once :attr:`failing` is set."""

    def __init__(self, inner: AuditSink) -> None:
        self.inner = inner
        self.failing = False

    def write(self, entries: Sequence[AuditEntry]) -> None:
        if self.failing:
            raise OSError(28, "No space left on device")
        self.inner.write(entries)

    def load_tail(self, n: int) -> list[AuditEntry]:
        return self.inner.load_tail(n)

    def close(self) -> None:
        self.inner.close()


@MODES
async def test_a_trail_kept_after_its_sink_failed_fills_the_store_when_attached_again(
    open_sink: Callable[[], AuditSink], mode: str
) -> None:
    trail = AuditTrail()
    with open_sink() as inner:  # type: ignore[attr-defined]
        sink = FailingSink(inner)
        async with (
            EventBus() as bus,
            attach_audit_trail(
                bus,
                trail,
                mapper=pinger(),
                sink=sink,
                mode=mode,  # type: ignore[arg-type]
                on_sink_error="count",
            ) as auditor,
        ):
            for n in range(3):
                bus.publish(Ping(n=n))
            await auditor.flush()
            sink.failing = True  # the disk fills up
            for n in range(3, 6):
                bus.publish(Ping(n=n))
            await auditor.flush()
        stats = auditor.statistics()
        assert (stats.sink_written, stats.sink_errors, stats.sink_lost) == (3, 1, 3)
        assert [e.seq for e in inner.load_tail(100)] == [1, 2, 3]
    with open_sink() as sink:  # the disk has room again: the same trail, attached again
        await run(sink, trail, range(6, 7), mode)
        assert sink.load_tail(100) == trail.entries()
        assert trail.last_seq == 7
    assert verify_sink(path_of(sink)) is None


async def test_a_trail_that_evicted_only_its_anchor_entry_still_continues_the_store(
    open_sink: Callable[[], AuditSink],
) -> None:
    trail = AuditTrail(capacity=3)
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, trail, range(2), "queued")
    await run_without_a_sink(trail, range(2, 5))  # holds 3..5; seq 2 is its anchor
    assert trail.anchor[0] == 2
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, trail, range(5, 6), "queued")
        assert [e.seq for e in sink.load_tail(100)] == [1, 2, 3, 4, 5, 6]
    assert verify_sink(path_of(sink)) is None


@MODES
async def test_a_trail_that_evicted_what_the_store_lacks_is_refused_naming_its_oldest_seq(
    open_sink: Callable[[], AuditSink], mode: str
) -> None:
    trail = AuditTrail(capacity=3)
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, trail, range(2), mode)
    await run_without_a_sink(trail, range(2, 7))  # seq 3..7; holds 5..7
    with open_sink() as sink:  # type: ignore[attr-defined]
        with pytest.raises(
            ValueError,
            match=r"^sink already holds entries up to seq 2 that this trail does not continue "
            r"\(its last seq is 7\): the trail no longer holds the entries after it \(its "
            r"oldest is seq 5\), so it cannot fill the gap: give it a new store$",
        ):
            await run(sink, trail, range(7, 8), mode)
        assert [e.seq for e in sink.load_tail(100)] == [1, 2]
    assert trail.last_seq == 7


async def test_resume_into_a_trail_that_holds_the_stores_entries_is_refused(
    open_sink: Callable[[], AuditSink],
) -> None:
    trail = AuditTrail()
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, trail, range(3), "queued")
        with pytest.raises(
            ValueError,
            match=r"^this trail already holds the sink's entries from seq 1: restoring would "
            r"record them twice; attach it without resume=True \(it then writes the store "
            r"the entries it lacks\), or restore a new trail$",
        ):
            await run(sink, trail, range(3, 4), "queued", resume=True)
        assert [e.seq for e in sink.load_tail(100)] == [1, 2, 3]
    assert [e.seq for e in trail] == [1, 2, 3]


async def test_a_used_trail_that_does_not_continue_the_store_is_not_told_to_resume(
    open_sink: Callable[[], AuditSink],
) -> None:
    # resume=True would put the store's three entries before the trail's own two.
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, AuditTrail(), range(3), "queued")
        other = AuditTrail()
        await run_without_a_sink(other, range(2))
        with pytest.raises(
            ValueError,
            match=r"^sink already holds entries up to seq 3 that this trail does not continue "
            r"\(its last seq is 2\): give it a new store, or resume the store into a new "
            r"trail$",
        ):
            await run(sink, other, range(2, 3), "queued")
        assert len(sink.load_tail(100)) == 3


@MODES
async def test_what_a_trail_fills_in_takes_no_room_from_new_entries(
    open_sink: Callable[[], AuditSink], mode: str
) -> None:
    # Inline, an entry that finds the sink's buffer full never reaches the store (a hole
    # in its chain); queued, the consumer would wait behind the entries being filled in.
    trail = AuditTrail()
    with open_sink() as sink:  # type: ignore[attr-defined]
        await run(sink, trail, range(1), mode)
    await run_without_a_sink(trail, range(1, 5))  # four entries the store lacks
    with open_sink() as sink:  # type: ignore[attr-defined]
        auditor = await run(sink, trail, range(5, 7), mode, sink_buffer_size=2)
        assert auditor.statistics().sink_lost == 0
        assert sink.load_tail(100) == trail.entries()
    assert verify_sink(path_of(sink)) is None
