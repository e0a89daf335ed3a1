"""A sink never writes over the evidence of a store damaged at its end.

The anchor (``audit_meta`` in SQLite, ``PATH.anchor`` beside JSONL) is all that shows a store
was cut at its end, or that its newest entry was replaced by one with a recomputed hash.
A sink that opened such a store and wrote to it advanced the anchor past the damage: a
restart with ``resume=True`` turned a store that ``verify_sink`` reported as cut into one it
reported intact.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from pathlib import Path

import msgspec
import pytest

from audit import AuditEntry, AuditTrail, Other, attach_audit_trail, entry_hash
from audit.sinks import JsonlSink, SqliteSink, read_jsonl, verify_sink
from eventbus import EventBus
from eventbus.events import AgentStarted

pytestmark = pytest.mark.anyio

Sink = SqliteSink | JsonlSink


@pytest.fixture(params=["sqlite", "jsonl"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def store_path(kind: str, directory: Path) -> Path:
    return directory / ("audit.db" if kind == "sqlite" else "audit.jsonl")


def open_sink(kind: str, path: Path) -> Sink:
    return SqliteSink(path) if kind == "sqlite" else JsonlSink(path)


def entries_of(n: int) -> list[AuditEntry]:
    trail = AuditTrail()
    for i in range(n):
        trail.append(f"actor-{i % 2}", Other(detail=f"d{i}"), f"r{i}", ts_ns=1000 + i)
    return trail.entries()


def files_in(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def rehashed(entry: AuditEntry, **changes: object) -> AuditEntry:
    """``entry`` with ``changes`` and a hash recomputed to match: a forgery the chain alone
    cannot tell from the original when it is the newest entry."""
    forged = msgspec.structs.replace(entry, **changes)  # type: ignore[arg-type]
    return msgspec.structs.replace(forged, hash=entry_hash(forged))


def cut_tail(kind: str, path: Path, keep: int) -> None:
    """Remove every entry after the first ``keep``, leaving the anchor as it was."""
    if kind == "sqlite":
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("DELETE FROM audit_entries WHERE seq > ?", (keep,))
        conn.close()
    else:
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:keep]))


def replace_newest(kind: str, path: Path, forged: AuditEntry) -> None:
    if kind == "sqlite":
        conn = sqlite3.connect(path)
        with conn:
            conn.execute(
                "UPDATE audit_entries SET actor = ?, hash = ? WHERE seq = ?",
                (forged.actor, forged.hash, forged.seq),
            )
        conn.close()
    else:
        lines = path.read_bytes().splitlines(keepends=True)
        lines[-1] = msgspec.json.encode(forged) + b"\n"
        path.write_bytes(b"".join(lines))


def refusal(path: Path, what: str, bad: int) -> str:
    return (
        rf"^{what}: the sink will not write over that evidence \(verify_sink reports seq "
        rf"{bad}\): keep the store at {re.escape(str(path))}, and write to a new one$"
    )


def test_a_store_cut_at_its_end_is_refused_and_left_as_it_was(kind: str, tmp_path: Path) -> None:
    path = store_path(kind, tmp_path)
    with open_sink(kind, path) as sink:
        sink.write(entries_of(5))
    cut_tail(kind, path, keep=3)
    before = files_in(tmp_path)
    assert verify_sink(path) == 4
    what = (
        rf"the store at {re.escape(str(path))} ends at seq 3, but its anchor says it "
        r"committed entries up to seq 5: entries were cut from its end"
    )
    with pytest.raises(ValueError, match=refusal(path, what, 4)):
        open_sink(kind, path)
    assert files_in(tmp_path) == before
    assert verify_sink(path) == 4


def test_a_store_whose_newest_entry_was_replaced_is_refused(kind: str, tmp_path: Path) -> None:
    path = store_path(kind, tmp_path)
    written = entries_of(5)
    with open_sink(kind, path) as sink:
        sink.write(written)
    replace_newest(kind, path, rehashed(written[-1], actor="mallory"))
    assert verify_sink(path) == 5  # the chain holds: only the anchor shows it
    what = (
        rf"the newest entry of the store at {re.escape(str(path))}, seq 5, is not the one "
        r"its anchor acknowledged: it was altered"
    )
    with pytest.raises(ValueError, match=refusal(path, what, 5)):
        open_sink(kind, path)
    assert verify_sink(path) == 5


def test_a_store_emptied_of_every_entry_is_refused(kind: str, tmp_path: Path) -> None:
    path = store_path(kind, tmp_path)
    with open_sink(kind, path) as sink:
        sink.write(entries_of(5)[2:])  # a store that starts at seq 3
    cut_tail(kind, path, keep=0)
    what = (
        rf"the store at {re.escape(str(path))} holds no entry, but its anchor says it "
        r"committed entries up to seq 5: entries were cut from its end"
    )
    with pytest.raises(ValueError, match=refusal(path, what, 3)):
        open_sink(kind, path)
    assert verify_sink(path) == 3


def test_a_jsonl_store_whose_file_is_gone_but_whose_anchor_is_left_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(4))
    path.unlink()
    what = (
        rf"the store at {re.escape(str(path))} holds no entry, but its anchor says it "
        r"committed entries up to seq 4: entries were cut from its end"
    )
    with pytest.raises(ValueError, match=refusal(path, what, 1)):
        JsonlSink(path)
    assert not path.exists()  # not created: the anchor stays the evidence


def test_a_jsonl_store_whose_acknowledged_last_line_lost_its_newline_is_not_cut(
    tmp_path: Path,
) -> None:
    # Opening a sink cuts a torn tail off: only ever one that was never acknowledged.
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(4))
    path.write_bytes(path.read_bytes()[:-1])
    before = files_in(tmp_path)
    with pytest.raises(ValueError, match=r"ends at seq 3, but its anchor says it committed"):
        JsonlSink(path)
    assert files_in(tmp_path) == before


def test_entries_past_the_anchor_are_kept_and_continued(tmp_path: Path) -> None:
    # A crash between a batch's fsync and its anchor: the entries chain, so they stand.
    path = tmp_path / "audit.jsonl"
    written = entries_of(6)
    with JsonlSink(path) as sink:
        sink.write(written[:3])
    anchor = Path(f"{path}.anchor").read_bytes()
    with JsonlSink(path) as sink:
        sink.write(written[3:5])
    Path(f"{path}.anchor").write_bytes(anchor)  # the anchor of the first batch only
    with JsonlSink(path) as sink:
        assert sink.load_tail(1) == written[4:5]
        sink.write(written[5:])
    assert read_jsonl(path).entries == written
    assert verify_sink(path) is None


def test_a_sqlite_store_with_a_damaged_anchor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with SqliteSink(path) as sink:
        sink.write(entries_of(5))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE audit_meta SET value = 'x' WHERE key = 'last_seq'")
    conn.close()
    assert verify_sink(path) == 1
    with pytest.raises(
        msgspec.ValidationError,
        match=rf"^the anchor of the store at {re.escape(str(path))} \(its audit_meta table\) "
        r"is damaged \(.+\); the sink will not write over it, since it is evidence of what "
        r"the store held: keep it, and write to a new store$",
    ):
        SqliteSink(path)
    assert verify_sink(path) == 1


async def test_resuming_a_store_cut_at_its_end_fails_and_keeps_the_evidence(
    kind: str, tmp_path: Path
) -> None:
    # What used to happen: resume=True continued from the cut, and the store read intact.
    path = store_path(kind, tmp_path)

    async def audit(n: int, resume: bool) -> None:
        with open_sink(kind, path) as sink:
            async with (
                EventBus() as bus,
                attach_audit_trail(bus, AuditTrail(), sink=sink, resume=resume) as auditor,
            ):
                for _ in range(n):
                    bus.publish(AgentStarted(id=uuid.uuid4()))
                await auditor.flush()

    await audit(5, resume=False)
    cut_tail(kind, path, keep=3)
    with pytest.raises(ValueError, match=r"entries were cut from its end"):
        await audit(2, resume=True)
    assert verify_sink(path) == 4


@pytest.mark.parametrize(
    "content",
    [b'{"seq":1,"event_id":"x","kind":"page_out"}\n', b"not json at all\n"],
    ids=["other-json", "not-json"],
)
def test_a_jsonl_file_that_is_no_audit_store_is_refused_unchanged(
    tmp_path: Path, content: bytes
) -> None:
    # An operator pointed a sink at a session log: the sink opened it, load_tail raised a
    # ValidationError naming neither file nor cause, and a write would have appended audit
    # entries to the log.
    path = tmp_path / "wrong.jsonl"
    path.write_bytes(content + b'{"torn')
    with pytest.raises(
        msgspec.DecodeError,
        match=rf"^{re.escape(str(path))} is not a JSONL audit store: its last line is no audit "
        r"entry \(.+\); the sink will not write into it$",
    ):
        JsonlSink(path)
    assert path.read_bytes() == content + b'{"torn'  # not even the torn tail is cut
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrong.jsonl"]
