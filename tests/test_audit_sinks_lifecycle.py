"""The sinks' lifecycle: what close(), a closed sink and a broken sink do, the same for all."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import anyio
import pytest
from structlog.testing import capture_logs

from audit import AuditEntry, AuditTrail, Other, attach_audit_trail
from audit.sinks import JsonlSink, SqliteSink, verify_sink
from eventbus import EventBus
from eventbus.events import Category, KernelEvent

pytestmark = pytest.mark.anyio

Sink = SqliteSink | JsonlSink


class Ping(KernelEvent, tag="lifecycle_ping", frozen=True, kw_only=True):
    category: ClassVar[Category] = Category.IPC
    n: int


def entries_of(n: int) -> list[AuditEntry]:
    trail = AuditTrail()
    for i in range(n):
        trail.append(f"actor-{i % 2}", Other(detail=f"d{i}"), f"r{i}", ts_ns=1000 + i)
    return trail.entries()


@pytest.fixture(params=["sqlite", "jsonl"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_sink(kind: str, directory: Path) -> Sink:
    return (
        SqliteSink(directory / "audit.db")
        if kind == "sqlite"
        else JsonlSink(directory / "audit.jsonl")
    )


def files_of(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory`` and its bytes: a store and its companions."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def closed_message(sink: Sink) -> str:
    return rf"^the sink at {re.escape(repr(sink.path))} is closed$"


def break_sink(sink: Sink, entries: list[AuditEntry], monkeypatch: pytest.MonkeyPatch) -> None:
    """Write ``entries``, then make one more write fail with the store's own error."""
    sink.write(entries)
    if isinstance(sink, SqliteSink):
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed"):
            sink.write(entries[-1:])  # a duplicate seq
        return

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "write", full_disk)
        with pytest.raises(OSError, match="No space left on device"):
            sink.write(entries_of(len(entries) + 1)[-1:])


def test_close_is_idempotent_and_keeps_what_was_committed(kind: str, tmp_path: Path) -> None:
    entries = entries_of(5)
    sink = open_sink(kind, tmp_path)
    sink.write(entries)
    sink.close()
    after_first = files_of(tmp_path)
    assert sink.close() is None
    with sink:  # leaving the block closes again: still nothing happens
        pass
    assert files_of(tmp_path) == after_first
    assert repr(sink) == f"<{type(sink).__name__} {sink.path!r} closed>"
    assert verify_sink(sink.path) is None
    with open_sink(kind, tmp_path) as again:
        assert again.load_tail(10) == entries


def test_a_closed_sink_refuses_every_write_and_touches_nothing(kind: str, tmp_path: Path) -> None:
    entries = entries_of(4)
    sink = open_sink(kind, tmp_path)
    sink.write(entries[:2])
    sink.close()
    before = files_of(tmp_path)
    with pytest.raises(anyio.ClosedResourceError, match=closed_message(sink)):
        sink.write(entries[2:])
    with pytest.raises(anyio.ClosedResourceError, match=closed_message(sink)):
        sink.write([])  # an empty batch is refused too, not silently accepted
    assert files_of(tmp_path) == before


def test_a_closed_sink_refuses_reads(kind: str, tmp_path: Path) -> None:
    sink = open_sink(kind, tmp_path)
    sink.write(entries_of(3))
    sink.close()
    for n in (0, 1, 10):
        with pytest.raises(anyio.ClosedResourceError, match=closed_message(sink)):
            sink.load_tail(n)


def test_a_closed_sqlite_sink_refuses_queries(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "audit.db")
    sink.close()
    with pytest.raises(anyio.ClosedResourceError, match=closed_message(sink)):
        sink.query(actor="actor-0")


def test_a_bad_argument_is_a_value_error_open_or_closed(kind: str, tmp_path: Path) -> None:
    sink = open_sink(kind, tmp_path)
    with pytest.raises(ValueError, match=r"^n must be >= 0, got -1$"):
        sink.load_tail(-1)
    sink.close()
    with pytest.raises(ValueError, match=r"^n must be >= 0, got -1$"):
        sink.load_tail(-1)


def test_a_broken_sink_refuses_every_write_but_still_reads(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = entries_of(3)
    with open_sink(kind, tmp_path) as sink:
        break_sink(sink, entries, monkeypatch)
        broken = rf"^the sink at {re.escape(repr(sink.path))} failed earlier and accepts no more"
        with pytest.raises(anyio.BrokenResourceError, match=broken):
            sink.write(entries_of(5)[4:])
        with pytest.raises(anyio.BrokenResourceError, match=broken):
            sink.write([])
        assert sink.load_tail(3) == entries
        assert repr(sink) == f"<{type(sink).__name__} {sink.path!r} failed>"
    assert verify_sink(sink.path) is None


def test_a_broken_sink_once_closed_says_it_is_closed(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = open_sink(kind, tmp_path)
    break_sink(sink, entries_of(2), monkeypatch)
    sink.close()
    sink.close()
    with pytest.raises(anyio.ClosedResourceError, match=closed_message(sink)):
        sink.write(entries_of(5)[4:])
    with pytest.raises(anyio.ClosedResourceError, match=closed_message(sink)):
        sink.load_tail(1)


class SignallingLock:
    """A lock that says when a second thread starts waiting for it."""

    def __init__(self, owner: threading.Thread) -> None:
        self._lock = threading.Lock()
        self._owner = owner
        self.waiting = threading.Event()

    def __enter__(self) -> None:
        if threading.current_thread() is not self._owner:
            self.waiting.set()
        self._lock.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self._lock.release()


class PausedWrite:
    """Makes a sink's next write stop half-way (holding the sink) until :attr:`resume` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.entered = threading.Event()
        self.resume = threading.Event()

    def _pause(self) -> None:
        self.entered.set()
        assert self.resume.wait(10)

    def arm(self, sink: Sink) -> None:
        if isinstance(sink, SqliteSink):

            def trace(statement: str) -> None:
                if statement.startswith("COMMIT"):  # the batch is inserted, not committed
                    self._pause()

            sink._conn.set_trace_callback(trace)
            return
        real_fsync = os.fsync

        def slow_fsync(fd: int) -> None:  # the batch is written, not synced
            self._pause()
            real_fsync(fd)

        self._monkeypatch.setattr(os, "fsync", slow_fsync)


@pytest.fixture
def paused_write(monkeypatch: pytest.MonkeyPatch) -> Iterator[PausedWrite]:
    paused = PausedWrite(monkeypatch)
    yield paused
    paused.resume.set()  # never leave a thread waiting


def test_close_waits_for_a_write_in_progress_in_another_thread(
    kind: str, tmp_path: Path, paused_write: PausedWrite
) -> None:
    entries = entries_of(4)
    sink = open_sink(kind, tmp_path)
    sink.write(entries[:2])
    paused_write.arm(sink)
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            sink.write(entries[2:])
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    writer = threading.Thread(target=write)
    lock = SignallingLock(owner=writer)
    sink._lock = lock  # type: ignore[assignment]
    writer.start()
    assert paused_write.entered.wait(10)  # the write holds the sink, half-way through
    closer = threading.Thread(target=sink.close)
    closer.start()
    assert lock.waiting.wait(10)  # close() has started and waits for the write
    paused_write.resume.set()
    writer.join(10)
    closer.join(10)
    assert not writer.is_alive() and not closer.is_alive()
    assert outcome == [None]  # the write completed on a store still open
    with pytest.raises(anyio.ClosedResourceError, match=closed_message(sink)):
        sink.load_tail(1)
    with open_sink(kind, tmp_path) as again:
        assert again.load_tail(10) == entries
    assert verify_sink(sink.path) is None


def test_restore_from_a_closed_sink_raises_and_restores_nothing(kind: str, tmp_path: Path) -> None:
    sink = open_sink(kind, tmp_path)
    sink.write(entries_of(3))
    sink.close()
    trail = AuditTrail()
    with pytest.raises(anyio.ClosedResourceError, match=closed_message(sink)):
        trail.restore(sink)
    assert (len(trail), trail.last_seq, trail.statistics().restored) == (0, 0, 0)


async def test_resume_from_a_closed_sink_fails_to_attach(kind: str, tmp_path: Path) -> None:
    sink = open_sink(kind, tmp_path)
    sink.write(entries_of(3))
    sink.close()
    async with EventBus() as bus:
        with pytest.raises(anyio.ClosedResourceError, match=closed_message(sink)):
            async with attach_audit_trail(bus, AuditTrail(), sink=sink, resume=True):
                pass  # pragma: no cover - never entered


async def test_a_sink_closed_under_a_running_auditor_is_a_counted_sink_error(
    kind: str, tmp_path: Path
) -> None:
    sink = open_sink(kind, tmp_path)
    trail = AuditTrail()
    with capture_logs() as logs:
        async with EventBus() as bus:
            async with attach_audit_trail(bus, trail, sink=sink, on_sink_error="count") as auditor:
                bus.publish(Ping(n=1))
                await auditor.flush()
                sink.close()  # too early: the auditor is still running
                bus.publish(Ping(n=2))
                with anyio.fail_after(5):
                    await auditor.flush()
            stats = auditor.statistics()
    assert (stats.sink_written, stats.sink_errors, stats.sink_lost) == (1, 1, 1)
    [failed] = [log for log in logs if log["event"] == "audit_sink_failed"]
    assert failed["error"] == f'ClosedResourceError("the sink at {sink.path!r} is closed")'
    assert len(trail) == 2
    with open_sink(kind, tmp_path) as again:
        assert again.load_tail(10) == trail.entries()[:1]
