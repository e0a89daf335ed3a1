"""The export sink: one JSON entry per line, with an anchor file beside it."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, NoReturn

import msgspec
import structlog

from eventbus._files import CHUNK, end_of_last_line

from .._entry import AuditEntry
from ._base import (
    FileSink,
    StoreAnchor,
    StoreCheck,
    check_store,
    decode_entry,
    encode_json,
    refuse_a_damaged_end,
)

__all__ = ["JsonlContents", "JsonlSink", "read_jsonl", "verify_jsonl"]

_log = structlog.get_logger("audit.sinks")


_decode_anchor = msgspec.json.Decoder(StoreAnchor).decode


def anchor_path(path: str) -> str:
    """The anchor file kept beside a JSONL store."""
    return path + ".anchor"


#: The most an anchor file may hold: one is a few hundred bytes (two seqs, two hashes), so
#: anything larger was not written by a sink, and is never read whole.
ANCHOR_MAX_BYTES: Final = 4096


def _read_anchor(path: str) -> StoreAnchor | None:
    """The anchor beside the store at ``path``, or ``None`` if it has no anchor file.

    Reads at most :data:`ANCHOR_MAX_BYTES` + 1 bytes, whatever the file's size.

    :raises msgspec.DecodeError: if the file holds more than :data:`ANCHOR_MAX_BYTES`
        (the message names the file and the bound) or is not JSON.
    :raises msgspec.ValidationError: for JSON that is not an anchor.
    """
    name = anchor_path(path)
    try:
        with open(name, "rb") as f:
            data = f.read(ANCHOR_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) > ANCHOR_MAX_BYTES:
        raise msgspec.DecodeError(
            f"{name} holds more than {ANCHOR_MAX_BYTES} bytes, the most an anchor file may hold"
        )
    return _decode_anchor(data)


#: How every line a sink writes starts: an entry's first field is its ``seq``. A write cut
#: short keeps a prefix of its batch, so a torn tail that does not start so is no such write.
ENTRY_START: Final = b'{"seq":'

#: The longest line the readers take, newline included: far beyond any entry (a mapper
#: bounds its resource and arguments by ``max_resource_bytes``), so only a file that is no
#: store gets there, and it is refused before it is held whole.
LINE_MAX_BYTES: Final = 64 << 20


def starts_like_an_entry(head: bytes) -> bool:
    """Whether bytes that begin with ``head`` could be (the start of) a line a sink wrote:
    ``head`` starts with :data:`ENTRY_START`, or is a prefix of it."""
    return head[: len(ENTRY_START)] == ENTRY_START[: len(head)]


def _tail_lines(fd: int, end: int, n: int) -> list[bytes]:
    """The last ``n`` lines of the file's first ``end`` bytes (which end with a ``\\n``, or
    are none), oldest first, without their ``\\n``: read backwards, never the whole file."""
    if n == 0 or end == 0:
        return []
    chunks: list[bytes] = []
    newlines = 0
    start = end
    while start > 0 and newlines <= n:  # n + 1 newlines bound n complete lines
        read_from = max(0, start - CHUNK)
        chunk = os.pread(fd, start - read_from, read_from)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
        start = read_from
    lines = b"".join(reversed(chunks))[:-1].split(b"\n")
    return lines[-n:]


@dataclass(frozen=True, slots=True)
class JsonlContents:
    """What :func:`read_jsonl` found in a JSONL store.

    Attributes:
        entries: The complete entries, oldest first.
        torn_tail: The number of bytes after the last newline: a line whose write was cut
            short (0 when the file ends cleanly). Those bytes are never decoded or merged.
    """

    entries: list[AuditEntry]
    torn_tail: int


def _complete_lines(path: str) -> tuple[Iterator[bytes], list[int]]:
    """Iterate over the complete lines; the list gets the torn tail's length at the end, and
    then 1 if that tail does not start like an entry (no write of a sink left it).

    :raises msgspec.DecodeError: (while iterating) for a line longer than
        :data:`LINE_MAX_BYTES`, naming its number; it is never read whole.
    """
    torn = [0, 0]

    def lines() -> Iterator[bytes]:
        with open(path, "rb") as f:
            number = 0
            while line := f.readline(LINE_MAX_BYTES + 1):
                number += 1
                if len(line) > LINE_MAX_BYTES:
                    raise msgspec.DecodeError(
                        f"line {number} is longer than {LINE_MAX_BYTES} bytes, which no "
                        "audit entry is"
                    )
                if not line.endswith(b"\n"):
                    torn[0] = len(line)
                    torn[1] = not starts_like_an_entry(line)
                    _log.warning("audit_jsonl_torn_tail", path=path, torn_bytes=len(line))
                    return
                yield line

    return lines(), torn


def read_jsonl(path: str | os.PathLike[str]) -> JsonlContents:
    """Read every entry of a JSONL store.

    :returns: the complete entries and the size of a torn final line, if any (which is
        reported, also as a structlog warning ``audit_jsonl_torn_tail``, never decoded).
        It does not read the anchor, so it cannot say whether that line was acknowledged
        (a cut) or not (a write cut short or in progress): :func:`verify_sink` does.
    :raises msgspec.DecodeError, msgspec.ValidationError: for a complete line that is not an
        entry; the message names the line number.
    :raises FileNotFoundError: if there is no such file.
    """
    lines, torn = _complete_lines(os.fspath(path))
    entries = []
    for number, line in enumerate(lines, 1):  # (an over-long line raises from the loop)
        try:
            entries.append(decode_entry(line))
        except msgspec.ValidationError as exc:
            raise msgspec.ValidationError(f"line {number}: {exc}") from None
        except msgspec.DecodeError as exc:
            raise msgspec.DecodeError(f"line {number}: {exc}") from None
    return JsonlContents(entries, torn[0])


class JsonlSink(FileSink):
    """Audit entries as JSON Lines, for export: one compact entry per line, ``\\n`` only.

    :param path: the file, created if missing, appended to otherwise.
    :raises OSError: if the file or its anchor file cannot be opened.
    :raises msgspec.DecodeError: if the anchor file ``<path>.anchor`` exists but is not an
        anchor: larger than 4096 bytes (an anchor is a few hundred; only the first 4097 are
        ever read), or not JSON (:exc:`msgspec.ValidationError` for JSON of another shape);
        the message names the file. The sink refuses to open, creating and changing nothing: a sink
        only ever replaces its anchor atomically, so a damaged one was altered or
        corrupted, and it is evidence of what the store held, not to be overwritten.
        Keep it (:func:`verify_sink` reports such a store as bad from its first entry)
        and write to a new store.
    :raises msgspec.ValidationError: (or :exc:`msgspec.DecodeError`) if the file has no
        anchor and its last complete line is not an audit entry, or it has no complete line
        and its bytes do not start like one (``{"seq":``): it is not an audit store (a
        session log, notes), and the sink refuses to write into it, changing nothing.
    :raises ValueError: if the store does not end where its anchor says: the file is gone
        or ends before the last entry the anchor acknowledged (its end was cut; a final
        line that lost its newline counts as cut, not torn), or its newest entry is not
        the acknowledged one. It refuses likewise, changing nothing: writing would advance
        the anchor past the damage, the only evidence of it. The message names the seq
        :func:`verify_sink` reports. (Complete entries past the anchor, a batch synced
        but not yet acknowledged when a crash came, are kept and continued.) Also if the
        store ends with bytes without a newline that do not start like an entry: no write
        of a sink left them, so the sink does not cut them; it refuses, changing nothing.

    Each :meth:`write` appends its batch with one ``write`` and an ``fsync``, then replaces
    the anchor file ``<path>.anchor`` (first and last seq and hash) atomically. The anchor is
    what lets :func:`verify_sink` tell a cut file from a short one: copy or move the two
    files together, since without the anchor only the hash chain can be checked and entries
    cut from either end go undetected.

    A final line without its newline after the last acknowledged entry is a write that was
    cut short (a crash, a full disk), or one in progress: it was never acknowledged, and
    :func:`verify_sink` finds the store intact. Opening the sink cuts such a torn tail off,
    so that new lines can never merge with it, logs ``audit_jsonl_torn_tail`` and reports
    its size in :attr:`torn_tail`; :func:`read_jsonl` reports it without touching the file.
    (A torn line where the anchor acknowledged a whole entry is that entry cut short: the
    sink refuses the store, as above, and :func:`verify_sink` reports it.)

    Lifecycle (the :class:`~audit.sinks.AuditSink` contract): a failed write breaks the
    sink, so further writes raise :exc:`anyio.BrokenResourceError` while :meth:`load_tail`
    still reads the file. :meth:`close` closes the file and is idempotent; after it,
    :meth:`write` and :meth:`load_tail` raise :exc:`anyio.ClosedResourceError` and touch
    neither the file nor its anchor. :attr:`path` and :attr:`torn_tail` stay readable.
    Use it as a context manager or call :meth:`close`; the audit consumer never closes a
    sink it was given.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        try:  # before the file is created or its torn tail cut: refuse without a change
            anchor = _read_anchor(self._path)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise type(exc)(
                f"the anchor file {anchor_path(self._path)} is damaged ({exc}); the sink "
                "will not write over it, since it is evidence of what the store held: keep "
                "it, and write to a new store"
            ) from None
        # With an anchor the store exists: a file gone is a store cut, not one to create.
        if anchor is not None and not os.path.exists(self._path):
            refuse_a_damaged_end(self._path, None, anchor)
        create = os.O_CREAT if anchor is None else 0
        fd = os.open(self._path, os.O_RDWR | os.O_APPEND | create, 0o600)
        try:
            size = os.fstat(fd).st_size
            keep = end_of_last_line(fd, size)
            if anchor is None and keep:  # a file with lines but no anchor: is it a store?
                try:
                    decode_entry(_tail_lines(fd, keep, 1)[0])
                except msgspec.DecodeError as exc:  # ValidationError included
                    raise type(exc)(
                        f"{self._path} is not a JSONL audit store: its last line is no audit "
                        f"entry ({exc}); the sink will not write into it"
                    ) from None
            if anchor is not None:  # before the torn tail is cut: it may be what was cut
                newest = _tail_lines(fd, keep, 1)
                try:
                    entry = decode_entry(newest[0]) if newest else None
                except msgspec.DecodeError:  # corrupt, not cut: it stays, verify reports it
                    pass
                else:
                    end = None if entry is None else (entry.seq, entry.hash)
                    refuse_a_damaged_end(self._path, end, anchor)
            if size > keep and not starts_like_an_entry(os.pread(fd, len(ENTRY_START), keep)):
                self._refuse_foreign_tail(size - keep, keep, anchor)
            self.torn_tail = size - keep
            if self.torn_tail:
                _log.warning(
                    "audit_jsonl_torn_tail", path=self._path, torn_bytes=self.torn_tail, cut=True
                )
                os.ftruncate(fd, keep)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._anchor = anchor

    def _refuse_foreign_tail(self, size: int, keep: int, anchor: StoreAnchor | None) -> NoReturn:
        """Refuse a file whose unterminated last ``size`` bytes no write of a sink left (they
        do not start like an entry): cutting them would destroy what is not a torn write."""
        if anchor is None and not keep:
            raise msgspec.DecodeError(
                f"{self._path} is not a JSONL audit store: it holds no complete line, and its "
                f"{size} bytes do not start like an audit entry; the sink will not write into it"
            )
        raise ValueError(
            f"the store at {self._path} ends with {size} bytes without a newline that do not "
            "start like an audit entry, so no write of a sink left them: the sink will not "
            f"cut them (verify_sink reports the store damaged): keep the store at "
            f"{self._path}, and write to a new one"
        )

    @property
    def path(self) -> str:
        """The JSONL file."""
        return self._path

    def write(self, entries: Sequence[AuditEntry]) -> None:
        """Append ``entries``, fsync, then advance the anchor file.

        An empty batch writes nothing, but is refused like any other when the sink is
        closed or broken.

        :raises anyio.ClosedResourceError: if the sink is closed (checked first).
        :raises anyio.BrokenResourceError: if an earlier write failed.
        :raises OSError: if this write or its fsync fails (the file may then end with a torn
            line, which readers detect); the sink is broken from then on.
        """
        if not entries:
            self._refuse_empty_write()
            return
        data = b"".join([encode_json(e) + b"\n" for e in entries])
        with self._lock:
            self._check_usable()
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
                first = entries[0]
                old = self._anchor
                anchor = StoreAnchor(
                    old.first_seq if old else first.seq,
                    old.first_prev_hash if old else first.prev_hash,
                    entries[-1].seq,
                    entries[-1].hash,
                )
                tmp = anchor_path(self._path) + ".tmp"
                # The anchor gets the store's permissions: whoever may read one may read both.
                mode = os.fstat(self._fd).st_mode & 0o777
                tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
                with open(tmp_fd, "wb") as f:
                    os.fchmod(tmp_fd, mode)  # (os.open's mode is masked by the umask)
                    f.write(encode_json(anchor))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, anchor_path(self._path))
                self._anchor = anchor
            except BaseException as exc:
                self._failed = exc
                _log.error("audit_sink_write_failed", path=self._path, error=repr(exc))
                raise

    def load_tail(self, n: int) -> list[AuditEntry]:
        """The newest ``n`` complete entries, oldest first, read from the end of the file
        (what it reads grows with ``n``, not with the file).

        A broken sink can still be read: the entries its failed write left unsynced are
        read too if their lines are complete.

        :raises ValueError: if ``n`` is negative (whatever the sink's state).
        :raises anyio.ClosedResourceError: if the sink is closed.
        :raises msgspec.DecodeError, msgspec.ValidationError: if one of them is not an entry.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        with self._lock:
            self._check_open()
            fd = self._fd
            tail = _tail_lines(fd, end_of_last_line(fd, os.fstat(fd).st_size), n)
        return [decode_entry(line) for line in tail]

    def close(self) -> None:
        """Close the file; idempotent.

        It waits for a :meth:`write` or :meth:`load_tail` in progress in another thread.
        The sink is closed when it returns or raises; later calls do nothing.

        :raises OSError: if the operating system reports an error closing the file (the
            first call only; every batch :meth:`write` returned from was already synced).
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()


def verify_jsonl(path: str) -> StoreCheck:
    """Verify a JSONL audit store end to end (see :func:`~audit.sinks.verify_sink`),
    and say what it holds if intact, from the same read."""
    # The anchor first, then the entries: a writer replaces the anchor only once its batch is
    # synced, so one committing meanwhile can make the file longer than the anchor read
    # says, never shorter (read the other way round, its batch would read as cut).
    try:
        anchor = _read_anchor(path)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # A damaged anchor file: nothing can be vouched for.
        oldest = next(_decoded(_complete_lines(path)[0], [False]), None)
        return StoreCheck.bad_at(1 if oldest is None else oldest.seq)
    lines, torn = _complete_lines(path)
    broken = [False]
    entries = _decoded(lines, broken)
    first = next(entries, None)  # (kept, to count an intact store's entries)
    bad, newest = check_store(() if first is None else itertools.chain((first,), entries), anchor)
    if bad is not None:
        return StoreCheck.bad_at(bad)
    if broken[0] or torn[1]:  # a line that is no entry, or a tail no write of a sink left
        if newest is not None:
            return StoreCheck.bad_at(newest.seq + 1)
        return StoreCheck.bad_at(1 if anchor is None else anchor.first_seq)
    # Intact: a run of consecutive seqs up to the last one acknowledged or past it (with no
    # anchor, none was). A torn line after them was never acknowledged: a write cut short, or
    # one a writer is making now. It is no damage, and a sink reopening the store cuts it.
    if first is None or newest is None:
        return StoreCheck(None, 0, None, None, torn[0])
    return StoreCheck(None, newest.seq - first.seq + 1, first.seq, newest.seq, torn[0])


def _decoded(lines: Iterator[bytes], broken: list[bool]) -> Iterator[AuditEntry]:
    """The entries of complete ``lines``, up to the first that is not one (``broken[0]`` is
    then set)."""
    while True:
        try:
            line = next(lines)
            entry = decode_entry(line)
        except StopIteration:
            return
        except (msgspec.DecodeError, msgspec.ValidationError):  # (also a line too long)
            broken[0] = True
            return
        yield entry
