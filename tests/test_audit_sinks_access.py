"""Reading a SQLite audit store with less access than its writer: ``read_store``, and
``eventbus audit show``/``verify`` run as another user.

The tests that switch users run as root and drop to ``nobody`` (uid 65534) with ``setpriv``;
they are skipped where that is impossible. The others simulate a store this process may not
write.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from audit import AuditEntry, AuditTrail, Other
from audit.sinks import JsonlSink, SqliteSink, _sqlite, verify_sink
from audit.sinks._sqlite import UnreadableStoreError, query_sqlite, read_store

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
WRITER = 1234  # an unprivileged user who owns a store (no account needed)


def entries(n: int) -> list[AuditEntry]:
    trail = AuditTrail()
    for i in range(n):
        trail.append(f"actor-{i % 2}", Other(detail=str(i)), "r")
    return trail.entries()


def files_in(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def quiescent_store(path: Path, n: int = 5) -> list[AuditEntry]:
    written = entries(n)
    with SqliteSink(path) as sink:
        sink.write(written)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    return written


def touch_later(path: Path) -> None:
    """Change the file's timestamps, as a writer's checkpoint would."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


# -- reads without locks, simulated: a quiescent store this process may not write -------------


@pytest.fixture
def may_not_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sqlite, "_may_write", lambda path: False)


@pytest.mark.usefixtures("may_not_write")
def test_a_quiescent_store_this_user_may_not_write_is_read_creating_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db"
    written = quiescent_store(path)
    before = files_in(tmp_path)

    def read(conn: sqlite3.Connection) -> int:
        # No lock was taken: nothing beside the store, even while it is being read.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.db"]
        return int(conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0])

    assert read_store(path, read) == 5
    assert query_sqlite(path, since_seq=2) == written[1:]
    assert verify_sink(path) is None
    assert files_in(tmp_path) == before


@pytest.mark.usefixtures("may_not_write")
def test_a_read_without_locks_is_done_again_when_the_store_changed_under_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db"
    quiescent_store(path)
    calls: list[int] = []

    def read(conn: sqlite3.Connection) -> int:
        calls.append(len(calls))
        if len(calls) == 1:
            touch_later(path)  # a writer checkpointed into the file meanwhile
            raise sqlite3.DatabaseError("database disk image is malformed")  # a torn page
        return int(conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0])

    assert read_store(path, read) == 5
    assert calls == [0, 1]


@pytest.mark.usefixtures("may_not_write")
def test_a_store_that_changes_under_both_reads_without_locks_is_an_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db"
    quiescent_store(path)
    calls: list[int] = []

    def read(conn: sqlite3.Connection) -> None:
        calls.append(len(calls))
        touch_later(path)

    with pytest.raises(
        UnreadableStoreError,
        match=rf"^{path} changed twice while it was read without locks \(as this user may "
        r"not write it or its folder, and nobody had it open\); run again$",
    ):
        read_store(path, read)
    assert calls == [0, 1]


def test_a_read_with_locks_is_never_repeated(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    quiescent_store(path)
    calls: list[int] = []

    def read(conn: sqlite3.Connection) -> int:
        calls.append(len(calls))
        touch_later(path)  # SQLite's locks make the read consistent: no second read
        return int(conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0])

    assert read_store(path, read) == 5
    assert calls == [0]


@pytest.mark.usefixtures("may_not_write")
def test_a_store_that_is_not_quiescent_is_never_read_without_locks(tmp_path: Path) -> None:
    # immutable=1 would ignore the -wal, where the open sink's entries are.
    path = tmp_path / "audit.db"
    written = entries(6)
    with SqliteSink(path) as sink:
        sink.write(written[:3])
        sink.write(written[3:])
        assert Path(f"{path}-wal").exists()
        assert query_sqlite(path) == written
        assert verify_sink(path) is None


def leave_a_stale_shm(path: Path) -> None:
    """Leave beside the quiescent store at ``path`` a ``-shm`` without its ``-wal``: the
    stale index a removed ``-wal`` leaves (no connection has the store open without one)."""
    with SqliteSink(path) as sink:
        sink.load_tail(1)
        shm = Path(f"{path}-shm").read_bytes()
    Path(f"{path}-shm").write_bytes(shm)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, f"{path.name}-shm"]


def test_a_store_with_a_stale_shm_and_no_wal_is_read_creating_nothing(tmp_path: Path) -> None:
    # Opened mode=ro (as a store a writer has open), it got an empty -wal, left behind.
    path = tmp_path / "audit.db"
    written = quiescent_store(path)
    leave_a_stale_shm(path)
    before = files_in(tmp_path)
    assert query_sqlite(path) == written
    assert verify_sink(path) is None
    assert files_in(tmp_path) == before


# -- as another user: root drops to nobody ----------------------------------------------------


# Prints the file or folder of every top-level module `python -m eventbus audit ...` imports
# from outside the standard library: this checkout's packages and their dependencies.
_LIST_IMPORTS = """
import os, sys, sysconfig
import audit.sinks, eventbus._cli
stdlib = sysconfig.get_path("stdlib") + os.sep  # (a venv's platstdlib holds its packages)
seen = set()
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if not path or path.startswith(stdlib):
        continue
    top = module.__name__.partition(".")[0]
    if top in seen:
        continue
    seen.add(top)
    top_module = sys.modules[top]
    locations = getattr(top_module, "__path__", None)
    print(list(locations)[0] if locations else top_module.__file__)
"""

# Where the commands run as another user find this checkout's code: a copy every user may read
# (the checkout and its venv may sit in a folder private to root, as a fresh clone in a
# mktemp -d folder does). Set by the switch_users fixture.
_runtime: Path | None = None


def _build_runtime(into: Path) -> None:
    listed = subprocess.run(  # (from ROOT, which `-c` puts first on sys.path)
        [sys.executable, "-c", _LIST_IMPORTS], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for source in map(Path, listed):
        if source.name in {"__init__.py", "__main__.py"}:  # (a namespace's first file)
            source = source.parent
        target = into / source.name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    for directory, _, files in os.walk(into):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)


def _python() -> str:
    """The base interpreter (a venv's own may sit in a folder other users cannot enter)."""
    return getattr(sys, "_base_executable", sys.executable)


def _can_switch_users() -> str | None:
    """Why the tests as another user cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root, to run commands as nobody"
    if shutil.which("setpriv") is None:
        return "needs setpriv (util-linux)"
    probe = as_user(NOBODY, [_python(), "-c", "import audit.sinks, eventbus._cli"])
    if probe.returncode != 0:
        return f"nobody cannot run this checkout's code: {probe.stderr.strip()[-200:]}"
    return None


def as_user(uid: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    assert _runtime is not None, "use the switch_users fixture"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(_runtime),
        "PYTHONNOUSERSITE": "1",
    }
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv],
        cwd=_runtime,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def eventbus_as(uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return as_user(uid, [_python(), "-m", "eventbus", *argv])


@pytest.fixture(scope="module")
def switch_users() -> Iterator[None]:
    global _runtime
    if os.geteuid() != 0:
        pytest.skip("needs root, to run commands as nobody")
    runtime = Path(tempfile.mkdtemp(prefix="eventbus-runtime-"))
    try:
        _build_runtime(runtime)
        _runtime = runtime
        reason = _can_switch_users()
        if reason is not None:
            pytest.skip(reason)
        yield
    finally:
        _runtime = None
        shutil.rmtree(runtime)


@pytest.fixture
def folder(switch_users: None) -> Iterator[Path]:
    """A folder of root's that every user may enter and read, and only root may write
    (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="eventbus-access-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def shown(result: subprocess.CompletedProcess[str]) -> list[AuditEntry]:
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return [msgspec.json.decode(line, type=AuditEntry) for line in result.stdout.splitlines()]


def intact(path: Path, n: int) -> str:
    return f"{path}: intact ({n} entries, seq 1..{n})\n"


def test_a_user_who_may_only_read_shows_and_verifies_a_store_nobody_has_open(
    folder: Path,
) -> None:
    path = folder / "audit.db"
    written = quiescent_store(path)
    path.chmod(0o644)
    before = files_in(folder)
    assert shown(eventbus_as(NOBODY, "audit", "show", str(path), "--json")) == written
    verify = eventbus_as(NOBODY, "audit", "verify", str(path))
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, intact(path, 5), "")
    assert files_in(folder) == before  # byte-identical, nothing created


def test_a_user_who_may_write_the_store_but_not_its_folder_reads_it_too(folder: Path) -> None:
    # SQLite opens the store read-write, then cannot create the -wal and -shm.
    path = folder / "audit.db"
    written = quiescent_store(path)
    path.chmod(0o666)
    before = files_in(folder)
    assert shown(eventbus_as(NOBODY, "audit", "show", str(path), "--json")) == written
    verify = eventbus_as(NOBODY, "audit", "verify", str(path))
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, intact(path, 5), "")
    assert files_in(folder) == before


_APPEND = """
import sys
from audit import AuditTrail, Other
from audit.sinks import SqliteSink

with SqliteSink(sys.argv[1]) as sink:
    trail = AuditTrail()
    trail.restore(sink)
    trail.append("writer", Other(detail="after the audit"), "r")
    sink.write(trail.entries()[-1:])
print(trail.entries()[-1].seq)
"""


def test_a_reader_who_may_write_the_folder_leaves_nothing_that_locks_the_writer_out(
    folder: Path,
) -> None:
    # A shared folder: SQLite could create the -wal and -shm there, owned by the reader,
    # and (unable to write the store) never remove them: its writer could no longer write.
    folder.chmod(0o1777)
    path = folder / "audit.db"
    quiescent_store(path)
    os.chown(path, WRITER, WRITER)
    path.chmod(0o644)
    before = files_in(folder)
    assert len(shown(eventbus_as(NOBODY, "audit", "show", str(path), "--json"))) == 5
    verify = eventbus_as(NOBODY, "audit", "verify", str(path))
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, intact(path, 5), "")
    assert files_in(folder) == before
    writer = as_user(WRITER, [_python(), "-c", _APPEND, str(path)])
    assert (writer.returncode, writer.stdout, writer.stderr) == (0, "6\n", "")
    assert verify_sink(path) is None


def test_a_user_who_may_only_read_sees_the_wal_of_a_store_a_writer_has_open(
    folder: Path,
) -> None:
    path = folder / "audit.db"
    written = entries(8)
    path.touch(0o644)  # the operator opens the store to readers (new stores are 0600)
    path.chmod(0o644)
    with SqliteSink(path) as sink:
        sink.write(written[:5])
        sink.write(written[5:])  # in the -wal, not yet in the file
        before = files_in(folder)
        assert sorted(before) == ["audit.db", "audit.db-shm", "audit.db-wal"]
        assert all(p.stat().st_mode & 0o777 == 0o644 for p in folder.iterdir())
        assert shown(eventbus_as(NOBODY, "audit", "show", str(path), "--json")) == written
        verify = eventbus_as(NOBODY, "audit", "verify", str(path))
        assert (verify.returncode, verify.stdout, verify.stderr) == (0, intact(path, 8), "")
        assert files_in(folder)["audit.db"] == before["audit.db"]  # never checkpointed
        assert files_in(folder)["audit.db-wal"] == before["audit.db-wal"]
    assert verify_sink(path) is None


def crashed_copy(folder: Path, keep: Callable[[str], bool]) -> Path:
    """A copy of a store whose writer stopped without closing it (its -wal holds entries),
    with the companion files ``keep`` accepts."""
    source = folder / "live"
    source.mkdir()
    with SqliteSink(source / "audit.db") as sink:
        sink.write(entries(4))
        for name in ("audit.db", "audit.db-wal", "audit.db-shm"):
            if name == "audit.db" or keep(name):
                shutil.copyfile(source / name, folder / name)
    shutil.rmtree(source)
    for name in os.listdir(folder):
        (folder / name).chmod(0o644)
    return folder / "audit.db"


def test_a_user_who_may_only_read_reads_a_store_a_crash_left_with_its_wal(
    folder: Path,
) -> None:
    path = crashed_copy(folder, keep=lambda name: True)
    before = files_in(folder)
    assert len(shown(eventbus_as(NOBODY, "audit", "show", str(path), "--json"))) == 4
    verify = eventbus_as(NOBODY, "audit", "verify", str(path))
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, intact(path, 4), "")
    assert files_in(folder) == before  # the -wal was read, never folded into the store


@pytest.mark.parametrize("command", ["show", "verify"])
def test_a_wal_without_its_shm_in_a_folder_the_user_may_not_write_says_what_is_needed(
    folder: Path, command: str
) -> None:
    path = crashed_copy(folder, keep=lambda name: name.endswith("-wal"))
    before = files_in(folder)
    result = eventbus_as(NOBODY, "audit", command, str(path))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"eventbus: error: cannot read {path} as this user: a writer has it open or "
        f"stopped without closing it ({path}-wal), and SQLite needs its -shm file (the "
        f"index of its -wal), which is missing and cannot be created: this user may not "
        f"write {folder}. Read it as a user with that access, or have one copy it "
        f"(sqlite3 {path} '.backup COPY') and read the copy\n"
    )
    assert files_in(folder) == before


@pytest.mark.parametrize("command", ["show", "verify"])
def test_a_companion_file_the_user_may_not_read_is_named(folder: Path, command: str) -> None:
    path = crashed_copy(folder, keep=lambda name: True)
    Path(f"{path}-shm").chmod(0o600)
    result = eventbus_as(NOBODY, "audit", command, str(path))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"eventbus: error: cannot read {path} as this user: a writer has it open or "
        f"stopped without closing it ({path}-wal, {path}-shm), and SQLite needs read "
        f"access to {path}-shm. Read it as a user with that access, or have one copy it "
        f"(sqlite3 {path} '.backup COPY') and read the copy\n"
    )


def test_a_store_the_user_may_not_read_at_all_is_one_line(folder: Path) -> None:
    path = folder / "audit.db"
    quiescent_store(path)
    path.chmod(0o600)
    for command in ("show", "verify"):
        result = eventbus_as(NOBODY, "audit", command, str(path))
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == f"eventbus: error: cannot read {path}: Permission denied\n"


def test_a_reader_of_a_store_with_a_stale_shm_leaves_nothing_that_locks_the_writer_out(
    folder: Path,
) -> None:
    folder.chmod(0o1777)
    path = folder / "audit.db"
    quiescent_store(path)
    leave_a_stale_shm(path)
    for name in (path, Path(f"{path}-shm")):
        os.chown(name, WRITER, WRITER)
        name.chmod(0o644)
    before = files_in(folder)
    assert len(shown(eventbus_as(NOBODY, "audit", "show", str(path), "--json"))) == 5
    verify = eventbus_as(NOBODY, "audit", "verify", str(path))
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, intact(path, 5), "")
    assert files_in(folder) == before  # no -wal of nobody's, which the writer cannot write
    writer = as_user(WRITER, [_python(), "-c", _APPEND, str(path)])
    assert (writer.returncode, writer.stdout, writer.stderr) == (0, "6\n", "")
    assert verify_sink(path) is None


def test_a_jsonl_anchor_the_user_may_not_read_is_named_not_the_store(folder: Path) -> None:
    path = folder / "audit.jsonl"
    with JsonlSink(path) as sink:
        sink.write(entries(3))
    path.chmod(0o644)
    Path(f"{path}.anchor").chmod(0o600)
    result = eventbus_as(NOBODY, "audit", "verify", str(path))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"eventbus: error: cannot read {path}.anchor: Permission denied\n"


def test_the_runtime_copy_is_this_checkouts_code_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `python -c` puts the working directory first on sys.path: run from a folder that holds
    # an `audit` (another checkout, a decoy), the copy must still be this checkout's.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "audit").mkdir(parents=True)
    (elsewhere / "audit" / "__init__.py").write_text("raise SystemExit('the wrong audit')\n")
    monkeypatch.chdir(elsewhere)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    _build_runtime(runtime)
    for package in ("audit", "eventbus"):
        sources = {
            str(path.relative_to(ROOT)): path.read_bytes()
            for path in (ROOT / package).rglob("*.py")
        }
        copies = {
            str(path.relative_to(runtime)): path.read_bytes()
            for path in (runtime / package).rglob("*.py")
        }
        assert sources and copies == sources, package


# -- permissions of new stores -----------------------------------------------------------------


def mode_of(path: Path | str) -> int:
    return os.stat(path).st_mode & 0o777


def test_new_stores_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    # What agents did, redacted or not, is nobody else's to read until the operator says so;
    # both sinks follow one rule (the SQLite file used to follow the umask, JSONL not).
    with SqliteSink(tmp_path / "a.db") as sink:
        sink.write(entries(2))
        assert {name: mode_of(tmp_path / name) for name in ("a.db", "a.db-wal", "a.db-shm")} == {
            "a.db": 0o600,
            "a.db-wal": 0o600,
            "a.db-shm": 0o600,
        }
    with JsonlSink(tmp_path / "a.jsonl") as sink:
        sink.write(entries(2))
    assert (mode_of(tmp_path / "a.jsonl"), mode_of(tmp_path / "a.jsonl.anchor")) == (0o600, 0o600)


def test_an_existing_store_keeps_its_permissions_and_a_jsonl_anchor_follows_them(
    tmp_path: Path,
) -> None:
    # An operator who opened a store to an auditor's group keeps it open across restarts.
    db, jsonl = tmp_path / "a.db", tmp_path / "a.jsonl"
    first, second = entries(2)
    with SqliteSink(db) as sink:
        sink.write([first])
    with JsonlSink(jsonl) as sink:
        sink.write([first])
    db.chmod(0o640)
    jsonl.chmod(0o640)
    with SqliteSink(db) as sink:
        sink.write([second])
    with JsonlSink(jsonl) as sink:
        sink.write([second])
    assert (mode_of(db), mode_of(jsonl), mode_of(f"{jsonl}.anchor")) == (0o640, 0o640, 0o640)
    assert verify_sink(db) is None
    assert verify_sink(jsonl) is None
