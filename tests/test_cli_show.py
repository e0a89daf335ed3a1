"""``eventbus audit show``: the warning about a damaged store, and the duplicate finders.

``show`` lists what a store holds; when the same read shows the store damaged (seqs missing,
out of order, entries that do not link, ends other than its anchor's) it says so once on
stderr, still exits 0, and points to ``audit verify``. ``--event-id`` and ``--duplicates``
find the events an at-least-once import (JetStream redelivery) recorded twice.
"""

from __future__ import annotations

import io
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import structlog
import structlog.testing

from audit import AuditEntry, AuditTrail, Other, attach_audit_trail
from audit.sinks import JsonlSink, SqliteSink
from eventbus import Envelope, EventBus
from eventbus._cli import main
from eventbus.events import AgentStarted, AgentStopped

KINDS = ["sqlite", "jsonl"]


@pytest.fixture(autouse=True)
def unconfigured_structlog() -> None:
    """Each test starts as a fresh ``eventbus`` process does: structlog not configured."""
    structlog.reset_defaults()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def shown(out: str) -> list[int]:
    """The seqs of a table's rows."""
    return [int(line.split()[0]) for line in out.splitlines()[1:]]


def warning(path: Path, damage: str) -> str:
    return (
        f"eventbus: warning: {path} is damaged: {damage}; "
        f"'eventbus audit verify {path}' checks it entry by entry\n"
    )


def entries(n: int, trail: AuditTrail | None = None) -> list[AuditEntry]:
    """``n`` chained entries, by two actors in turn, each recording its own event."""
    if trail is None:
        trail = AuditTrail()
    return [
        trail.append(
            f"agent-{i % 2}", Other(detail=f"step {i}"), "r", kind="k", event_id=f"event-{i}"
        )
        for i in range(1, n + 1)
    ]


def open_sink(path: Path) -> SqliteSink | JsonlSink:
    return SqliteSink(path) if path.suffix == ".sqlite3" else JsonlSink(path)


def new_store(tmp_path: Path, kind: str, n: int = 20) -> Path:
    """A store of ``kind`` holding ``entries(n)``, seq 1..n, anchored."""
    path = tmp_path / ("audit.sqlite3" if kind == "sqlite" else "audit.jsonl")
    with open_sink(path) as sink:
        sink.write(entries(n))
    return path


def sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def delete(path: Path, seqs: set[int]) -> None:
    """Remove the entries with these seqs, leaving the anchor as it is."""
    if path.suffix == ".sqlite3":
        listed = ", ".join(map(str, sorted(seqs)))
        sql(path, f"DELETE FROM audit_entries WHERE seq IN ({listed})")
    else:
        kept = [line for line in lines_of(path) if decode(line).seq not in seqs]
        path.write_bytes(b"".join(kept))


def decode(line: bytes) -> AuditEntry:
    return msgspec.json.decode(line, type=AuditEntry)


def replace_entry(path: Path, seq: int, **changes: Any) -> None:
    """Rewrite the entry ``seq`` with ``changes`` (its stored hash included, if given)."""
    if path.suffix == ".sqlite3":
        assignments = ", ".join(f"{column} = ?" for column in changes)
        conn = sqlite3.connect(path)
        with conn:
            conn.execute(
                f"UPDATE audit_entries SET {assignments} WHERE seq = ?", [*changes.values(), seq]
            )
        conn.close()
    else:
        lines = lines_of(path)
        for i, line in enumerate(lines):
            entry = decode(line)
            if entry.seq == seq:
                changed = msgspec.structs.replace(entry, **changes)
                lines[i] = msgspec.json.encode(changed) + b"\n"
        path.write_bytes(b"".join(lines))


# -- damage: what show saw, once, on stderr, exit 0 -------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_intact_store_is_listed_without_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    code, out, err = run(capsys, "audit", "show", str(path))
    assert (code, err) == (0, "")
    assert shown(out) == list(range(1, 21))


@pytest.mark.parametrize("kind", KINDS)
def test_seqs_missing_in_the_middle_are_named_once_and_the_rest_is_listed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    delete(path, {7, 8, 9})
    code, out, err = run(capsys, "audit", "show", str(path))
    assert code == 0  # the listing succeeded: verify is the command whose status judges
    assert shown(out) == [s for s in range(1, 21) if s not in {7, 8, 9}]
    assert err == warning(path, "seq 7..9 missing")


@pytest.mark.parametrize("kind", KINDS)
def test_many_gaps_are_counted_past_the_first_three(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    delete(path, {3, 7, 8, 9, 12, 15, 17, 18})
    code, _, err = run(capsys, "audit", "show", str(path), "--json")
    assert code == 0
    assert err == warning(path, "seq 3, 7..9, 12 missing, and 2 more gaps")


@pytest.mark.parametrize("kind", KINDS)
def test_the_warning_is_about_the_whole_store_whatever_the_filters_select(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    # Filtered-out entries are no gaps: one actor's entries skip every other seq.
    code, out, err = run(capsys, "audit", "show", str(path), "--actor", "agent-1")
    assert (code, err) == (0, "")
    assert shown(out) == list(range(1, 21, 2))
    delete(path, {7, 8, 9})
    code, out, err = run(capsys, "audit", "show", str(path), "--since-seq", "15")
    assert code == 0
    assert shown(out) == list(range(15, 21))  # the gap is before the part listed
    assert err == warning(path, "seq 7..9 missing")
    code, out, err = run(capsys, "audit", "show", str(path), "--actor", "nobody")
    assert (code, out) == (0, "")
    assert err == "no entries match (the store holds 17)\n" + warning(path, "seq 7..9 missing")


@pytest.mark.parametrize("kind", KINDS)
def test_a_tail_cut_short_of_the_anchor_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    delete(path, {18, 19, 20})
    code, out, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert shown(out) == list(range(1, 18))
    assert err == warning(path, "the anchor says the store ends at seq 20, it ends at 17")


@pytest.mark.parametrize("kind", KINDS)
def test_a_start_cut_after_the_anchors_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    delete(path, {1, 2, 3})
    code, out, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert shown(out) == list(range(4, 21))
    assert err == warning(path, "the anchor says the store starts at seq 1, it starts at 4")


def test_a_start_before_the_anchors_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = new_store(tmp_path, "sqlite")
    sql(path, "UPDATE audit_meta SET value = 3 WHERE key = 'first_seq'")
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(path, "the anchor says the store starts at seq 3, it starts at 1")


@pytest.mark.parametrize("kind", KINDS)
def test_a_store_emptied_under_its_anchor_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    delete(path, set(range(1, 21)))
    code, out, err = run(capsys, "audit", "show", str(path))
    assert (code, out) == (0, "")
    assert err == "no entries match (the store holds 0)\n" + warning(
        path, "the anchor says the store holds seq 1..20, it holds no entry"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_store_cut_at_both_ends_and_in_the_middle_names_it_all_in_one_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    delete(path, {1, 10, 20})
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(
        path,
        "seq 10 missing; the anchor says the store starts at seq 1, it starts at 2; "
        "the anchor says the store ends at seq 20, it ends at 19",
    )


class _ClosedPipe(io.StringIO):
    """A stdout whose reader has gone, as ``eventbus audit show PATH | head -1`` leaves it."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self._fd


def test_the_warning_reaches_stderr_also_when_the_listing_meets_a_closed_pipe(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = new_store(tmp_path, "jsonl")
    delete(path, {7, 8, 9})
    with (tmp_path / "stdout").open("w") as stand_in:
        monkeypatch.setattr(sys, "stdout", _ClosedPipe(stand_in.fileno()))
        code = main(["audit", "show", str(path)])
    assert code == 0
    assert capsys.readouterr().err == warning(path, "seq 7..9 missing")


def test_lines_out_of_order_are_named_not_taken_for_gaps(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = new_store(tmp_path, "jsonl")
    lines = lines_of(path)
    lines[7], lines[8] = lines[8], lines[7]  # seq 9 before seq 8
    lines.insert(12, lines[11])  # seq 12 twice
    path.write_bytes(b"".join(lines))
    code, out, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert shown(out) == [*range(1, 8), 9, 8, *range(10, 13), 12, *range(13, 21)]
    assert err == warning(path, "seq 8 comes after seq 9, seq 12 is repeated")


def test_more_than_three_entries_out_of_order_are_counted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = new_store(tmp_path, "jsonl")
    path.write_bytes(b"".join(reversed(lines_of(path))))
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(
        path,
        "seq 19 comes after seq 20, seq 18 comes after seq 19, seq 17 comes after seq 18, "
        "and 16 more out of order",
    )


def test_sqlite_rows_whose_seqs_were_swapped_do_not_link(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # SQLite lists by seq, so a reordering shows as entries that do not link.
    path = new_store(tmp_path, "sqlite")
    sql(
        path,
        "UPDATE audit_entries SET seq = -8 WHERE seq = 8",
        "UPDATE audit_entries SET seq = 8 WHERE seq = 9",
        "UPDATE audit_entries SET seq = 9 WHERE seq = -8",
    )
    code, out, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert shown(out) == list(range(1, 21))
    assert err == warning(
        path,
        "seq 8 does not link to seq 7, seq 9 does not link to seq 8, "
        "seq 10 does not link to seq 9",
    )


@pytest.mark.parametrize("kind", KINDS)
def test_broken_links_are_counted_past_the_first_three(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    for seq in (3, 5, 7, 9, 11):
        replace_entry(path, seq, prev_hash="f" * 64)
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(
        path,
        "seq 3 does not link to seq 2, seq 5 does not link to seq 4, "
        "seq 7 does not link to seq 6, and 2 more broken links",
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_newest_entry_other_than_the_one_the_anchor_acknowledged_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    replace_entry(path, 20, hash="e" * 64)
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(path, "seq 20 is not the entry the anchor acknowledged")


@pytest.mark.parametrize("kind", KINDS)
def test_a_first_entry_that_does_not_link_to_the_anchors_start_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    replace_entry(path, 1, prev_hash="f" * 64)
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(
        path, "seq 1 does not link to the hash the anchor says the store starts from"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_entries_past_the_anchor_are_a_batch_not_yet_acknowledged_and_stand(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = new_store(tmp_path, kind)
    trail = AuditTrail()
    with open_sink(path) as sink:
        trail.restore(sink)
    extra = entries(2, trail)  # seq 21, 22, linked, written without advancing the anchor
    if kind == "sqlite":
        with SqliteSink(tmp_path / "scratch.sqlite3") as scratch:
            scratch.write(extra)
        sql(
            path,
            f"ATTACH '{tmp_path / 'scratch.sqlite3'}' AS scratch",
            "INSERT INTO audit_entries SELECT * FROM scratch.audit_entries",
        )
    else:
        with path.open("ab") as f:
            f.write(b"".join(msgspec.json.encode(e) + b"\n" for e in extra))
    code, out, err = run(capsys, "audit", "show", str(path))
    assert (code, err) == (0, "")
    assert shown(out) == list(range(1, 23))


def test_a_store_written_without_a_hash_chain_is_checked_for_its_seqs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "audit.sqlite3"
    with SqliteSink(path) as sink:
        sink.write(entries(20, AuditTrail(hash_chain=False)))
    code, _, err = run(capsys, "audit", "show", str(path))
    assert (code, err) == (0, "")  # no hashes: nothing fails to link
    delete(path, {5})
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(path, "seq 5 missing")


def test_a_jsonl_store_without_its_anchor_file_is_checked_for_gaps_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = new_store(tmp_path, "jsonl")
    Path(f"{path}.anchor").unlink()
    delete(path, {20})  # a cut tail: nothing left says the store went further
    code, _, err = run(capsys, "audit", "show", str(path))
    assert (code, err) == (0, "")
    delete(path, {4})
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(path, "seq 4 missing")


def test_a_damaged_jsonl_anchor_file_is_a_warning_not_a_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = new_store(tmp_path, "jsonl")
    Path(f"{path}.anchor").write_bytes(b"{not json")
    code, out, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert shown(out) == list(range(1, 21))
    assert err.startswith(
        f"eventbus: warning: {path} is damaged: its anchor file {path}.anchor is damaged ("
    )
    assert err.endswith(f"); 'eventbus audit verify {path}' checks it entry by entry\n")
    assert len(err.splitlines()) == 1
    Path(f"{path}.anchor").write_bytes(b'{"first_seq": 1}')  # JSON, but not an anchor
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(
        path,
        f"its anchor file {path}.anchor is damaged "
        "(Object missing required field `first_prev_hash`)",
    )


def test_an_unreadable_jsonl_anchor_file_is_a_warning_saying_what_was_not_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = new_store(tmp_path, "jsonl")
    anchor = Path(f"{path}.anchor")
    anchor.unlink()
    anchor.mkdir()  # (unreadable even for root, unlike a chmod)
    code, out, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert shown(out) == list(range(1, 21))
    assert err == (
        f"eventbus: warning: cannot read the anchor file {anchor} (Is a directory): "
        f"where {path} should start and end was not checked\n"
    )


def test_a_damaged_sqlite_anchor_is_a_warning_not_a_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = new_store(tmp_path, "sqlite")
    sql(path, "DELETE FROM audit_meta WHERE key = 'last_hash'")
    code, out, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert shown(out) == list(range(1, 21))
    assert err == warning(
        path,
        "its anchor (in audit_meta) is damaged (Expected `str`, got `null` - at `$.last_hash`)",
    )
    sql(path, "DELETE FROM audit_meta WHERE key != 'schema_version'")
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert err == warning(path, "it holds entries but no anchor (in audit_meta)")


def test_a_sqlite_store_without_its_audit_meta_table_is_still_listed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = new_store(tmp_path, "sqlite")
    sql(path, "DROP TABLE audit_meta")
    code, out, err = run(capsys, "audit", "show", str(path))
    assert code == 0
    assert shown(out) == list(range(1, 21))
    assert err == warning(path, "it holds entries but no anchor (in audit_meta)")


def test_an_empty_store_that_never_acknowledged_anything_is_no_damage(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "audit.sqlite3"
    SqliteSink(path).close()
    assert run(capsys, "audit", "show", str(path)) == (
        0,
        "",
        "no entries match (the store holds 0)\n",
    )


def test_a_jsonl_anchor_is_read_before_the_entries_so_an_append_meanwhile_is_no_cut(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A writer appends a batch (entries, then anchor) while show reads: read the other way
    # round, the anchor would acknowledge an entry the listing never saw, a false "cut".
    from audit.sinks import _jsonl

    path = new_store(tmp_path, "jsonl")
    real_complete_lines = _jsonl._complete_lines

    def complete_lines(name: str) -> tuple[Iterator[bytes], list[int]]:
        lines, torn = real_complete_lines(name)
        listed = list(lines)  # what show reads of the store...
        append(path)  # ...then the writer appends and advances the anchor
        return iter(listed), torn

    monkeypatch.setattr(_jsonl, "_complete_lines", complete_lines)
    code, out, err = run(capsys, "audit", "show", str(path))
    assert (code, err) == (0, "")
    assert shown(out) == list(range(1, 21))


def append(path: Path) -> None:
    """A writer in another process commits one entry more."""
    trail = AuditTrail()
    with open_sink(path) as sink:
        trail.restore(sink)
        sink.write(entries(1, trail))


class _Connection:
    """A connection that lets a writer commit right after the reader's first query."""

    def __init__(self, conn: sqlite3.Connection, meanwhile: Callable[[], None]) -> None:
        self._conn = conn
        self._meanwhile: Callable[[], None] | None = meanwhile

    def execute(self, statement: str, *args: Any) -> Any:
        cursor = self._conn.execute(statement, *args)
        if self._meanwhile is None or "FROM audit_entries" not in statement:
            return cursor
        fetched = _Fetched(cursor.fetchall())  # the reader has read the entries...
        meanwhile, self._meanwhile = self._meanwhile, None
        meanwhile()  # ...when a writer commits
        return fetched

    def close(self) -> None:
        self._conn.close()


class _Fetched:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchall(self) -> list[Any]:
        return self._rows


def test_a_sqlite_anchor_is_read_in_the_snapshot_of_the_entries(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Outside one read transaction, the anchor read after a writer's commit would
    # acknowledge an entry the listing never saw: a false "cut".
    from audit.sinks import _sqlite

    path = new_store(tmp_path, "sqlite")
    real_connect = _sqlite._connect

    def connect(name: str, params: str) -> Any:
        return _Connection(real_connect(name, params), lambda: append(path))

    monkeypatch.setattr(_sqlite, "_connect", connect)
    code, out, err = run(capsys, "audit", "show", str(path))
    assert (code, err) == (0, "")
    assert shown(out) == list(range(1, 21))
    monkeypatch.undo()
    assert shown(run(capsys, "audit", "show", str(path))[1]) == list(range(1, 22))


# -- duplicates: events an at-least-once import recorded twice --------------------------------


async def redelivered(sink: SqliteSink | JsonlSink, resume: bool, again: list[Any]) -> list[Any]:
    """One audit process: the envelopes ``again`` come again (as JetStream redelivers a
    batch stored but not acknowledged before a crash), then one event of its own."""
    published: list[Envelope[Any]] = []
    async with (
        EventBus[Any]() as bus,
        attach_audit_trail(
            bus, AuditTrail(), mode="lossless", sink=sink, resume=resume
        ) as auditor,
    ):
        for envelope in again:
            await bus.apublish_envelope(envelope)
        agents = [uuid.uuid4() for _ in range(1 if resume else 4)]
        for agent in agents:
            published.append(await bus.apublish(AgentStarted(id=agent)))
        published.append(await bus.apublish(AgentStopped(id=agents[-1], success=True)))
        await auditor.flush()
    return published


def redelivered_store(tmp_path: Path, kind: str) -> tuple[Path, list[Envelope[Any]]]:
    """A store of two audit processes: the second recorded the first's last two events
    again (seq 6 and 7, of seq 4 and 5), then seq 8 and 9."""
    path = tmp_path / ("audit.sqlite3" if kind == "sqlite" else "audit.jsonl")
    with structlog.testing.capture_logs():  # (not on the stdout the tests read)
        with open_sink(path) as sink:
            first = anyio.run(redelivered, sink, False, [])
        with open_sink(path) as sink:
            second = anyio.run(redelivered, sink, True, first[-2:])
    return path, [*first, *second]


@pytest.mark.parametrize("kind", KINDS)
def test_event_id_shows_every_entry_recording_that_event(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path, published = redelivered_store(tmp_path, kind)
    twice, once = published[3].event_id, published[0].event_id
    code, out, err = run(capsys, "audit", "show", str(path), "--event-id", twice)
    assert (code, err) == (0, "")
    assert shown(out) == [4, 6]
    code, out, _ = run(capsys, "audit", "show", str(path), "--event-id", once, "--json")
    assert code == 0
    assert [decode(line.encode()).seq for line in out.splitlines()] == [1]
    code, out, err = run(capsys, "audit", "show", str(path), "--event-id", "no-such-event")
    assert (code, out) == (0, "")
    assert err == "no entries match (the store holds 9)\n"


@pytest.mark.parametrize("kind", KINDS)
def test_duplicates_shows_the_later_records_of_events_recorded_twice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path, _ = redelivered_store(tmp_path, kind)
    code, out, err = run(capsys, "audit", "show", str(path), "--duplicates")
    assert (code, err) == (0, "")  # (an intact store: each entry was chained as it came)
    assert shown(out) == [6, 7]
    code, out, err = run(capsys, "audit", "show", str(path), "--duplicates", "--json")
    assert code == 0
    records = [decode(line.encode()) for line in out.splitlines()]
    by_seq = {e.seq: e for e in records}
    assert [by_seq[6].event_id, by_seq[7].event_id] == [
        e.event_id for e in entries_of(path) if e.seq in (4, 5)
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_duplicates_combine_with_the_other_filters_over_the_whole_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path, published = redelivered_store(tmp_path, kind)
    # Earlier means in the store, not among the entries the filters select.
    code, out, _ = run(capsys, "audit", "show", str(path), "--duplicates", "--since-seq", "7")
    assert (code, shown(out)) == (0, [7])
    code, out, _ = run(
        capsys, "audit", "show", str(path), "--duplicates", "--kind", "agent_started"
    )
    assert (code, shown(out)) == (0, [6])
    code, out, _ = run(
        capsys, "audit", "show", str(path), "--duplicates", "--event-id", published[4].event_id
    )
    assert (code, shown(out)) == (0, [7])
    code, out, err = run(
        capsys, "audit", "show", str(path), "--duplicates", "--event-id", published[0].event_id
    )
    assert (code, out, err) == (0, "", "no entries match (the store holds 9)\n")


@pytest.mark.parametrize("kind", KINDS)
def test_entries_of_no_single_event_are_never_duplicates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = tmp_path / ("audit.sqlite3" if kind == "sqlite" else "audit.jsonl")
    trail = AuditTrail()
    with open_sink(path) as sink:
        sink.write(
            [
                trail.append("system", Other(detail="gap"), kind="audit:events_dropped"),
                trail.append("a", Other(detail="x"), event_id="e1"),
                trail.append("system", Other(detail="gap"), kind="audit:events_dropped"),
                trail.append("a", Other(detail="x"), event_id="e1"),
            ]
        )
    code, out, err = run(capsys, "audit", "show", str(path), "--duplicates")
    assert (code, err) == (0, "")
    assert shown(out) == [4]


def entries_of(path: Path) -> list[AuditEntry]:
    with open_sink(path) as sink:
        return sink.load_tail(1000)


def test_show_finds_no_damage_in_an_empty_store_whose_anchor_acknowledged_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # An anchor of last_seq 0 over no entry is intact to verify; show called it damaged.
    from audit import GENESIS_HASH

    store = tmp_path / "audit.jsonl"
    store.write_bytes(b"")
    Path(f"{store}.anchor").write_bytes(
        msgspec.json.encode(
            {"first_seq": 1, "first_prev_hash": GENESIS_HASH, "last_seq": 0, "last_hash": ""}
        )
    )
    assert run(capsys, "audit", "verify", str(store))[0] == 0
    assert run(capsys, "audit", "show", str(store)) == (
        0,
        "",
        "no entries match (the store holds 0)\n",
    )
