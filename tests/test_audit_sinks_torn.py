"""A torn final line of a JSONL store is damage only where the anchor acknowledged it.

A line without its newline is a write cut short (a crash, a full disk) or one a writer in
another process is making right now. If it follows the last entry the anchor acknowledged
(or the store has no anchor, so nothing was acknowledged), nothing committed is missing:
``verify_sink`` used to report it as the first bad seq all the same, a false tamper alarm
for an operator verifying after a crash or while the service runs. Where the anchor
acknowledged more, the torn line is the acknowledged newest entry cut short: a cut.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import GENESIS_HASH, AuditEntry, AuditTrail, Other
from audit.sinks import JsonlSink, _jsonl, read_jsonl, verify_sink
from audit.sinks._base import StoreAnchor, StoreCheck
from audit.sinks._verify import check_sink


def entries_of(n: int) -> list[AuditEntry]:
    trail = AuditTrail()
    return [trail.append(f"agent-{i % 3}", Other(detail=f"d{i}"), "r" * (i % 5)) for i in range(n)]


def line_of(entry: AuditEntry) -> bytes:
    return msgspec.json.encode(entry) + b"\n"


def check(path: Path) -> StoreCheck:
    """What verify found; ``verify_sink`` must say the same."""
    found = check_sink(path)
    assert verify_sink(path) == found.bad
    return found


def intact(entries: int, first: int | None, last: int | None, torn: int) -> StoreCheck:
    return StoreCheck(None, entries, first, last, torn)


# -- torn lines that were never acknowledged ---------------------------------------------------


def test_a_torn_line_alone_in_a_store_without_anchor_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(line_of(entries_of(1)[0])[:25])  # a first write cut short
    assert check(path) == intact(0, None, None, 25)


def test_a_torn_line_alone_under_an_anchor_of_no_entries_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    Path(f"{path}.anchor").write_bytes(
        msgspec.json.encode(
            {"first_seq": 1, "first_prev_hash": GENESIS_HASH, "last_seq": 0, "last_hash": ""}
        )
    )
    path.write_bytes(line_of(entries_of(1)[0])[:-1])  # all but its newline
    torn = path.stat().st_size
    assert check(path) == intact(0, None, None, torn)
    with JsonlSink(path) as sink:  # what a sink reopening it does: cut it, then continue
        assert sink.torn_tail == torn
        sink.write(entries_of(2))
    assert check(path) == intact(2, 1, 2, 0)


def test_a_torn_line_after_the_last_acknowledged_entry_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    written = entries_of(5)
    with JsonlSink(path) as sink:
        sink.write(written[:4])
    with path.open("ab") as f:
        f.write(line_of(written[4])[:-1])  # everything but the newline: still never acked
    torn = len(line_of(written[4])) - 1
    assert check(path) == intact(4, 1, 4, torn)
    assert read_jsonl(path).torn_tail == torn  # reading reports the same size


def test_a_torn_line_after_entries_past_the_anchor_is_intact(tmp_path: Path) -> None:
    # A batch synced but not acknowledged (a crash between its fsync and its anchor), then a
    # write cut short: none of it was acknowledged, and the entries that are whole chain on.
    path = tmp_path / "audit.jsonl"
    written = entries_of(7)
    with JsonlSink(path) as sink:
        sink.write(written[:3])
    anchor = Path(f"{path}.anchor").read_bytes()
    with JsonlSink(path) as sink:
        sink.write(written[3:5])
    Path(f"{path}.anchor").write_bytes(anchor)  # acknowledges seq 3
    with path.open("ab") as f:
        f.write(b"".join(line_of(e) for e in written[5:])[:-40])
    torn = len(line_of(written[6])) - 40
    assert check(path) == intact(6, 1, 6, torn)


def test_a_store_starting_past_seq_1_reports_its_torn_tail_after_its_newest_seq(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    written = entries_of(9)[4:]
    with JsonlSink(path) as sink:
        sink.write(written[:3])
    with path.open("ab") as f:
        f.write(b"{")
    assert check(path) == intact(3, 5, 7, 1)


# -- torn lines that are damage --------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 2, 30])
def test_the_acknowledged_newest_entry_cut_short_is_a_cut(tmp_path: Path, cut: int) -> None:
    # Torn, but where the anchor says a whole entry stood: seq 4 was committed and is gone.
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(4))
    path.write_bytes(path.read_bytes()[:-cut])  # cut=1: only its newline lost
    assert check(path) == StoreCheck.bad_at(4)


def test_an_acknowledged_batch_cut_inside_is_bad_from_its_first_missing_entry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    written = entries_of(6)
    with JsonlSink(path) as sink:
        sink.write(written[:2])
        sink.write(written[2:])  # acknowledges seq 6
    data = path.read_bytes()
    end_of_3 = len(b"".join(line_of(e) for e in written[:3]))
    path.write_bytes(data[: end_of_3 + 10])  # seq 4 torn, seqs 5 and 6 gone
    assert check(path) == StoreCheck.bad_at(4)


def test_a_torn_tail_after_a_complete_line_that_is_no_entry_is_still_bad(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(3))
    with path.open("ab") as f:
        f.write(b"{not an entry}\n" + b'{"seq": 5')
    assert check(path) == StoreCheck.bad_at(4)


def test_a_torn_tail_after_a_chain_break_is_still_bad(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(4))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"agent-1", b"mallory")
    path.write_bytes(b"".join(lines) + b'{"seq": 5')
    assert check(path) == StoreCheck.bad_at(2)


def test_a_torn_tail_beside_a_damaged_anchor_is_still_bad(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(4))
    Path(f"{path}.anchor").write_bytes(b"{not json")
    with path.open("ab") as f:
        f.write(b'{"seq": 5')
    assert check(path) == StoreCheck.bad_at(1)


# -- a writer in another process -------------------------------------------------------------


def commit_batch(path: Path, entries: list[AuditEntry]) -> None:
    """What a sink in another process does: append a batch, sync, replace the anchor."""
    with JsonlSink(path) as sink:
        sink.write(entries)


def test_verify_reads_the_anchor_before_the_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer commits a batch between verify's two reads. Anchor first, the store only
    # grows past it; entries first, the newer anchor acknowledges entries never read.
    path = tmp_path / "audit.jsonl"
    written = entries_of(12)
    commit_batch(path, written[:10])
    reads: list[str] = []
    writer = [False]

    def between_reads(what: str) -> None:
        if writer[0]:  # (the writer's own sink reads the anchor too)
            return
        reads.append(what)
        if len(reads) == 2:
            writer[0] = True
            commit_batch(path, written[10:])
            writer[0] = False

    real_read_anchor = _jsonl._read_anchor
    real_complete_lines = _jsonl._complete_lines

    def read_anchor(path: str) -> StoreAnchor | None:
        between_reads("anchor")
        return real_read_anchor(path)

    def complete_lines(path: str) -> tuple[Iterator[bytes], list[int]]:
        lines, torn = real_complete_lines(path)

        def read() -> Iterator[bytes]:
            between_reads("entries")
            yield from lines

        return read(), torn

    monkeypatch.setattr(_jsonl, "_read_anchor", read_anchor)
    monkeypatch.setattr(_jsonl, "_complete_lines", complete_lines)
    assert check_sink(path) == intact(12, 1, 12, 0)
    assert reads == ["anchor", "entries"]


def test_a_batch_a_writer_is_appending_while_verify_reads_is_not_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer's single write has landed in part when verify reads the file: one whole
    # line past the anchor and part of the next, and the anchor still at the batch before.
    path = tmp_path / "audit.jsonl"
    written = entries_of(13)
    commit_batch(path, written[:10])
    batch = b"".join(line_of(e) for e in written[10:])
    landed = len(line_of(written[10])) + 17
    real_read_anchor = _jsonl._read_anchor

    def read_anchor(path: str) -> StoreAnchor | None:
        anchor = real_read_anchor(path)
        with open(path, "ab") as f:
            f.write(batch[:landed])
        return anchor

    monkeypatch.setattr(_jsonl, "_read_anchor", read_anchor)
    assert check_sink(path) == intact(11, 1, 11, 17)
    monkeypatch.undo()
    with path.open("ab") as f:  # the write completes, then its anchor is replaced
        f.write(batch[landed:])
    Path(f"{path}.anchor").write_bytes(
        msgspec.json.encode(
            {
                "first_seq": 1,
                "first_prev_hash": GENESIS_HASH,
                "last_seq": 13,
                "last_hash": written[-1].hash,
            }
        )
    )
    assert check(path) == intact(13, 1, 13, 0)


# -- any cut of a store the sink wrote ------------------------------------------------------

BATCHES = (3, 1, 4, 2)  # written one sink write each: an anchor after each


@functools.cache
def written_store() -> tuple[bytes, tuple[bytes, ...], tuple[int, ...]]:
    """A store of 10 entries from seq 3 written by JsonlSink in four batches: its bytes, the
    anchor file after each batch, and the byte offset where each batch ends."""
    entries = entries_of(12)[2:]
    anchors, ends = [], []
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "audit.jsonl"
        with JsonlSink(path) as sink:
            at = 0
            for size in BATCHES:
                sink.write(entries[at : at + size])
                at += size
                anchors.append(Path(f"{path}.anchor").read_bytes())
                ends.append(path.stat().st_size)
        return path.read_bytes(), tuple(anchors), tuple(ends)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_store_cut_at_any_byte_is_intact_past_its_anchor_and_bad_within_it(
    tmp_path: Path, data: st.DataObject
) -> None:
    store, anchors, ends = written_store()
    acked = data.draw(st.integers(0, len(BATCHES)), label="batches acknowledged")
    cut = data.draw(st.integers(0, len(store)), label="cut at byte")
    path = tmp_path / "audit.jsonl"
    anchor = Path(f"{path}.anchor")
    path.write_bytes(store[:cut])
    anchor.unlink(missing_ok=True)
    if acked:  # else no anchor file: nothing acknowledged
        anchor.write_bytes(anchors[acked - 1])
    acked_end = ends[acked - 1] if acked else 0
    lines = store[:cut].count(b"\n")
    torn = cut - (store.rfind(b"\n", 0, cut) + 1)
    if cut >= acked_end:
        expected = intact(lines, 3 if lines else None, 2 + lines if lines else None, torn)
    else:  # the first acknowledged entry the cut reached
        expected = StoreCheck.bad_at(3 + lines)
    assert check(path) == expected


# -- bytes without a newline that no write of a sink left --------------------------------------
# A sink's write is a batch of whole lines, each starting with ``{"seq":``: cut short, it
# leaves a prefix of that. Anything else at the end of a file is not a torn write.


@pytest.mark.parametrize("head", [b"{", b'{"se', b'{"seq":', b'{"seq":12,"ts'])
def test_a_torn_tail_as_short_as_a_byte_of_an_entry_is_a_write_cut_short(
    tmp_path: Path, head: bytes
) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(2))
    with path.open("ab") as f:
        f.write(head)
    assert check(path) == intact(2, 1, 2, len(head))


def test_a_file_holding_only_text_without_a_newline_is_no_store_and_stays_as_it_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello world")  # a user's file, given to the sink by mistake
    with pytest.raises(
        msgspec.DecodeError,
        match=r"notes\.txt is not a JSONL audit store: it holds no complete line, and its 11 "
        r"bytes do not start like an audit entry; the sink will not write into it$",
    ):
        JsonlSink(path)
    assert path.read_bytes() == b"hello world"
    assert not Path(f"{path}.anchor").exists()
    assert check(path).bad == 1


def test_a_store_ending_with_bytes_no_sink_wrote_is_not_cut_and_reads_as_damaged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(3))
    with path.open("ab") as f:
        f.write(b"rm -rf /var/log/audit")  # appended by someone, not by a sink
    before = path.read_bytes()
    assert check(path).bad == 4
    with pytest.raises(
        ValueError,
        match=r"ends with 21 bytes without a newline that do not start like an audit entry, "
        r"so no write of a sink left them: the sink will not cut them \(verify_sink reports "
        r"the store damaged\)",
    ):
        JsonlSink(path)
    assert path.read_bytes() == before


def test_a_line_longer_than_any_entry_is_refused_before_it_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_jsonl, "LINE_MAX_BYTES", 4096)
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(2))
    with path.open("ab") as f:
        f.write(b'{"seq":3,"x":"' + b"a" * 8192 + b'"}\n')
    with pytest.raises(
        msgspec.DecodeError, match=r"^line 3 is longer than 4096 bytes, which no audit entry is$"
    ):
        read_jsonl(path)
    assert check(path).bad == 3
