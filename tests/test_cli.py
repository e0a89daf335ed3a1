"""The ``eventbus`` command line: every subcommand, its exit codes and its bad input.

Most tests call ``main(argv)`` in-process and read stdout/stderr; a few run the real console
script and ``python -m eventbus`` as a user would, to check exit codes and that no traceback
ever reaches the terminal.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
import structlog.testing

from audit import AuditEntry, AuditTrail, Other
from audit.sinks import JsonlSink, SqliteSink
from eventbus._cli import main

TIME_BOUND = 60


@pytest.fixture(autouse=True)
def unconfigured_structlog() -> None:
    """Each test starts as a fresh ``eventbus`` process does: structlog not configured.

    (Other tests' ``capture_logs`` leave structlog marked as configured, and the CLI leaves
    an application's configuration alone.)
    """
    structlog.reset_defaults()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite audit store written by the demo (shared, read-only for the tests)."""
    path = tmp_path_factory.mktemp("store") / "audit.sqlite3"
    assert main(["demo", "--agents", "2", "--events", "300", "--db", str(path)]) == 0
    return path


def entries_of(path: Path) -> list[AuditEntry]:
    with SqliteSink(path) as sink:
        return sink.query()


def copy_store(store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.sqlite3"
    source = sqlite3.connect(store)
    target = sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return copy


# -- usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["demo", "--help"],
        ["audit", "--help"],
        ["audit", "show", "--help"],
        ["audit", "verify", "--help"],
        ["schema", "--help"],
        ["replay", "--help"],
    ],
)
def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 0
    assert out.startswith("usage: eventbus")
    assert err == ""


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert re.fullmatch(r"eventbus \S+\n", out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # A missing subcommand is named by its choices, never by an internal dest name.
        ([], "eventbus: the following arguments are required: {demo,audit,replay,schema} ("),
        (["launch"], "eventbus: argument {demo,audit,replay,schema}: invalid choice: 'launch'"),
        (["demo", "--bogus"], "eventbus: unrecognized arguments: --bogus"),
        (
            ["demo", "--agents", "0"],
            "eventbus demo: argument --agents: expected a positive integer, got '0'",
        ),
        (
            ["demo", "--events", "many"],
            "eventbus demo: argument --events: expected a positive integer, got 'many'",
        ),
        (["audit"], "eventbus audit: the following arguments are required: {show,verify} ("),
        (["audit", "launch"], "eventbus audit: argument {show,verify}: invalid choice: 'launch'"),
        (["audit", "show"], "eventbus audit show: the following arguments are required: PATH"),
        (
            ["audit", "show", "x.db", "--since-seq", "-1"],
            "eventbus audit show: argument --since-seq: expected an integer >= 0, got '-1'",
        ),
        (
            ["audit", "show", "x.db", "--since-seq", "1.5"],
            "eventbus audit show: argument --since-seq: expected an integer >= 0, got '1.5'",
        ),
        (
            ["schema", "--check", "--write", "out"],
            "eventbus schema: argument --write: not allowed with argument --check",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert one_line(err).startswith(message)


def test_an_unknown_action_is_a_usage_error_listing_the_actions(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    code, _, err = run(capsys, "audit", "show", str(store), "--action", "Launch")
    assert code == 2
    line = one_line(err)
    assert line.startswith("eventbus audit show: unknown --action 'Launch' (choose from ")
    assert "ToolCall" in line and "MemoryRead" in line


# -- demo -----------------------------------------------------------------------------------


def test_demo_summarises_the_run_and_leaves_a_verified_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "audit.sqlite3"
    code, out, err = run(capsys, "demo", "--agents", "3", "--events", "400", "--db", str(db))
    assert code == 0, err
    assert err == ""  # lag records stay quiet without --verbose
    assert f"supervisor demo: 3 agents, audit trail on SQLite at {db} (kept)" in out
    match = re.search(r"^published (\d+) events in ", out, re.M)
    assert match is not None
    published = int(match.group(1))
    assert published >= 400
    rows = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"^  (\w+) +(\d+) +(\d+)  \w+$", out, re.M)
    }
    assert set(rows) == {"audit", "approver", "dashboard"}
    assert rows["audit"] == (published, 0)  # nothing escaped the trail
    delivered, lagged = rows["dashboard"]
    assert delivered + lagged == published
    assert (
        f"audit: {published} entries in the trail; {published} in the store "
        f"(seq 1..{published}), hash chain intact" in out
    )
    table = out.split("last 10 entries:\n", 1)[1].splitlines()
    assert re.match(r" *seq  time \(UTC\) +actor +action +kind$", table[0])
    seqs = [int(line.split()[0]) for line in table[1:11]]
    assert seqs == list(range(published - 9, published + 1))
    # the table is aligned: every row's second column starts where the header's does
    starts = {line.index("20") for line in table[1:11]}
    assert starts == {table[0].index("time")}
    assert len(entries_of(db)) == published
    assert f"verify it: eventbus audit verify {db}" in out


def test_demo_audit_loses_nothing_when_the_agents_outrun_the_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # More events than the sink's buffer (16,384) and the audit queue (4,096) hold together:
    # a queued auditor would lose events here once SQLite fell behind; the demo's lossless
    # auditor makes the agents wait instead.
    db = tmp_path / "audit.sqlite3"
    code, out, err = run(capsys, "demo", "--agents", "8", "--events", "24000", "--db", str(db))
    assert code == 0, err
    published = int(re.search(r"^published (\d+) events", out, re.M).group(1))  # type: ignore[union-attr]
    assert re.search(rf"^  audit +{published} +0  block$", out, re.M)
    assert "never reached it" not in out
    assert len(entries_of(db)) == published


def test_demo_summary_says_what_the_trail_evicted_and_what_never_reached_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit

    attach, trail_class = audit.attach_audit_trail, audit.AuditTrail

    def small_trail() -> audit.AuditTrail:
        return trail_class(capacity=50)

    def lossy(*args: Any, **kwargs: Any) -> audit.Auditor:
        # A queued auditor with a 1-slot queue falls behind the agents' bursts.
        return attach(*args, **{**kwargs, "mode": "queued", "max_buffer_size": 1})

    monkeypatch.setattr(audit, "AuditTrail", small_trail)
    monkeypatch.setattr(audit, "attach_audit_trail", lossy)
    code, out, err = run(capsys, "demo", "--agents", "4", "--events", "400")
    assert code == 0, err
    row = re.search(r"^  audit +(\d+) +(\d+)  drop_oldest$", out, re.M)
    assert row is not None
    lost = int(row.group(2))
    assert lost > 0
    summary = re.search(
        r"^audit: 50 entries in the trail \(the newest: it evicted (\d+), .*$", out, re.M
    )
    assert summary is not None
    assert summary.group(0).endswith(f"; {lost} events never reached it (see EventsDropped)")


def test_demo_resumes_an_existing_store_and_continues_its_chain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "audit.sqlite3"
    assert main(["demo", "--agents", "1", "--events", "50", "--db", str(db)]) == 0
    first = len(entries_of(db))
    capsys.readouterr()
    code, out, _ = run(capsys, "demo", "--agents", "1", "--events", "50", "--db", str(db))
    assert code == 0
    assert f"{first} resumed from the store" in out
    total = len(entries_of(db))
    assert total > first
    assert f"{total} in the store (seq 1..{total}), hash chain intact" in out


def test_demo_refuses_to_resume_a_store_cut_at_its_end_and_leaves_it_reported(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path
) -> None:
    db = copy_store(store, tmp_path)
    last = entries_of(db)[-1].seq
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM audit_entries WHERE seq > 10")
    conn.close()
    code, out, err = run(capsys, "demo", "--agents", "1", "--events", "50", "--db", str(db))
    assert (code, out) == (1, "")
    assert one_line(err) == (
        f"eventbus: error: cannot resume the audit store {db}: the store at {db} ends at seq "
        f"10, but its anchor says it committed entries up to seq {last}: entries were cut "
        "from its end: the sink will not write over that evidence (verify_sink reports seq "
        f"11): keep the store at {db}, and write to a new one"
    )
    code, _, err = run(capsys, "audit", "verify", str(db))
    assert (code, one_line(err)) == (
        1,
        f"eventbus: error: {db} is not intact: the first bad entry is seq 11",
    )


def test_demo_without_db_uses_a_temporary_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    code, out, _ = run(capsys, "demo", "--agents", "1", "--events", "20")
    assert code == 0
    assert "(temporary; pass --db PATH to keep it)" in out
    assert list(tmp_path.iterdir()) == []  # removed at the end


def test_demo_shows_progress_on_long_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "demo", "--agents", "2", "--events", "20000")
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 10
    assert all(re.fullmatch(r"demo: \d+/20000 events \(\d+%\)", line) for line in lines)
    assert lines[-1].endswith("(100%)")


def test_demo_is_quiet_about_progress_on_short_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "demo", "--agents", "1", "--events", "100")
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    "argv",
    [["-v", "demo"], ["demo", "-v"], ["--verbose", "demo"], ["demo", "--verbose"]],
    ids=["before", "after", "long-before", "long-after"],
)
def test_demo_verbose_shows_the_library_logs_on_stderr(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv, "--agents", "2", "--events", "400")
    assert code == 0
    assert "subscription_lagged" in err and "name=dashboard" in err
    assert "subscription_lagged" not in out


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "audit", "verify"],
        ["audit", "-v", "verify"],
        ["audit", "verify", "-v"],
        ["audit", "--verbose", "show"],
    ],
    ids=["before", "after-audit", "after-verify", "long-after-audit"],
)
def test_verbose_is_accepted_after_every_subcommand_word_of_audit(
    capsys: pytest.CaptureFixture[str], store: Path, argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv, str(store))
    assert (code, err) == (0, "")
    assert out


def test_the_cli_leaves_an_applications_structlog_configuration_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with structlog.testing.capture_logs() as logs:
        code, _, err = run(capsys, "demo", "--agents", "2", "--events", "400")
        assert structlog.is_configured()
    assert code == 0
    assert err == ""
    assert any(log["event"] == "subscription_lagged" for log in logs)


def test_the_cli_restores_structlog_defaults_after_a_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(capsys, "demo", "--agents", "1", "--events", "20")[0] == 0
    assert not structlog.is_configured()


def test_demo_refuses_a_database_that_is_not_an_audit_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (name TEXT)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    code, _, err = run(capsys, "demo", "--events", "10", "--db", str(db))
    assert code == 1
    assert one_line(err).startswith(f"eventbus: error: {db} is not a readable audit store: ")
    assert db.read_bytes() == before  # untouched


@pytest.mark.parametrize(
    "content", [b"not a database at all", b"SQLite format 3\x00" + b"\xff" * 200]
)
def test_demo_refuses_a_corrupt_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes
) -> None:
    db = tmp_path / "corrupt.sqlite3"
    db.write_bytes(content)
    code, _, err = run(capsys, "demo", "--events", "10", "--db", str(db))
    assert code == 1
    assert one_line(err).startswith(f"eventbus: error: {db} is not a readable audit store: ")


def test_demo_reports_a_store_it_cannot_create(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "missing" / "dir" / "audit.sqlite3"
    code, _, err = run(capsys, "demo", "--events", "10", "--db", str(db))
    assert code == 1
    assert one_line(err).startswith(f"eventbus: error: the audit store {db} failed: ")


# -- audit show -----------------------------------------------------------------------------


def shown_seqs(out: str) -> list[int]:
    return [int(line.split()[0]) for line in out.splitlines()[1:]]


def test_audit_show_prints_every_entry_as_a_table(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    entries = entries_of(store)
    code, out, err = run(capsys, "audit", "show", str(store))
    assert (code, err) == (0, "")
    assert re.match(r" *seq  time \(UTC\) +actor +action +kind\n", out)
    assert shown_seqs(out) == [e.seq for e in entries]


@pytest.mark.parametrize("field", ["actor", "kind"])
def test_audit_show_filters_by_actor_and_kind(
    capsys: pytest.CaptureFixture[str], store: Path, field: str
) -> None:
    entries = entries_of(store)
    value = getattr(entries[len(entries) // 2], field)
    code, out, _ = run(capsys, "audit", "show", str(store), f"--{field}", value)
    assert code == 0
    expected = [e.seq for e in entries if getattr(e, field) == value]
    assert 0 < len(expected) < len(entries)
    assert shown_seqs(out) == expected


def test_audit_show_filters_by_action_and_since_seq_together(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    entries = entries_of(store)
    action = type(entries[-1].action).__name__
    since = entries[len(entries) // 2].seq
    code, out, _ = run(
        capsys, "audit", "show", str(store), "--action", action, "--since-seq", str(since)
    )
    assert code == 0
    expected = [e.seq for e in entries if type(e.action).__name__ == action and e.seq >= since]
    assert expected
    assert shown_seqs(out) == expected


def test_audit_show_json_prints_one_decodable_entry_per_line(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    entries = entries_of(store)
    code, out, _ = run(capsys, "audit", "show", str(store), "--json", "--since-seq", "5")
    assert code == 0
    decoded = [msgspec.json.decode(line, type=AuditEntry) for line in out.splitlines()]
    assert decoded == [e for e in entries if e.seq >= 5]


def test_audit_show_says_when_nothing_matches(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    code, out, err = run(capsys, "audit", "show", str(store), "--actor", "nobody")
    assert code == 0
    assert out == ""
    assert one_line(err) == f"no entries match (the store holds {len(entries_of(store))})"


def test_audit_show_reads_a_jsonl_store_and_reports_a_torn_tail(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path
) -> None:
    entries = entries_of(store)
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries)
    code, out, err = run(capsys, "audit", "show", str(path))
    assert (code, err) == (0, "")
    assert shown_seqs(out) == [e.seq for e in entries]
    with path.open("ab") as f:
        f.write(b'{"seq": 99999, "ts_')  # a write cut short
    code, out, err = run(capsys, "audit", "show", str(path), "--json")
    assert code == 0
    assert len(out.splitlines()) == len(entries)
    assert one_line(err) == (
        f"eventbus: warning: {path} ends with a torn line (19 bytes), not shown"
    )


def files_in(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_audit_show_never_writes_not_even_the_schema_a_sink_would_add(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path
) -> None:
    # A store without what a SqliteSink adds on opening (an index, the schema version),
    # as an older version or another tool may have left it: a sink would add them.
    copy = copy_store(store, tmp_path)
    conn = sqlite3.connect(copy)
    with conn:
        conn.execute("DROP INDEX audit_entries_ts")
        conn.execute("DELETE FROM audit_meta WHERE key = 'schema_version'")
    conn.close()
    before = files_in(tmp_path)
    assert list(before) == ["copy.sqlite3"]  # quiescent: nobody has it open
    code, out, err = run(capsys, "audit", "show", str(copy))
    assert (code, err) == (0, "")
    assert shown_seqs(out) == [e.seq for e in entries_of(store)]
    assert files_in(tmp_path) == before  # byte-identical, and no -wal or -shm left


def test_audit_show_reads_the_wal_of_a_store_a_writer_has_open_mid_transaction(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path
) -> None:
    copy = copy_store(store, tmp_path)
    entries = entries_of(copy)
    with SqliteSink(copy) as sink:
        trail = AuditTrail()
        trail.restore(sink)  # extra entries that continue the chain: show sees no damage
        extra = [trail.append("writer", Other(detail=f"extra {i}"), "r") for i in range(3)]
        sink.write(extra)  # committed to the -wal, not checkpointed into the file
        database = copy.read_bytes()
        wal = Path(f"{copy}-wal").read_bytes()
        writer = sqlite3.connect(copy, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # a writer holds the write lock meanwhile
        try:
            code, out, err = run(capsys, "audit", "show", str(copy), "--since-seq", "2")
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert (code, err) == (0, "")
        assert shown_seqs(out) == [e.seq for e in [*entries, *extra] if e.seq >= 2]
        assert copy.read_bytes() == database  # nothing checkpointed by the reader
        assert Path(f"{copy}-wal").read_bytes() == wal
        sink.write([trail.append("writer", Other(detail="after"), "r")])  # still works


@pytest.mark.parametrize("command", ["show", "verify"])
def test_audit_commands_report_a_missing_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "nope.sqlite3"
    code, out, err = run(capsys, "audit", command, str(missing))
    assert (code, out) == (1, "")
    assert one_line(err) == f"eventbus: error: no such file: {missing}"
    assert not missing.exists()  # not created by looking


@pytest.mark.parametrize("command", ["show", "verify"])
def test_audit_commands_report_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    code, _, err = run(capsys, "audit", command, str(tmp_path))
    assert code == 1
    assert one_line(err) == f"eventbus: error: {tmp_path} is a directory, not an audit store"


@pytest.mark.parametrize("command", ["show", "verify"])
def test_audit_commands_report_a_corrupt_sqlite_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    path = tmp_path / "corrupt.sqlite3"
    path.write_bytes(b"SQLite format 3\x00" + b"\x07" * 500)
    code, _, err = run(capsys, "audit", command, str(path))
    assert code == 1
    assert one_line(err).startswith(f"eventbus: error: {path} is not a readable audit store: ")


@pytest.mark.parametrize("command", ["show", "verify"])
def test_audit_commands_leave_a_foreign_database_untouched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    path = tmp_path / "app.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    code, _, err = run(capsys, "audit", command, str(path))
    assert code == 1
    assert "no such table: audit_entries" in one_line(err)
    assert path.read_bytes() == before


def test_audit_show_reports_a_file_that_is_not_jsonl(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    code, _, err = run(capsys, "audit", "show", str(path))
    assert code == 1
    assert one_line(err).startswith(f"eventbus: error: {path} is not a JSONL audit store: line 1")


# -- audit verify ---------------------------------------------------------------------------


def test_audit_verify_accepts_an_intact_store(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    n = len(entries_of(store))
    code, out, err = run(capsys, "audit", "verify", str(store))
    assert (code, err) == (0, "")
    assert out == f"{store}: intact ({n} entries, seq 1..{n})\n"


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 7",
        "DELETE FROM audit_entries WHERE seq = 7",
        "UPDATE audit_entries SET resource = '{}' WHERE seq = 7",
    ],
)
def test_audit_verify_names_the_first_bad_seq_of_a_tampered_store(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path, tamper: str
) -> None:
    copy = copy_store(store, tmp_path)
    conn = sqlite3.connect(copy)
    with conn:
        conn.execute(tamper)
    conn.close()
    code, out, err = run(capsys, "audit", "verify", str(copy))
    assert (code, out) == (1, "")
    assert one_line(err) == f"eventbus: error: {copy} is not intact: the first bad entry is seq 7"


def test_audit_verify_checks_jsonl_stores_too(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path
) -> None:
    entries = entries_of(store)
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries)
    code, out, _ = run(capsys, "audit", "verify", str(path))
    assert code == 0
    assert out == f"{path}: intact ({len(entries)} entries, seq 1..{len(entries)})\n"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"actor":"', b'"actor":"x', 1)
    path.write_bytes(b"".join(lines))
    code, _, err = run(capsys, "audit", "verify", str(path))
    assert code == 1
    assert one_line(err) == f"eventbus: error: {path} is not intact: the first bad entry is seq 5"


@pytest.mark.parametrize("kind", ["sqlite", "jsonl"])
def test_audit_verify_counts_the_entries_it_verified_while_a_writer_appends(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    store: Path,
    tmp_path: Path,
    kind: str,
) -> None:
    # The success line used to count the entries in a later read than the one verified:
    # with a writer appending meanwhile, it claimed entries that were never checked.
    from audit.sinks import _jsonl, _sqlite

    path = tmp_path / ("audit.db" if kind == "sqlite" else "audit.jsonl")
    open_sink: type[SqliteSink | JsonlSink] = SqliteSink if kind == "sqlite" else JsonlSink
    trail = AuditTrail()
    with open_sink(path) as sink:
        sink.write(entries_of(store)[:10])
        trail.restore(sink)

    def append() -> None:  # a writer in another process commits a batch
        with open_sink(path) as sink:
            sink.write([trail.append("writer", Other(detail="meanwhile"), "r")])

    if kind == "sqlite":
        real_read_store = _sqlite.read_store

        def read_store(path: Any, read: Any) -> Any:
            try:
                return real_read_store(path, read)
            finally:
                append()

        monkeypatch.setattr(_sqlite, "read_store", read_store)
    else:
        real_complete_lines = _jsonl._complete_lines

        def complete_lines(path: str) -> tuple[Iterator[bytes], list[int]]:
            lines, torn = real_complete_lines(path)

            def then_append() -> Iterator[bytes]:
                yield from lines
                append()

            return then_append(), torn

        monkeypatch.setattr(_jsonl, "_complete_lines", complete_lines)
    code, out, err = run(capsys, "audit", "verify", str(path))
    assert (code, err) == (0, "")
    assert out == f"{path}: intact (10 entries, seq 1..10)\n"


def test_audit_verify_says_a_jsonl_store_without_its_anchor_was_checked_for_its_chain_only(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path
) -> None:
    entries = entries_of(store)
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries)
    Path(f"{path}.anchor").unlink()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-5]))  # a cut tail: undetectable without the anchor
    n = len(entries) - 5
    code, out, err = run(capsys, "audit", "verify", str(path))
    assert (code, err) == (0, "")
    assert out == (
        f"{path}: intact ({n} entries, seq 1..{n}; hash chain only: no anchor file "
        f"{path}.anchor, so a cut at either end cannot be detected)\n"
    )


def test_audit_verify_says_a_file_that_is_no_store_is_not_a_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("meeting notes\nnothing to audit here\n")
    code, out, err = run(capsys, "audit", "verify", str(junk))
    assert (code, out) == (1, "")
    assert one_line(err).startswith(
        f"eventbus: error: {junk} is not a JSONL audit store: line 1: "
    )


def test_audit_verify_says_a_file_of_one_unterminated_line_of_text_is_not_a_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"meeting notes, no newline")
    assert run(capsys, "audit", "verify", str(junk)) == (
        1,
        "",
        f"eventbus: error: {junk} is not a JSONL audit store: it holds no complete line, and "
        "its bytes do not start like an audit entry\n",
    )


def test_audit_verify_finds_an_empty_file_and_a_torn_only_line_without_anchor_intact(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert run(capsys, "audit", "verify", str(empty)) == (
        0,
        f"{empty}: intact (0 entries; hash chain only: no anchor file {empty}.anchor, so a "
        "cut at either end cannot be detected)\n",
        "",
    )
    # A store cut off in its first write: with no anchor, nothing was acknowledged. (This
    # was reported as tampering at seq 1.)
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b'{"seq": 1, "ts_ns": 17')
    code, out, err = run(capsys, "audit", "verify", str(torn))
    assert (code, out) == (
        0,
        f"{torn}: intact (0 entries; hash chain only: no anchor file {torn}.anchor, so a "
        "cut at either end cannot be detected)\n",
    )
    assert one_line(err) == (
        f"eventbus: warning: {torn} holds only a torn line (22 bytes, no newline), not "
        "verified: a write cut short by a crash or still in progress, never acknowledged "
        "(a JsonlSink opening the store cuts it off)"
    )


def test_audit_verify_reports_a_tampered_first_line_of_an_anchored_store_as_tampering(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries_of(store))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[0] = b"garbage\n"
    path.write_bytes(b"".join(lines))
    code, _, err = run(capsys, "audit", "verify", str(path))
    assert code == 1
    assert one_line(err) == f"eventbus: error: {path} is not intact: the first bad entry is seq 1"


# -- schema ---------------------------------------------------------------------------------


ROOT = Path(__file__).resolve().parent.parent


def test_schema_prints_the_schema_of_every_kernel_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from eventbus import schema

    code, out, err = run(capsys, "schema")
    assert (code, err) == (0, "")
    assert out == schema.render_schema("kernel_event")
    assert '"agent_started"' in out


def test_schema_check_accepts_the_repository_schemas(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # --check defaults to ./schemas
    code, out, _ = run(capsys, "schema", "--check")
    assert (code, out) == (0, "schemas: up to date\n")


def test_schema_write_then_check_then_detect_a_stale_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "out"
    code, out, _ = run(capsys, "schema", "--write", str(target))
    assert code == 0
    assert out.startswith(f"wrote {target}: ") and "envelope.json" in out
    assert run(capsys, "schema", "--write", str(target))[1] == f"wrote {target}: nothing changed\n"
    assert run(capsys, "schema", "--check", str(target))[:2] == (0, f"{target}: up to date\n")
    (target / "envelope.json").write_text("{}\n")
    (target / "os_event.json").unlink()
    code, out, err = run(capsys, "schema", "--check", str(target))
    assert (code, out) == (1, "")
    assert one_line(err) == (
        f"eventbus: error: {target} is stale: envelope.json, os_event.json "
        f"(regenerate with 'eventbus schema --write {target}')"
    )


def test_schema_check_reports_a_missing_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "schemas"
    code, _, err = run(capsys, "schema", "--check", str(missing))
    assert code == 1
    assert one_line(err) == (
        f"eventbus: error: no such directory: {missing} (generate it with --write {missing})"
    )


def test_schema_write_reports_a_target_that_is_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = run(capsys, "schema", "--write", str(target))
    assert code == 1
    assert (
        one_line(err) == f"eventbus: error: cannot write the schemas to {target}: not a directory"
    )


# -- as a user runs it ----------------------------------------------------------------------


def test_python_m_eventbus_demo_runs_by_default_in_a_few_seconds(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eventbus", "demo"],
        capture_output=True,
        text=True,
        timeout=TIME_BOUND,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "hash chain intact" in result.stdout
    assert list(tmp_path.iterdir()) == []  # the default store is temporary


def test_the_console_script_exits_with_codes_and_never_a_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "eventbus"
    assert script.exists(), "pip install -e . installs the eventbus console script"

    def call(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *argv], capture_output=True, text=True, timeout=TIME_BOUND, check=False
        )

    assert call("--help").returncode == 0
    bad_flag = call("audit", "verify", "--nope")
    assert bad_flag.returncode == 2
    assert len(bad_flag.stderr.splitlines()) == 1
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00garbage")
    for result in (call("audit", "show", str(corrupt)), call("audit", "verify", "missing.db")):
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1


def test_a_closed_pipe_ends_the_output_quietly(store: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventbus", "audit", "show", str(store), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # like ``| head -1``
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=TIME_BOUND) == 0
    assert b"Traceback" not in err


# -- replay ---------------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


def test_replay_prints_the_snapshot_equal_to_the_golden_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "replay", str(FIXTURES / "events_ask_user.jsonl"), "--snapshot")
    assert code == 0
    # stdout is the JSON document alone (pipe it to jq); the summary is on stderr
    assert err.endswith("events_ask_user.jsonl: 18 envelopes, 0 gaps\n")
    golden = msgspec.json.decode((FIXTURES / "os_snapshot_ask_user.json").read_bytes())
    assert msgspec.json.decode(out) == golden


def test_replay_with_both_flags_prints_titled_sections(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = str(FIXTURES / "events_ask_user.jsonl")
    code, out, err = run(capsys, "replay", log, "--snapshot", "--trail")
    assert (code, err) == (0, "")
    header, title, rest = out.split("\n", 2)
    assert header.endswith("events_ask_user.jsonl: 18 envelopes, 0 gaps")
    assert title == "OS snapshot:"
    assert "\naudit trail: " in rest


def test_replay_prints_the_audit_trail_rebuilt_from_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from audit import rebuild_audit_trail
    from eventbus.replay import read_log

    log_path = FIXTURES / "events_spawn_lifecycle.jsonl"
    code, out, err = run(capsys, "replay", str(log_path), "--trail")
    assert (code, err) == (0, "")
    expected = rebuild_audit_trail(read_log(log_path))
    assert f"audit trail: {len(expected)} entries" in out
    rows = re.findall(r"^ *(\d+)  \S+  (\S+) +(\w+)\(.*  (\w+)$", out, re.M)
    assert [(int(r[0]), r[1], r[2], r[3]) for r in rows] == [
        (e.seq, e.actor, type(e.action).__name__, e.kind) for e in expected
    ]
    assert "OS snapshot" not in out


def test_replay_says_how_many_entries_its_trail_evicted_and_keeps_more_with_capacity(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # An operator replayed a 257,011-envelope log and saw 100,000 entries with no word of the
    # rest: the trail's default capacity had evicted them.
    log = str(FIXTURES / "events_ask_user.jsonl")  # 18 envelopes, 18 entries
    code, out, err = run(capsys, "replay", log, "--trail", "--capacity", "5")
    assert (code, err) == (0, "")
    assert "\naudit trail: 5 entries (the newest: 13 older ones evicted; --capacity N " in out
    rows = re.findall(r"^ *(\d+)  \S+", out, re.M)
    assert [int(seq) for seq in rows] == [14, 15, 16, 17, 18]
    code, out, _ = run(capsys, "replay", log, "--trail", "--capacity", "18")
    assert code == 0
    assert "\naudit trail: 18 entries\n" in out
    code, _, err = run(capsys, "replay", log, "--trail", "--capacity", "0")
    assert code == 2
    assert "--capacity" in err


def test_replay_of_a_sqlite_file_says_what_it_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # An operator passed an audit store: "JSON is malformed: invalid character (byte 0)".
    from audit.sinks import SqliteSink

    store = tmp_path / "audit.sqlite3"
    SqliteSink(store).close()
    code, out, err = run(capsys, "replay", str(store))
    assert (code, out) == (1, "")
    assert err == (
        f"eventbus: error: {store} is a SQLite database, not a session log (an audit store "
        "is read with 'eventbus audit show')\n"
    )


def test_replay_without_flags_prints_both(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "replay", str(FIXTURES / "events_ask_user.jsonl"))
    assert code == 0
    assert "OS snapshot:" in out
    assert "audit trail: 18 entries" in out


def test_replay_of_a_missing_or_corrupt_log_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "replay", str(tmp_path / "nope.jsonl"))
    assert code == 1
    assert one_line(err) == f"eventbus: error: no such file: {tmp_path / 'nope.jsonl'}"
    corrupt = tmp_path / "corrupt.jsonl"
    lines = (FIXTURES / "events_ask_user.jsonl").read_bytes().splitlines(keepends=True)
    corrupt.write_bytes(b"".join([*lines[:3], b"not json\n", *lines[3:]]))
    code, _, err = run(capsys, "replay", str(corrupt))
    assert code == 1
    assert one_line(err).startswith(f"eventbus: error: {corrupt} is not a session log: line 4 ")
    code, _, err = run(capsys, "replay", str(tmp_path))
    assert code == 1
    assert "is a directory" in one_line(err)


def test_replay_reads_a_log_from_a_pipe(tmp_path: Path) -> None:
    # Sniffing for a SQLite header ate the pipe's first bytes: "JSON is malformed".
    log = (FIXTURES / "events_ask_user.jsonl").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "eventbus", "replay", "/dev/stdin", "--trail"],
        input=log,
        capture_output=True,
        timeout=TIME_BOUND,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"audit trail: 18 entries" in proc.stdout


def test_replay_takes_lines_deeper_and_longer_than_its_defaults_when_told(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from eventbus import Envelope
    from eventbus.codec import encode_json
    from eventbus.events import ToolExecutionStarted

    nested: object = "leaf"
    for _ in range(70):
        nested = [nested]
    event = ToolExecutionStarted(
        session_id="s", tool_name="t", tool_call_id="c", tool_args={"deep": nested}
    )
    log = tmp_path / "deep.jsonl"
    log.write_bytes(encode_json(Envelope(1, "e1", 1, "tool_execution_started", event)) + b"\n")
    code, _, err = run(capsys, "replay", str(log), "--trail")
    assert code == 1
    assert re.search(r"line 1 of .*deeper than max_depth=64", one_line(err))
    code, out, err = run(capsys, "replay", str(log), "--trail", "--max-depth", "80")
    assert (code, err) == (0, "")
    assert "audit trail: 1 entries" in out
    code, _, err = run(capsys, "replay", str(log), "--max-line-bytes", "100", "--max-depth", "80")
    assert code == 1
    assert "line is longer than max_line_bytes=100" in one_line(err)


def test_replay_prints_a_timestamp_no_date_holds_as_nanoseconds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # It ended the listing half printed: "unexpected OverflowError".
    line = (
        '{"causation_id":null,"correlation_id":null,"event":{"event_type":"agent_started",'
        '"id":"00000000-0000-0000-0000-000000000001"},"event_id":"e%d","kind":"agent_started",'
        '"origin":null,"replayed":false,"seq":%d,"ts_ns":%d}\n'
    )
    log = tmp_path / "log.jsonl"
    log.write_text(line % (1, 1, 1_732_200_000_000_000_000) + line % (2, 2, 10**30))
    code, out, err = run(capsys, "replay", str(log), "--trail")
    assert (code, err) == (0, "")
    rows = [row for row in out.splitlines() if row.lstrip().startswith(("1 ", "2 "))]
    assert "2024-11-21T14:40:00.000Z" in rows[0]
    assert f"ts_ns={10**30}" in rows[1]


# -- audit verify: a JSONL store's torn final line ------------------------------------------
# A torn line past the last acknowledged entry (a crash, or a writer appending right now) was
# reported like tampering: "the first bad entry is seq N+1", a false alarm.


def jsonl_store(path: Path, n: int, written: int | None = None) -> list[AuditEntry]:
    """``n`` chained entries, the first ``written`` (all by default) written by a sink."""
    trail = AuditTrail()
    entries = [trail.append(f"agent-{i % 2}", Other(detail=f"d{i}"), "r") for i in range(n)]
    with JsonlSink(path) as sink:
        sink.write(entries[:written])
    return entries


def torn_warning(path: Path, where: str, size: int) -> str:
    return (
        f"eventbus: warning: {path} {where} ({size} bytes, no newline), not verified: a write "
        "cut short by a crash or still in progress, never acknowledged (a JsonlSink opening "
        "the store cuts it off)"
    )


def test_audit_verify_finds_a_store_intact_whose_torn_line_follows_the_acknowledged_entries(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    jsonl_store(path, 6)
    with path.open("ab") as f:
        f.write(b'{"seq":7,"ts_ns":1')  # a crash in the middle of the next batch
    code, out, err = run(capsys, "audit", "verify", str(path))
    assert (code, out) == (0, f"{path}: intact (6 entries, seq 1..6)\n")
    assert one_line(err) == torn_warning(path, "ends with a torn line after seq 6", 18)
    with structlog.testing.capture_logs(), JsonlSink(path) as sink:  # reopening cuts it
        assert sink.torn_tail == 18
    assert run(capsys, "audit", "verify", str(path)) == (
        0,
        f"{path}: intact (6 entries, seq 1..6)\n",
        "",
    )


def test_audit_verify_reports_the_acknowledged_newest_entry_cut_short_as_a_cut(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    jsonl_store(path, 6)
    for cut in (1, 25):  # its newline only, then part of the entry too
        path.write_bytes(path.read_bytes()[:-cut])
        code, out, err = run(capsys, "audit", "verify", str(path))
        assert (code, out) == (1, "")
        assert (
            one_line(err) == f"eventbus: error: {path} is not intact: the first bad entry is seq 6"
        )


def test_audit_verify_reads_a_batch_a_writer_is_appending_as_intact_with_a_warning(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A writer in another process has landed part of its batch's one write when verify reads
    # the store (after its anchor): two whole lines past the anchor, and part of a third.
    from audit.sinks import _jsonl

    path = tmp_path / "audit.jsonl"
    entries = jsonl_store(path, 13, written=10)
    batch = b"".join(msgspec.json.encode(e) + b"\n" for e in entries[10:])
    landed = len(batch) - 9
    real_read_anchor = _jsonl._read_anchor

    def read_anchor(path: str) -> Any:
        try:
            return real_read_anchor(path)
        finally:
            with open(path, "ab") as f:
                f.write(batch[:landed])

    monkeypatch.setattr(_jsonl, "_read_anchor", read_anchor)
    code, out, err = run(capsys, "audit", "verify", str(path))
    assert (code, out) == (0, f"{path}: intact (12 entries, seq 1..12)\n")
    torn = len(msgspec.json.encode(entries[12])) + 1 - 9
    assert one_line(err) == torn_warning(path, "ends with a torn line after seq 12", torn)


def test_audit_verify_reports_an_oversized_anchor_file_as_damage_from_the_first_entry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    jsonl_store(path, 4)
    anchor = Path(f"{path}.anchor")
    anchor.write_bytes(anchor.read_bytes().ljust(5000))  # valid JSON, padded past the bound
    code, out, err = run(capsys, "audit", "verify", str(path))
    assert (code, out) == (1, "")
    assert one_line(err) == f"eventbus: error: {path} is not intact: the first bad entry is seq 1"
