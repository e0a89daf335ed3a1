"""Durable sinks: SQLite and JSONL, verify_sink, restore/resume, and sink faults."""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio
import msgspec
import pytest
from structlog.testing import capture_logs

from audit import (
    AuditEntry,
    AuditMapper,
    AuditTrail,
    EventsDropped,
    Other,
    attach_audit_trail,
)
from audit.sinks import AuditSink, JsonlSink, SqliteSink, read_jsonl, verify_sink
from eventbus import EventBus
from eventbus.events import Category, KernelEvent

pytestmark = pytest.mark.anyio


class Ping(KernelEvent, tag="ping", frozen=True, kw_only=True):
    category: ClassVar[Category] = Category.IPC
    n: int


def pinger() -> AuditMapper:
    mapper = AuditMapper()
    mapper.register(Ping, lambda e: (f"pinger-{e.n % 2}", Other(detail=f"ping:{e.n}")))
    return mapper


def trail_of(n: int, capacity: int = 1000) -> AuditTrail:
    trail = AuditTrail(capacity)
    for i in range(n):
        trail.append(f"actor-{i % 2}", Other(detail=f"d{i}"), f"r{i}", ts_ns=1000 + i, kind="k")
    return trail


class MemorySink:
    """An in-memory sink that fails on chosen calls, recording every call."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.entries: list[AuditEntry] = []
        self.calls = 0
        self.fail_on = fail_on

    def write(self, entries: Sequence[AuditEntry]) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.entries.extend(entries)

    def load_tail(self, n: int) -> list[AuditEntry]:
        return self.entries[-n:] if n else []

    def close(self) -> None:
        pass


def test_memory_sink_satisfies_the_protocol(tmp_path: Path) -> None:
    assert isinstance(MemorySink(), AuditSink)
    with SqliteSink(tmp_path / "a.db") as s, JsonlSink(tmp_path / "a.jsonl") as j:
        assert isinstance(s, AuditSink)
        assert isinstance(j, AuditSink)


# -- SQLite ------------------------------------------------------------------------------------


def test_sqlite_stores_and_reloads_entries_exactly(tmp_path: Path) -> None:
    trail = trail_of(20)
    trail.append("system", EventsDropped(count=3, first_seq=4, last_seq=6))
    with SqliteSink(tmp_path / "audit.db") as sink:
        entries = trail.entries()
        sink.write(entries[:10])
        sink.write(entries[10:])
        assert sink.load_tail(1000) == entries
        assert sink.load_tail(3) == entries[-3:]
        assert sink.load_tail(0) == []
    assert verify_sink(tmp_path / "audit.db") is None


def test_sqlite_uses_wal_and_full_sync(tmp_path: Path) -> None:
    with SqliteSink(tmp_path / "audit.db") as sink:
        assert sink._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert sink._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_sqlite_is_queryable(tmp_path: Path) -> None:
    trail = trail_of(10)
    trail.append("system", EventsDropped(count=1, first_seq=1, last_seq=1), kind="gap", ts_ns=9)
    with SqliteSink(tmp_path / "audit.db") as sink:
        sink.write(trail.entries())
        assert [e.seq for e in sink.query(actor="actor-1")] == [2, 4, 6, 8, 10]
        assert [e.seq for e in sink.query(kind="gap")] == [11]
        assert [e.seq for e in sink.query(action_type="EventsDropped")] == [11]
        assert [e.seq for e in sink.query(since_seq=8)] == [8, 9, 10, 11]
        assert [e.seq for e in sink.query(since_seq=2, until_seq=4)] == [2, 3]
        assert [e.seq for e in sink.query(since_ns=1003, until_ns=1005)] == [4, 5]
        assert [e.seq for e in sink.query(actor="actor-0", limit=2)] == [1, 3]


def test_sqlite_refuses_a_duplicate_seq_and_breaks(tmp_path: Path) -> None:
    trail = trail_of(3)
    with SqliteSink(tmp_path / "audit.db") as sink:
        sink.write(trail.entries())
        with pytest.raises(sqlite3.IntegrityError):
            sink.write(trail.entries()[2:])
        with pytest.raises(anyio.BrokenResourceError, match=r"failed earlier"):
            sink.write(trail_of(5).entries()[4:])
        assert sink.load_tail(10) == trail.entries()


def test_sqlite_disk_full_keeps_what_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    big = AuditTrail()
    for i in range(400):
        big.append("a", Other(detail="x"), "y" * 2000, ts_ns=i)
    entries = big.entries()
    with SqliteSink(path) as sink:
        sink.write(entries[:10])
        pages = sink._conn.execute("PRAGMA page_count").fetchone()[0]
        sink._conn.execute(f"PRAGMA max_page_count={pages + 5}")  # a nearly full disk
        with pytest.raises(sqlite3.OperationalError, match="full"):
            sink.write(entries[10:])
        with pytest.raises(anyio.BrokenResourceError):
            sink.write(entries[10:11])
        assert sink.load_tail(1000) == entries[:10]
    assert verify_sink(path) is None


def _sqlite(path: Path, sql: str, *params: Any) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


@pytest.mark.parametrize(
    ("edit", "bad"),
    [
        ("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 5", 5),
        ("UPDATE audit_entries SET resource = 'x' WHERE seq = 1", 1),
        ("DELETE FROM audit_entries WHERE seq = 7", 7),
        ("DELETE FROM audit_entries WHERE seq >= 9", 9),
        ("DELETE FROM audit_entries WHERE seq = 1", 1),
        ("DELETE FROM audit_entries", 1),
        ("UPDATE audit_meta SET value = 'f' || value WHERE key = 'last_hash'", 12),
    ],
)
def test_verify_sink_finds_the_first_bad_seq_in_sqlite(
    tmp_path: Path, edit: str, bad: int
) -> None:
    path = tmp_path / "audit.db"
    with SqliteSink(path) as sink:
        sink.write(trail_of(12).entries())
    _sqlite(path, edit)
    assert verify_sink(path) == bad


@pytest.mark.parametrize(
    "damage",
    [
        "DELETE FROM audit_meta WHERE key = 'first_seq'",
        "DELETE FROM audit_meta WHERE key = 'last_hash'",
        "DELETE FROM audit_meta WHERE key IN ('last_seq', 'last_hash')",
        "UPDATE audit_meta SET value = 'x' WHERE key = 'last_seq'",
        "UPDATE audit_meta SET value = NULL WHERE key = 'first_prev_hash'",
    ],
)
def test_a_damaged_sqlite_anchor_is_reported_at_the_first_entry(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "audit.db"
    with SqliteSink(path) as sink:
        sink.write(trail_of(6).entries()[2:])  # a store that starts at seq 3
    _sqlite(path, damage)
    assert verify_sink(path) == 3
    _sqlite(path, "DELETE FROM audit_entries")
    assert verify_sink(path) == (1 if "first_seq'" in damage else 3)


def test_verify_sink_finds_two_swapped_sqlite_rows(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with SqliteSink(path) as sink:
        sink.write(trail_of(8).entries())
    _sqlite(path, "UPDATE audit_entries SET seq = -3 WHERE seq = 3")
    _sqlite(path, "UPDATE audit_entries SET seq = 3 WHERE seq = 4")
    _sqlite(path, "UPDATE audit_entries SET seq = 4 WHERE seq = -3")
    assert verify_sink(path) == 3


def test_an_empty_sqlite_store_is_intact(tmp_path: Path) -> None:
    SqliteSink(tmp_path / "audit.db").close()
    assert verify_sink(tmp_path / "audit.db") is None


# -- verifying a SQLite store leaves it as it was -----------------------------------------------


def files_in(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def cli_verify(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``eventbus audit verify PATH``'s output (it must exit 0)."""
    from eventbus._cli import main

    assert main(["audit", "verify", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_verifying_a_closed_sqlite_store_leaves_no_wal_or_shm_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.db"
    with SqliteSink(path) as sink:
        sink.write(trail_of(12).entries())
    before = files_in(tmp_path)
    assert list(before) == ["audit.db"]
    assert verify_sink(path) is None
    assert files_in(tmp_path) == before  # no audit.db-wal, no audit.db-shm, same bytes
    assert cli_verify(path, capsys) == f"{path}: intact (12 entries, seq 1..12)\n"
    assert files_in(tmp_path) == before


def test_verify_sees_what_an_open_sink_committed_to_the_wal_and_leaves_it_working(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.db"
    entries = trail_of(14).entries()
    with SqliteSink(path) as sink:
        sink.write(entries[:12])
        ignoring_the_wal = sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True)
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            ignoring_the_wal.execute("SELECT count(*) FROM audit_entries")
        ignoring_the_wal.close()  # every committed entry is still in audit.db-wal only
        assert verify_sink(path) is None
        assert cli_verify(path, capsys) == f"{path}: intact (12 entries, seq 1..12)\n"
        assert {"audit.db-wal", "audit.db-shm"} <= set(files_in(tmp_path))  # the sink's
        sink.write(entries[12:])  # the store still takes writes, and verify sees them
        assert cli_verify(path, capsys) == f"{path}: intact (14 entries, seq 1..14)\n"
        _sqlite(path, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 5")
        assert verify_sink(path) == 5  # a committed edit, in the WAL too
    assert list(files_in(tmp_path)) == ["audit.db"]  # the sink, closed last, removed them


def test_verify_never_applies_a_wal_a_crashed_writer_left(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    with SqliteSink(path) as sink:
        sink.write(trail_of(12).entries())
        for name in ("audit.db", "audit.db-wal"):  # what a writer killed now leaves behind
            (crashed / name).write_bytes((tmp_path / name).read_bytes())
    before = files_in(crashed)
    assert verify_sink(crashed / "audit.db") is None  # the entries are in the WAL only
    after = files_in(crashed)
    assert {name: after[name] for name in before} == before  # no checkpoint into the store
    assert set(after) <= {"audit.db", "audit.db-wal", "audit.db-shm"}


_WRITER = """
import sys
from audit import AuditTrail, Other
from audit.sinks import SqliteSink

trail = AuditTrail()
with SqliteSink(sys.argv[1]) as sink:
    for command in sys.stdin:
        for i in range(10):
            trail.append("writer", Other(detail=str(i)), "r")
        sink.write(trail.entries()[-10:])
        print("written", flush=True)
"""


def test_verify_reads_a_store_another_process_is_writing_without_disturbing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    path = tmp_path / "audit.db"
    root = Path(__file__).resolve().parent.parent
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    ) as writer:
        assert writer.stdin is not None and writer.stdout is not None
        try:
            for n in (10, 20, 30):
                writer.stdin.write("write\n")
                writer.stdin.flush()
                assert writer.stdout.readline() == "written\n"
                assert verify_sink(path) is None
                assert cli_verify(path, capsys) == f"{path}: intact ({n} entries, seq 1..{n})\n"
            writer.stdin.close()
            assert writer.wait(timeout=30) == 0
        finally:
            if writer.poll() is None:
                writer.kill()
    assert list(files_in(tmp_path)) == ["audit.db"]
    with SqliteSink(path) as sink:
        assert [e.seq for e in sink.load_tail(100)] == list(range(1, 31))
    assert verify_sink(path) is None


@pytest.mark.parametrize("open_writer", [False, True])
def test_the_verifying_connection_cannot_write(tmp_path: Path, open_writer: bool) -> None:
    from audit.sinks._sqlite import read_store

    path = tmp_path / "audit.db"
    with SqliteSink(path) as sink:
        sink.write(trail_of(3).entries())
        if not open_writer:
            sink.close()  # quiescent: opened read-write, with query_only
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            read_store(path, lambda conn: conn.execute("DELETE FROM audit_entries"))
    assert verify_sink(path) is None


# -- JSONL -------------------------------------------------------------------------------------


def test_jsonl_writes_one_entry_per_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    entries = trail_of(5).entries()
    with JsonlSink(path) as sink:
        sink.write(entries[:2])
        sink.write(entries[2:])
        assert sink.load_tail(2) == entries[3:]
    data = path.read_bytes()
    assert data.count(b"\n") == 5
    assert b"\r" not in data
    assert [msgspec.json.decode(line, type=AuditEntry) for line in data.splitlines()] == entries
    assert read_jsonl(path).entries == entries
    assert read_jsonl(path).torn_tail == 0
    assert verify_sink(path) is None


def test_a_torn_final_line_is_reported_on_read_never_merged(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    trail = trail_of(6)
    entries = trail.entries()
    with JsonlSink(path) as sink:
        sink.write(entries[:4])
    with open(path, "ab") as f:
        f.write(msgspec.json.encode(entries[4])[:30])  # a crash mid-line
    with capture_logs() as logs:
        contents = read_jsonl(path)
    assert contents.entries == entries[:4]
    assert contents.torn_tail == 30
    assert [log["event"] for log in logs] == ["audit_jsonl_torn_tail"]
    assert verify_sink(path) is None  # past the 4 acknowledged entries: never acknowledged

    with capture_logs() as logs, JsonlSink(path) as sink:  # reopening cuts the torn tail off
        assert sink.torn_tail == 30
        sink.write(entries[4:])
    assert logs[0]["event"] == "audit_jsonl_torn_tail"
    assert read_jsonl(path).entries == entries
    assert verify_sink(path) is None


def test_a_corrupt_middle_line_is_an_error_on_read(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(trail_of(4).entries())
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = b"{not json}\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(msgspec.DecodeError, match=r"^line 2: "):
        read_jsonl(path)
    assert verify_sink(path) == 2


@pytest.mark.parametrize(
    ("edit", "bad"),
    [("tamper", 3), ("drop", 3), ("swap", 3), ("cut_tail", 6), ("drop_head", 1)],
)
def test_verify_sink_finds_the_first_bad_seq_in_jsonl(tmp_path: Path, edit: str, bad: int) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(trail_of(8).entries())
    lines = path.read_bytes().splitlines(keepends=True)
    if edit == "tamper":
        lines[2] = lines[2].replace(b"actor-0", b"mallory")
    elif edit == "drop":
        del lines[2]
    elif edit == "swap":
        lines[2], lines[3] = lines[3], lines[2]
    elif edit == "cut_tail":
        del lines[5:]
    else:
        del lines[0]
    path.write_bytes(b"".join(lines))
    assert verify_sink(path) == bad


@pytest.mark.parametrize(
    ("edit", "reported"),
    [
        ("cut_tail", None),  # undetectable without the anchor, as documented
        ("cut_head", None),
        ("cut_all", None),
        ("drop", 3),  # the chain between the entries left is still checked
        ("tamper", 3),
        ("torn_tail", None),  # with no anchor nothing was acknowledged: a write cut short
    ],
)
def test_without_its_anchor_file_a_jsonl_store_is_checked_only_for_its_chain(
    tmp_path: Path, edit: str, reported: int | None
) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(trail_of(8).entries())
    Path(f"{path}.anchor").unlink()
    lines = path.read_bytes().splitlines(keepends=True)
    if edit == "cut_tail":
        del lines[5:]
    elif edit == "cut_head":
        del lines[:3]
    elif edit == "cut_all":
        lines = []
    elif edit == "drop":
        del lines[2]
    elif edit == "tamper":
        lines[2] = lines[2].replace(b"actor-0", b"mallory")
    else:
        lines[5] = lines[5][:20]
        del lines[6:]
    path.write_bytes(b"".join(lines))
    assert verify_sink(path) == reported


@pytest.mark.parametrize("anchor", [b"", b"{not json", b'{"first_seq": 3}', b"[1, 2]"])
def test_a_damaged_jsonl_anchor_is_reported_at_the_first_entry(
    tmp_path: Path, anchor: bytes
) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(trail_of(6).entries()[2:])
    Path(f"{path}.anchor").write_bytes(anchor)
    assert verify_sink(path) == 3
    path.write_bytes(b"")
    assert verify_sink(path) == 1


@pytest.mark.parametrize(
    ("anchor", "error"),
    [
        (b"", msgspec.DecodeError),
        (b"{not json", msgspec.DecodeError),
        (b'{"first_seq": 3}', msgspec.ValidationError),
        (b"[1, 2]", msgspec.ValidationError),
    ],
)
def test_a_jsonl_sink_refuses_a_damaged_anchor_and_changes_nothing(
    tmp_path: Path, anchor: bytes, error: type[Exception]
) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(trail_of(4).entries())
    Path(f"{path}.anchor").write_bytes(anchor)
    with path.open("ab") as f:
        f.write(b'{"seq": 5, "ts')  # a torn tail, which opening a sink would cut off
    before = files_in(tmp_path)
    message = rf"^the anchor file {re.escape(str(path))}\.anchor is damaged \(.+\); the sink "
    message += "will not write over it, since it is evidence of what the store held: keep "
    message += "it, and write to a new store$"
    with pytest.raises(error, match=message):
        JsonlSink(path)
    assert files_in(tmp_path) == before  # the evidence as it was
    path.unlink()
    with pytest.raises(error, match=message):
        JsonlSink(path)
    assert not path.exists()  # not created either


def oversized_anchor_message(path: Path) -> str:
    anchor = re.escape(f"{path}.anchor")
    return (
        rf"^the anchor file {anchor} is damaged \({anchor} holds more than 4096 bytes, the "
        r"most an anchor file may hold\); the sink will not write over it"
    )


def test_a_jsonl_anchor_padded_past_the_bound_is_damaged_however_well_it_decodes(
    tmp_path: Path,
) -> None:
    # An anchor is a few hundred bytes: a larger one was not written by a sink.
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(trail_of(6).entries()[2:])
    anchor = Path(f"{path}.anchor")
    valid = anchor.read_bytes()
    anchor.write_bytes(valid.ljust(4096))  # whitespace after JSON still decodes
    assert verify_sink(path) is None
    with JsonlSink(path):
        pass
    anchor.write_bytes(valid.ljust(4097))
    assert verify_sink(path) == 3
    before = files_in(tmp_path)
    with pytest.raises(msgspec.DecodeError, match=oversized_anchor_message(path)):
        JsonlSink(path)
    assert files_in(tmp_path) == before


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's /proc/self/io")
def test_a_huge_jsonl_anchor_is_never_read_whole(tmp_path: Path) -> None:
    # _read_anchor read the whole file: a hostile PATH.anchor of any size went into memory.
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(trail_of(4).entries())
    anchor = Path(f"{path}.anchor")
    with anchor.open("r+b") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: costs no disk, only the reading
    before = bytes_read_by_this_process()
    assert verify_sink(path) == 1
    with pytest.raises(msgspec.DecodeError, match=oversized_anchor_message(path)):
        JsonlSink(path)
    assert bytes_read_by_this_process() - before < 1024 * 1024
    assert anchor.stat().st_size == 64 * 1024 * 1024


def test_jsonl_fsync_failure_breaks_the_sink_and_keeps_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    entries = trail_of(6).entries()
    with JsonlSink(path) as sink:
        sink.write(entries[:3])

        def broken_fsync(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fsync", broken_fsync)
        with pytest.raises(OSError, match="Input/output error"):
            sink.write(entries[3:5])
        monkeypatch.undo()
        with pytest.raises(anyio.BrokenResourceError):
            sink.write(entries[5:])
    assert read_jsonl(path).entries[:3] == entries[:3]
    assert verify_sink(path) is None  # unsynced lines still chain; the anchor stayed at 3


# -- the consumer with a sink ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["queued", "lossless", "inline"])
async def test_flush_waits_until_the_sink_has_the_entries(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "audit.db"
    trail = AuditTrail()
    with SqliteSink(path) as sink:
        async with (
            EventBus() as bus,
            attach_audit_trail(
                bus,
                trail,
                mapper=pinger(),
                sink=sink,
                mode=mode,
                sink_batch_size=64,  # type: ignore[arg-type]
            ) as auditor,
        ):
            for i in range(500):
                bus.publish(Ping(n=i)) if mode != "lossless" else await bus.apublish(Ping(n=i))
            await auditor.flush()
            assert sink.load_tail(1000) == trail.entries()
        assert auditor.statistics().sink_written == 500
    assert verify_sink(path) is None


async def test_leaving_the_block_writes_what_is_pending(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail()
    with JsonlSink(path) as sink:
        async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=pinger(), sink=sink):
            for i in range(300):
                bus.publish(Ping(n=i))
    assert read_jsonl(path).entries == trail.entries()
    assert len(trail) == 300


async def fill_until_the_consumer_waits_on_the_sink(bus: EventBus[Any], trail: AuditTrail) -> None:
    """With a sink gated shut (batches of 2, a buffer of 4): 8 publishes leave the writer
    blocked on its first batch and the consumer waiting, 4 entries pending."""
    for i in range(4):
        bus.publish(Ping(n=i))
    await anyio.wait_all_tasks_blocked()  # the writer is blocked on a batch of 2
    for i in range(4, 8):
        bus.publish(Ping(n=i))
    await anyio.wait_all_tasks_blocked()  # the consumer waits: 4 entries pending
    assert len(trail) == 4


class GatedSink(MemorySink):
    """A sink whose writes block until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, entries: Sequence[AuditEntry]) -> None:
        assert self.gate.wait(10)
        super().write(entries)


async def test_a_slow_sink_pushes_back_on_the_consumer_not_on_publishers() -> None:
    sink = GatedSink()
    trail = AuditTrail()
    async with (
        EventBus() as bus,
        attach_audit_trail(
            bus,
            trail,
            mapper=pinger(),
            sink=sink,
            max_buffer_size=4,
            sink_batch_size=2,
            sink_buffer_size=4,
        ) as auditor,
    ):
        await fill_until_the_consumer_waits_on_the_sink(bus, trail)
        for i in range(8, 20):
            bus.publish(Ping(n=i))  # never blocks; the subscription drops instead
        sink.gate.set()
        await auditor.flush()
    assert sink.entries == trail.entries()
    drops = [e.action for e in trail if isinstance(e.action, EventsDropped)]
    assert drops
    assert auditor.statistics().seen + trail.statistics().dropped == 20


async def test_leaving_the_block_while_the_consumer_waits_on_the_sink_loses_nothing() -> None:
    sink = GatedSink()
    trail = AuditTrail()
    async with EventBus() as bus:
        async with attach_audit_trail(
            bus, trail, mapper=pinger(), sink=sink, sink_batch_size=2, sink_buffer_size=4
        ) as auditor:
            await fill_until_the_consumer_waits_on_the_sink(bus, trail)
            sink.gate.set()  # leave at once: the stop request finds the consumer waiting
        stats = auditor.statistics()
    assert [
        int(e.action.detail.split(":")[1]) for e in trail if isinstance(e.action, Other)
    ] == list(range(8))
    assert sink.entries == trail.entries()
    assert (stats.seen, stats.sink_written, stats.lagged) == (8, 8, 0)


async def test_inline_counts_entries_a_full_sink_buffer_cannot_take() -> None:
    sink = MemorySink()
    trail = AuditTrail()
    with capture_logs() as logs:
        async with (
            EventBus() as bus,
            attach_audit_trail(
                bus, trail, mapper=pinger(), sink=sink, mode="inline", sink_buffer_size=10
            ) as auditor,
        ):
            for i in range(100):
                bus.publish(Ping(n=i))  # no checkpoint: the writer cannot run
            await auditor.flush()
            overflows = [log["event"] for log in logs].count("audit_sink_overflow")
            assert overflows == 1  # once per burst, not once per entry
            for i in range(100, 200):  # the writer caught up: a new burst is logged again
                bus.publish(Ping(n=i))
            await auditor.flush()
    assert len(trail) == 200
    assert auditor.statistics().sink_lost == 180
    assert [e.seq for e in sink.entries] == [*range(1, 11), *range(101, 111)]
    assert [log["event"] for log in logs].count("audit_sink_overflow") == 2


async def test_a_failing_sink_is_counted_and_not_written_again() -> None:
    sink = MemorySink(fail_on=2)
    trail = AuditTrail()
    with capture_logs() as logs:
        async with (
            EventBus() as bus,
            attach_audit_trail(
                bus, trail, mapper=pinger(), sink=sink, on_sink_error="count", sink_batch_size=5
            ) as auditor,
        ):
            for i in range(5):
                bus.publish(Ping(n=i))
            await auditor.flush()
            for i in range(5, 20):
                bus.publish(Ping(n=i))
            await auditor.flush()
            for i in range(20, 30):
                bus.publish(Ping(n=i))
            await auditor.flush()
    stats = auditor.statistics()
    assert (stats.sink_written, stats.sink_errors, stats.sink_lost) == (5, 1, 25)
    assert sink.calls == 2
    assert len(trail) == 30
    failed = [log for log in logs if log["event"] == "audit_sink_failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "error"
    assert "No space left on device" in failed[0]["error"]


async def test_a_failing_sink_raises_out_of_the_block_by_default() -> None:
    sink = MemorySink(fail_on=1)
    trail = AuditTrail()

    async def run() -> None:
        async with (
            EventBus() as bus,
            attach_audit_trail(bus, trail, mapper=pinger(), sink=sink) as auditor,
        ):
            bus.publish(Ping(n=1))
            await auditor.flush()
            await anyio.sleep_forever()  # cancelled by the failure

    with pytest.raises(ExceptionGroup) as caught:
        await run()
    matched, _ = caught.value.split(OSError)
    assert matched is not None
    assert sink.calls == 1


# -- restore and resume ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".db", ".jsonl"])
def test_restore_reloads_the_newest_entries_and_continues_the_chain(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"audit{suffix}"
    old = trail_of(50)
    factory = SqliteSink if suffix == ".db" else JsonlSink
    with factory(path) as sink:
        sink.write(old.entries())
    trail = AuditTrail(10)
    with factory(path) as sink:
        assert trail.restore(sink) == 10
        assert [e.seq for e in trail] == list(range(41, 51))
        assert trail.anchor == (40, old.entries()[39].hash)
        assert trail.verify() is None
        entry = trail.append("new", Other(detail="after restart"))
        assert entry.seq == 51
        assert entry.prev_hash == old.entries()[-1].hash
        sink.write([entry])
    stats = trail.statistics()
    assert (stats.restored, stats.appended, stats.length) == (10, 1, 10)
    assert verify_sink(path) is None


def test_restore_keeps_entries_appended_before_it() -> None:
    sink = MemorySink()
    sink.write(trail_of(5).entries())
    trail = AuditTrail()
    early = trail.append("early", Other(detail="appended before restore"), ts_ns=7)
    trail.restore(sink)
    assert [e.seq for e in trail] == [1, 2, 3, 4, 5, 6]
    last = trail.entries()[-1]
    assert (last.actor, last.action, last.ts_ns, last.recorded_ns) == (
        "early",
        early.action,
        7,
        early.recorded_ns,
    )
    assert trail.verify() is None


def test_restore_counts_the_dropped_events_of_restored_and_pending_entries_once() -> None:
    sink = MemorySink()
    old = trail_of(2)
    old.append("system", EventsDropped(count=3, first_seq=1, last_seq=3))
    sink.write(old.entries())
    trail = AuditTrail()
    trail.append("system", EventsDropped(count=2, first_seq=7, last_seq=8))
    trail.restore(sink)
    assert trail.statistics().dropped == 5


def test_restore_refuses_a_store_with_the_other_hash_chain_setting() -> None:
    sink = MemorySink()
    sink.write(trail_of(2).entries())
    with pytest.raises(
        ValueError,
        match=r"^the sink's entries were written with hash_chain=True, "
        r"this trail has hash_chain=False$",
    ):
        AuditTrail(hash_chain=False).restore(sink)


def test_restore_refuses_a_broken_chain() -> None:
    sink = MemorySink()
    entries = trail_of(5).entries()
    entries[2] = msgspec.structs.replace(entries[2], actor="mallory")
    sink.write(entries)
    with pytest.raises(
        ValueError, match=r"^the sink's entries are not an intact chain: first bad seq 3$"
    ):
        AuditTrail().restore(sink)


def test_restore_refuses_a_trail_that_evicted() -> None:
    sink = MemorySink()
    sink.write(trail_of(2).entries())
    trail = trail_of(3, capacity=2)
    with pytest.raises(ValueError, match=r"^restore needs a trail that has not evicted"):
        trail.restore(sink)


async def test_resume_continues_seq_and_chain_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with SqliteSink(path) as sink:
        first = AuditTrail()
        async with (
            EventBus() as bus,
            attach_audit_trail(bus, first, mapper=pinger(), sink=sink) as auditor,
        ):
            for i in range(30):
                bus.publish(Ping(n=i))
            await auditor.flush()
    with SqliteSink(path) as sink:  # a new process
        second = AuditTrail(capacity=20)
        async with (
            EventBus() as bus,
            attach_audit_trail(bus, second, mapper=pinger(), sink=sink, resume=True) as auditor,
        ):
            for i in range(30, 40):
                bus.publish(Ping(n=i))
            await auditor.flush()
        assert [e.seq for e in second] == list(range(21, 41))
        assert second.verify() is None
        assert sink.load_tail(40) == first.entries() + second.entries()[-10:]
    assert verify_sink(path) is None


async def test_resume_writes_entries_appended_before_it_to_the_sink_renumbered() -> None:
    sink = MemorySink()
    old = trail_of(5)
    sink.write(old.entries())
    trail = AuditTrail()
    trail.append("early", Other(detail="before resume"), ts_ns=7)
    async with (
        EventBus() as bus,
        attach_audit_trail(bus, trail, mapper=pinger(), sink=sink, resume=True) as auditor,
    ):
        with anyio.fail_after(5):
            await auditor.flush()  # nothing published: the renumbered entry alone is pending
        assert sink.entries == old.entries() + trail.entries()[5:]
        assert (sink.entries[5].seq, sink.entries[5].actor) == (6, "early")
        bus.publish(Ping(n=1))
        with anyio.fail_after(5):
            await auditor.flush()
    assert sink.entries == old.entries() + trail.entries()[5:]
    assert [e.seq for e in sink.entries] == list(range(1, 8))
    assert auditor.statistics().sink_written == 2
    assert trail.verify() is None


async def test_cancelling_a_started_auditor_still_writes_what_was_published(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail()
    with JsonlSink(path) as sink:
        async with EventBus() as bus, anyio.create_task_group() as tg:
            await tg.start(attach_audit_trail(bus, trail, mapper=pinger(), sink=sink))
            for i in range(200):
                bus.publish(Ping(n=i))
            tg.cancel_scope.cancel()
    assert len(trail) == 200
    assert read_jsonl(path).entries == trail.entries()
    assert verify_sink(path) is None


def test_every_jsonl_line_validates_against_the_entry_schema(tmp_path: Path) -> None:
    import jsonschema

    from audit import entry_schema

    trail = trail_of(3)
    trail.append("system", EventsDropped(count=2, first_seq=1, last_seq=2), event_seq=None)
    trail.append("a", Other(detail="x"), event_seq=4, event_id="e", category="mm", primitive="mm")
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(trail.entries())
    shipped = json.loads(
        (Path(__file__).parent.parent / "schemas" / "audit_entry.json").read_text()
    )
    assert entry_schema() == shipped
    validator = jsonschema.Draft202012Validator(shipped)
    for line in path.read_bytes().splitlines():
        validator.validate(msgspec.json.decode(line))
    bad = msgspec.json.decode(path.read_bytes().splitlines()[0])
    bad["action"] = {"type": "Nope"}
    assert not validator.is_valid(bad)


# -- JSONL: reading the newest entries ---------------------------------------------------------


def bytes_read_by_this_process() -> int:
    with open("/proc/self/io") as f:  # (rchar: bytes read through read(), pread(), ...)
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's /proc/self/io")
def test_jsonl_load_tail_reads_the_end_of_the_file_not_all_of_it(tmp_path: Path) -> None:
    # An auditor reads load_tail(1) at every start: on a long-lived export that was the
    # whole file, every time.
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(capacity=10)
    with JsonlSink(path) as sink:
        for _ in range(40):
            sink.write([trail.append("a", Other(detail="d"), "r" * 100_000) for _ in range(2)])
    assert path.stat().st_size > 8_000_000
    with JsonlSink(path) as sink:
        before = bytes_read_by_this_process()
        assert sink.load_tail(2) == trail.entries()[-2:]
        read = bytes_read_by_this_process() - before
    assert read < 1_000_000  # two lines of 100 kB and the chunks around them


@pytest.mark.parametrize("torn", [b"", b'{"seq": 99, "ts_ns"'])
def test_jsonl_load_tail_returns_the_newest_complete_lines_whatever_their_length(
    tmp_path: Path, torn: bytes
) -> None:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail()
    sizes = [1, 70_000, 3, 200_000, 65_000, 5, 140_000, 2]  # around the 64 KiB read chunk
    entries = [trail.append("a", Other(detail=str(n)), "r" * n) for n in sizes]
    with JsonlSink(path) as sink:
        sink.write(entries)
        with open(path, "ab") as f:  # a write torn while the sink is open (it then broke)
            f.write(torn)
        for n in range(len(entries) + 2):
            assert sink.load_tail(n) == entries[max(0, len(entries) - n) :], n


def test_sqlite_sink_refuses_a_database_that_is_not_an_audit_store_and_leaves_it(
    tmp_path: Path,
) -> None:
    # It used to add its tables to any SQLite database, and switch it to WAL for good.
    path = tmp_path / "app.db"
    _sqlite(path, "CREATE TABLE orders (id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(
        sqlite3.DatabaseError,
        match=rf"^{re.escape(str(path))} is a SQLite database but not an audit store \(it has "
        r"no audit_entries table\): the sink will not add its tables to it$",
    ):
        SqliteSink(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_sqlite_sink_creates_its_store_in_an_empty_database_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(b"")  # e.g. made by mktemp
    with SqliteSink(path) as sink:
        sink.write(trail_of(2).entries())
    assert verify_sink(path) is None


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        # Another application's table that happens to be called audit_entries.
        (
            ["CREATE TABLE audit_entries (id INTEGER PRIMARY KEY, who TEXT)"],
            "it has no audit_meta table",
        ),
        # One with the columns the sink's indexes name: it added them, and audit_meta, for good.
        (
            ["CREATE TABLE audit_entries (seq INTEGER PRIMARY KEY, actor TEXT, kind TEXT, ts_ns)"],
            "it has no audit_meta table",
        ),
        (
            [
                "CREATE TABLE audit_entries (seq INTEGER PRIMARY KEY)",
                "CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value)",
            ],
            "its audit_meta has no schema_version",
        ),
        (
            [
                "CREATE TABLE audit_entries (seq INTEGER PRIMARY KEY)",
                "CREATE TABLE audit_meta (name TEXT)",
            ],
            "its audit_meta has no schema_version",
        ),
    ],
    ids=["foreign-audit_entries", "foreign-with-indexed-columns", "no-version", "foreign-meta"],
)
def test_sqlite_sink_refuses_a_database_with_an_audit_entries_table_it_did_not_make(
    tmp_path: Path, schema: list[str], why: str
) -> None:
    # A store the sink made has both tables and its schema_version, from one transaction.
    path = tmp_path / "app.db"
    for sql in schema:
        _sqlite(path, sql)
    before = path.read_bytes()
    with pytest.raises(
        sqlite3.DatabaseError,
        match=rf"^{re.escape(str(path))} is a SQLite database but not an audit store \({why}\): "
        r"the sink will not add its tables to it$",
    ):
        SqliteSink(path)
    assert path.read_bytes() == before  # not switched to WAL, nothing added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_sqlite_sink_refuses_a_store_of_a_schema_version_it_does_not_write(
    tmp_path: Path,
) -> None:
    # A store made by a later version: writing this version's rows into it would corrupt it.
    path = tmp_path / "audit.db"
    with SqliteSink(path) as sink:
        sink.write(trail_of(2).entries())
    _sqlite(path, "UPDATE audit_meta SET value = 2 WHERE key = 'schema_version'")
    before = path.read_bytes()
    with pytest.raises(
        sqlite3.DatabaseError,
        match=rf"^the audit store at {re.escape(str(path))} has schema version 2; this "
        r"version of the sink writes schema version 1 only$",
    ):
        SqliteSink(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.db"]


def test_sqlite_sink_reopens_the_stores_it_made(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    entries = trail_of(3).entries()
    with SqliteSink(path) as sink:
        sink.write(entries[:2])
    with SqliteSink(path) as sink:
        sink.write(entries[2:])
        assert sink.load_tail(5) == entries
    assert verify_sink(path) is None
