"""The session log recorder: a bus consumer that appends every envelope to a JSONL file."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, Final, Literal

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec
import msgspec.inspect as mi
import structlog
from anyio import EndOfStream, WouldBlock

from .._bus import EventBus, OverflowPolicy, Subscription, _check_positive_int
from .._envelope import Envelope
from .._files import end_of_last_line
from ..codec import DEFAULT_MAX_DEPTH, encode_json
from ._log import DEFAULT_MAX_LINE_BYTES, LogGap, _GapLine

__all__ = ["FsyncPolicy", "RecorderStatistics", "SessionLogRecorder"]

FsyncPolicy = Literal["always", "batch", "never"]
"""When the recorder asks the OS to put written lines on disk; see :class:`SessionLogRecorder`."""

_log = structlog.get_logger("eventbus.replay")


def _open_to_append(path: str) -> IO[bytes]:
    """Open ``path`` to append (creating it) so that the first new line starts a line.

    A final line without its newline is either a whole record (a Rust kernel's log may omit
    the last newline; ``read_log`` keeps it), which gets its newline, or the start of a line
    whose write a crash cut short, which is cut off: appended after, the next line would be
    glued to it and the log could no longer be read from there on (``read_log`` skips a
    torn *final* line, never one in the middle).
    """
    file = open(path, "a+b")  # noqa: SIM115 (returned open, closed by the recorder)
    try:
        fd = file.fileno()
        size = os.fstat(fd).st_size
        end = end_of_last_line(fd, size)
        if end < size:
            try:
                msgspec.json.decode(os.pread(fd, size - end, end))
            except (msgspec.DecodeError, UnicodeError):  # torn (read_log skips it): cut it
                os.ftruncate(fd, end)
                _log.warning("session_log_torn_tail_cut", path=path, torn_bytes=size - end)
            else:  # whole: end it
                file.write(b"\n")
                file.flush()
            os.fsync(fd)
    except BaseException:
        file.close()
        raise
    return file


_POLICIES: Final = ("drop_oldest", "drop_newest", "block")
_FSYNC: Final = ("always", "batch", "never")

#: Under sustained load, the ``"batch"`` policy fsyncs at least once every this many batches.
FSYNC_EVERY_BATCHES: Final = 64

#: The smallest ``max_line_bytes``: room for a gap marker line whatever its seqs (< 10**20).
MIN_LINE_BYTES: Final = 256

# What msgspec raises for a value it cannot encode as JSON: an unsupported type (a msgpack
# ``Ext``), a dict with non-str keys, an integer out of range, a self-referencing container.
_UNENCODABLE: Final = (TypeError, ValueError, OverflowError, RecursionError)


# Event class -> how deep its JSON can nest (a struct is 1 level), or None: without bound.
_depth_bounds: dict[type, int | None] = {}

_OBJECT_TYPES: Final = (mi.StructType, mi.TypedDictType, mi.DataclassType, mi.NamedTupleType)


def _depth_bound(event_type: type) -> int | None:
    """How many levels of containers an instance of ``event_type`` encodes to at most, from
    its annotations (msgspec does not check them on construction, but a value of another
    type is refused by the reader anyway); ``None`` if unbounded (``Any``, recursion)."""
    try:
        info = mi.type_info(event_type)
    except Exception:  # a type msgspec cannot describe: check every line of it
        return None
    return _type_depth(info, set())


def _type_depth(info: mi.Type, path: set[int]) -> int | None:
    children: list[mi.Type]
    if isinstance(info, mi.AnyType | mi.RawType | mi.CustomType):
        return None
    if isinstance(info, mi.UnionType):
        depths = [_type_depth(t, path) for t in info.types]
        return None if None in depths else max(d for d in depths if d is not None)
    if isinstance(info, mi.CollectionType):
        children = [info.item_type]
    elif isinstance(info, mi.TupleType):
        children = list(info.item_types)
    elif isinstance(info, mi.DictType | mi.FrozenDictType):
        children = [info.value_type]  # keys are strings in JSON
    elif isinstance(info, _OBJECT_TYPES):
        if id(info) in path:  # a recursive type
            return None
        children = [field.type for field in info.fields]
    else:  # a scalar: no container
        return 0
    path.add(id(info))
    try:
        deepest = 0
        for child in children:
            depth = _type_depth(child, path)
            if depth is None:
                return None
            deepest = max(deepest, depth)
    finally:
        path.discard(id(info))
    return deepest + 1


# Below this size a line's brackets are counted in one pass (translate); above it, found one
# by one with memchr, stopping past the limit: a long string is skipped at memory speed.
_FIND_BRACKETS_FROM: Final = 8192


def _has_more_brackets(line: bytes, limit: int) -> bool:
    """Whether ``line`` holds more than ``limit`` opening brackets (``{`` and ``[``, also
    inside strings): if not, it cannot nest deeper than ``limit``."""
    if len(line) < _FIND_BRACKETS_FROM:
        return len(line) - len(line.translate(None, b"{[")) > limit
    found = 0
    for bracket in (b"{", b"["):
        at = line.find(bracket)
        while at != -1:
            found += 1
            if found > limit:
                return True
            at = line.find(bracket, at + 1)
    return False


_NOT_STRUCTURE: Final = bytes(b for b in range(256) if b not in b'"{[]}')


def _nests_deeper(line: bytes, max_depth: int) -> bool:
    """Whether JSON ``line`` (as msgspec encodes it) nests containers deeper than
    ``max_depth``, as the codec counts it (the top level is 1), without parsing it in Python.

    Escapes go first (``\\\\`` then ``\\"``, so the quotes left delimit strings); then
    everything but quotes and brackets; then strings: an empty ``""`` (no bracket inside,
    or two strings with nothing between) goes in one pass, any other by a split. What is
    left is the bare tree of brackets: each pass strips its innermost level.
    """
    if b"\\" in line:
        line = line.replace(b"\\\\", b"").replace(b'\\"', b"")
    tree = line.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in tree:
        tree = b"".join(tree.split(b'"')[::2])
    depth = 0
    while tree:
        depth += 1
        if depth > max_depth:
            return True
        tree = tree.replace(b"{}", b".").replace(b"[]", b".").translate(None, b".")
    return False


@dataclass(frozen=True, slots=True)
class RecorderStatistics:
    """A point-in-time view of a :class:`SessionLogRecorder`.

    Attributes:
        written: Envelopes written to the file (handed to the OS; see ``fsyncs``).
        batches: Batches written, one ``write`` call each.
        fsyncs: ``os.fsync`` calls made.
        gaps: Gap marker lines written.
        lost: Envelopes the gap markers account for (what :attr:`SessionLog.lost` reads back
            from a log this recorder wrote alone): lost to a lossy queue's overflow, not
            written because the reader would refuse their line (``skipped``), or left
            unwritten by a cancelled exit.
        skipped: Envelopes received but not written because their line would be longer than
            ``max_line_bytes``, nested deeper than ``max_depth``, or could not be encoded as
            JSON at all. Each is inside a gap marker, so ``skipped <= lost``.
        buffered: Envelopes waiting in the recorder's subscription now.
    """

    written: int
    batches: int
    fsyncs: int
    gaps: int
    lost: int
    skipped: int
    buffered: int


class SessionLogRecorder:
    """Record every envelope published on a bus into a session log file, one JSON line each.

    .. code-block:: python

        async with EventBus() as bus, SessionLogRecorder(bus, "session.jsonl") as recorder:
            await bus.apublish(AgentStarted(id=agent_id))
            await recorder.flush()        # written to the file
        # leaving the block drained the recorder: everything published is in the file

    Each line is one :class:`~eventbus.Envelope` as canonical JSON
    (:func:`eventbus.codec.encode_json`) followed by ``\\n`` (never ``\\r\\n``), in ``seq``
    order; :func:`read_log` reads it back. The recorder subscribes to every event when it is
    entered and sees what is published from then on.

    Lossless by default
    -------------------
    The default ``overflow="block"`` subscription makes the log complete: when the recorder's
    queue (``max_buffer_size``) is full, :meth:`EventBus.apublish` waits for it, and plain
    :meth:`EventBus.publish` raises :exc:`anyio.WouldBlock` (see the bus's *Backpressure*).
    With ``"drop_oldest"`` or ``"drop_newest"`` publishers never wait, and envelopes are lost
    when the queue overflows.

    Gap markers
    -----------
    Every envelope published while the recorder runs that the log does not hold is
    accounted for by a gap marker line, ``{"gap":{"first_seq":a,"last_seq":b,"lost":n}}``
    (a :class:`LogGap`), at the place it would have been, so a log never has a *silent*
    hole:

    * a jump in ``seq`` between two envelopes the recorder received (losses, or a bus whose
      ``seq`` jumped: :meth:`EventBus.publish_envelope` with ``keep_seq`` replaying a lossy
      log) is marked before the later one;
    * losses after the last envelope received are marked as soon as the recorder finds its
      queue empty (it compares with the bus's last ``seq``), by :meth:`flush`, and on exit;
    * an envelope the recorder does not write (below) is marked where it would have been.

    What it never writes
    --------------------
    A line :func:`read_log` would refuse for its limits: longer than ``max_line_bytes`` or
    nested deeper than ``max_depth`` (as the codec counts: the envelope is level 1). The
    defaults are the reader's, so ``read_log(path)`` reads a recorded log; a recorder given
    other limits needs a reader given at least those. Such an envelope, or one that cannot
    be encoded as JSON at all (a value decoded from MessagePack with no JSON form, such as an
    ``Ext`` in ``tool_args``), is not written: a gap marker takes its place, it is counted in
    :attr:`RecorderStatistics.skipped`, the first one for each reason (``line_too_long``,
    ``too_deep``, ``unencodable``) is logged as ``session_log_envelope_skipped`` (later ones
    are only counted), and the recording goes on.

    The depth check costs nothing for event classes whose annotations bound their depth
    within ``max_depth`` (every built-in event but those with an ``Any`` payload, such as
    ``tool_args``); for the others, one C-level count of ``{`` and ``[`` per line, and only a
    line holding more of them than ``max_depth`` is scanned (in C-level passes, never parsed
    into objects). Not checked: that the event is valid for the reader's ``type`` (a value of
    the wrong type in a field, a custom event class the reader is not given).

    Writing and durability
    ----------------------
    A consumer task takes whatever is buffered (up to ``batch_size`` envelopes), then encodes
    and writes it in a worker thread (:func:`anyio.to_thread.run_sync`), so file I/O never
    blocks the event loop. A batch is written whole even if the recorder is cancelled during
    the write. ``fsync``:

    * ``"always"``: every batch is fsynced before the recorder takes another envelope;
    * ``"batch"`` (default): fsync when the recorder has caught up (its queue is empty after
      a write), at least every ``FSYNC_EVERY_BATCHES`` (64) batches, and on exit;
    * ``"never"``: lines are handed to the OS after each batch, never fsynced.

    A crash can still leave the last line torn; :func:`read_log` reports and skips it.

    Closing
    -------
    Leaving ``async with`` drains: the envelopes published before the exit began (``seq`` up
    to the bus's last ``seq`` at that moment) that the subscription holds are written (and
    fsynced unless ``"never"``), losses at the end are marked, then the file and the
    subscription are closed. Events published afterwards are not recorded, so the exit ends
    even while other tasks keep publishing. It drains also when the body raised; an
    exception raised by the body leaves ``async with`` unwrapped.

    The exit can be cancelled by an outer cancel scope or deadline, also one already
    cancelled when the exit begins (a task group shutting down cancelled the body): the drain
    then writes at most one more batch (batches are written whole), marks what it did not
    write with one final gap marker (up to the exit's ``seq``), closes the file and lets the
    cancellation through. The log is then valid: whole lines, nothing missing silently, even
    for a lossless recorder (whose log then holds gap markers too).

    If the bus closes first, the recorder writes what it holds and then idles until exit. A
    write error (disk full...) ends the consumer task and leaves ``async with`` in an
    :exc:`ExceptionGroup` (the consumer is a task); the file is then in an unknown state and
    the exit writes nothing more.

    :param bus: the bus to record.
    :param path: the log file. Created; it must not exist unless ``append`` is true. A failed
        enter (a closed bus, an existing file) leaves no file and no subscription behind.
    :param append: append to an existing file instead of refusing it. A torn final line (a
        write a crash cut short: not JSON) is cut off first, and ``session_log_torn_tail_cut``
        is logged; a whole final record without its newline gets one. Either way the new
        lines start on a line of their own and the log stays readable.
    :param overflow: the recorder subscription's policy (``"block"``: lossless).
    :param max_buffer_size: the recorder subscription's queue capacity.
    :param batch_size: the most envelopes written per batch.
    :param fsync: ``"always"``, ``"batch"`` or ``"never"``.
    :param name: the subscription's name, in logs and statistics.
    :param max_line_bytes: the longest line written, newline excluded (default
        :data:`DEFAULT_MAX_LINE_BYTES`, the reader's default, 1 MiB); at least 256, room for
        any gap marker. Read the log with at least this ``max_line_bytes``.
    :param max_depth: the deepest nesting written (default
        :data:`~eventbus.codec.DEFAULT_MAX_DEPTH`, the reader's default, 64); at least 2, the
        depth of a gap marker. Read the log with at least this ``max_depth``.
    :raises ValueError: for a bad ``overflow`` or ``fsync``, a ``batch_size`` or
        ``max_buffer_size`` below 1, a ``max_line_bytes`` below 256 or a ``max_depth`` below 2.
    :raises TypeError: if ``batch_size``, ``max_buffer_size``, ``max_line_bytes`` or
        ``max_depth`` is not an int.
    :raises anyio.ClosedResourceError: on entering, if the bus is closed.
    :raises FileExistsError: on entering, if the file exists and ``append`` is false.
    """

    def __init__(
        self,
        bus: EventBus[Any],
        path: str | os.PathLike[str],
        *,
        append: bool = False,
        overflow: OverflowPolicy = "block",
        max_buffer_size: int = 1024,
        batch_size: int = 256,
        fsync: FsyncPolicy = "batch",
        name: str = "session_log",
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        if overflow not in _POLICIES:
            raise ValueError(
                f"overflow must be one of 'drop_oldest', 'drop_newest', 'block', got {overflow!r}"
            )
        if fsync not in _FSYNC:
            raise ValueError(f"fsync must be one of 'always', 'batch', 'never', got {fsync!r}")
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("max_buffer_size", max_buffer_size)
        _check_positive_int("max_line_bytes", max_line_bytes, MIN_LINE_BYTES)
        _check_positive_int("max_depth", max_depth, 2)
        self._bus = bus
        self._path = os.fspath(path)
        self._append = append
        self._overflow: OverflowPolicy = overflow
        self._max_buffer_size = max_buffer_size
        self._batch_size = batch_size
        self._fsync: FsyncPolicy = fsync
        self._name = name
        self._max_line_bytes = max_line_bytes
        self._max_depth = max_depth
        self._file: IO[bytes] | None = None
        self._sub: Subscription[Any] | None = None
        self._stack: AsyncExitStack | None = None
        # Every seq below _next_seq is in the file, as an envelope or inside a gap marker.
        self._next_seq = 0  # 0 until subscribed
        self._exit_seq = 0  # the bus's last seq when the exit began: the drain stops there
        self._failed = False  # a write raised: the file is in an unknown state
        self._running = False
        self._exiting = False  # __aexit__ began: the consumer stops, the drain takes over
        self._progress: anyio.Event | None = None
        self._since_fsync = 0  # batches written since the last fsync
        self._written = 0
        self._batches = 0
        self._fsyncs = 0
        self._gaps = 0
        self._lost = 0
        self._skipped = 0
        self._skip_logged: set[str] = set()  # the reasons already logged
        self._shallow: set[type] = set()  # event classes that cannot nest past max_depth

    def __repr__(self) -> str:
        return f"<SessionLogRecorder path={self._path!r} written={self._written}>"

    @property
    def path(self) -> str:
        """The log file's path."""
        return self._path

    def statistics(self) -> RecorderStatistics:
        """Return a frozen snapshot of the counters (see :class:`RecorderStatistics`)."""
        sub = self._sub
        return RecorderStatistics(
            written=self._written,
            batches=self._batches,
            fsyncs=self._fsyncs,
            gaps=self._gaps,
            lost=self._lost,
            skipped=self._skipped,
            buffered=0 if sub is None or sub.closed else sub.statistics().buffered,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> SessionLogRecorder:
        if self._stack is not None:
            raise RuntimeError("a SessionLogRecorder can be entered only once")
        async with AsyncExitStack() as stack:
            # Subscribe first: on a closed bus this raises before any file exists. Nothing
            # after the file is opened can fail, so a failed enter leaves no file behind.
            sub = self._bus.subscribe(
                max_buffer_size=self._max_buffer_size, overflow=self._overflow, name=self._name
            )
            stack.callback(sub.close)
            self._sub = sub
            self._next_seq = self._bus.statistics().published + 1
            if self._append:
                self._file = await anyio.to_thread.run_sync(_open_to_append, self._path)
            else:
                self._file = await anyio.to_thread.run_sync(open, self._path, "xb")
            stack.push_async_callback(self._close_file)
            stack.push_async_exit(self._drain_on_exit)
            tg = await stack.enter_async_context(anyio.create_task_group())
            # On exit, in this order: stop the consumer, wait for it, drain, close the file,
            # unsubscribe.
            stack.callback(tg.cancel_scope.cancel)
            tg.start_soon(self._consume)
            self._stack = stack.pop_all()
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        stack = self._stack
        assert stack is not None
        self._running = False
        self._exiting = True
        self._exit_seq = self._bus.statistics().published
        try:
            return await stack.__aexit__(exc_type, exc_val, exc_tb)
        except BaseExceptionGroup as group:
            # The task group wraps the body's own exception: let it propagate unwrapped.
            if exc_val is not None and all(e is exc_val for e in group.exceptions):
                return False
            raise
        finally:
            self._notify_progress()  # a flush waiting in another task: the recorder is done

    async def _close_file(self) -> None:
        file = self._file
        if file is None:
            return
        self._file = None
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._finish, file)

    def _finish(self, file: IO[bytes]) -> None:
        """Worker thread: final fsync (unless ``"never"`` or a write failed) and close."""
        try:
            if self._fsync != "never" and self._since_fsync and not self._failed:
                file.flush()
                os.fsync(file.fileno())
                self._fsyncs += 1
                self._since_fsync = 0
        finally:
            file.close()

    async def _drain_on_exit(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool:
        """On exit, once the consumer task is gone: write what was published before the exit
        began and is still buffered, then mark what is missing up to there.

        It drains also when the body raised (the log should hold everything up to a crash),
        but not after a write of its own failed. Cancellation is let through between batches;
        the final gap marker is written even then.
        """
        sub = self._sub
        if self._failed or sub is None or sub.closed:
            return False
        through = self._exit_seq
        try:
            while True:
                batch, more = self._take_through(through)
                if batch:
                    await self._write(batch)
                if not more:
                    break
                await anyio.lowlevel.checkpoint_if_cancelled()
        finally:
            if not self._failed:
                await self._write([], through=through)
        return False

    def _take_through(self, through: int) -> tuple[list[Envelope[Any]], bool]:
        """Take up to a batch of buffered envelopes with ``seq <= through``; and whether there
        may be more. An envelope past ``through`` is taken and dropped: it was published
        after the exit began, and the subscription is about to be closed."""
        sub = self._sub
        assert sub is not None
        batch: list[Envelope[Any]] = []
        while len(batch) < self._batch_size:
            try:
                envelope = sub.receive_nowait()
            except (WouldBlock, EndOfStream):
                return batch, False
            if envelope.seq > through:
                return batch, False
            batch.append(envelope)
        return batch, True

    # -- consuming ---------------------------------------------------------------------------

    async def _consume(self) -> None:
        sub = self._sub
        assert sub is not None
        # Its writes are shielded, so cancellation reaches it only while it waits: once the
        # exit began it stops after the batch it is writing, and the drain takes over.
        while True:
            if self._exiting:
                return
            batch = self._take_ready([])
            if not batch:
                # Caught up: whatever the bus handed out that a lossy queue never held is
                # lost. Mark it now, not when (if ever) the next envelope arrives. (A block
                # queue loses nothing: it is spared the look.)
                if self._overflow != "block":
                    last = self._bus.statistics().published
                    if last >= self._next_seq:
                        await self._write([], through=last)
                        continue
                try:
                    first = await sub.receive()
                except EndOfStream:
                    break
                batch = self._take_ready([first])
            await self._write(batch)
        # The bus closed and everything it held is written: idle until exit.
        self._notify_progress()
        await anyio.sleep_forever()

    def _take_ready(self, batch: list[Envelope[Any]]) -> list[Envelope[Any]]:
        sub = self._sub
        assert sub is not None
        limit = self._batch_size
        while len(batch) < limit:
            try:
                batch.append(sub.receive_nowait())
            except (WouldBlock, EndOfStream):
                break
        return batch

    async def _write(self, batch: list[Envelope[Any]], through: int | None = None) -> None:
        """Write one batch from a worker thread; not interrupted by cancellation.

        With ``through``, the seqs up to it that are neither in the file nor in ``batch`` are
        marked as a gap after the batch. Nothing to write is no batch and no call.
        """
        if not batch and (through is None or through < self._next_seq):
            return
        sub = self._sub
        assert sub is not None
        idle = not sub._ready()
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self._write_lines, batch, through, idle)
            except BaseException:
                self._failed = True
                raise
            finally:
                self._notify_progress()

    def _write_lines(self, batch: list[Envelope[Any]], through: int | None, idle: bool) -> None:
        """Worker thread: encode, write and maybe fsync one batch, with its gap markers."""
        file = self._file
        assert file is not None
        out = bytearray()
        expected = self._next_seq
        hole = 0  # the first seq of a hole not yet marked, or 0
        gaps = lost = envelopes = 0
        encode = encode_json
        max_line_bytes = self._max_line_bytes
        shallow = self._shallow
        line: bytes | None
        for envelope in batch:
            seq = envelope.seq
            if seq > expected and not hole:
                hole = expected
            expected = seq + 1
            # The hot path: encode, one length check, one set lookup (see _checked).
            try:
                line = encode(envelope)
            except _UNENCODABLE as exc:
                self._skip(envelope, "unencodable", error=str(exc))
                line = None
            else:
                if len(line) > max_line_bytes:
                    self._skip(
                        envelope, "line_too_long", size=len(line), max_line_bytes=max_line_bytes
                    )
                    line = None
                elif type(envelope.event) not in shallow:
                    line = self._checked(envelope, line)
            if line is None:  # not written: part of a hole
                if not hole:
                    hole = seq
                continue
            if hole:
                out += encode(_GapLine(LogGap(first_seq=hole, last_seq=seq - 1, lost=seq - hole)))
                out += b"\n"
                gaps += 1
                lost += seq - hole
                hole = 0
            out += line
            out += b"\n"
            envelopes += 1
        if through is not None and through >= expected:
            if not hole:
                hole = expected
            expected = through + 1
        if hole:
            last = expected - 1
            out += encode(_GapLine(LogGap(first_seq=hole, last_seq=last, lost=last - hole + 1)))
            out += b"\n"
            gaps += 1
            lost += last - hole + 1
        if out:
            file.write(out)
            file.flush()
            self._batches += 1
            self._since_fsync += 1
        self._next_seq = expected
        self._written += envelopes
        if gaps:
            self._gaps += gaps
            self._lost += lost
            _log.warning("session_log_gap", path=self._path, lost=lost, gaps=gaps)
        if not out:
            return
        policy = self._fsync
        if policy == "always" or (
            policy == "batch" and (idle or self._since_fsync >= FSYNC_EVERY_BATCHES)
        ):
            os.fsync(file.fileno())
            self._fsyncs += 1
            self._since_fsync = 0

    def _checked(self, envelope: Envelope[Any], line: bytes) -> bytes | None:
        """Worker thread: ``line``, or ``None`` if it nests deeper than ``max_depth``.

        An event class whose annotations bound its depth within the limit joins
        ``_shallow`` and is never checked again (most are: only ``Any`` payloads such as
        ``tool_args`` are unbounded). For the others, a line with no more brackets than
        ``max_depth`` cannot nest deeper (one C-level pass); only one with more is scanned.
        """
        max_depth = self._max_depth
        event_type = type(envelope.event)
        bound = _depth_bounds.get(event_type, -1)
        if bound == -1:
            bound = _depth_bounds[event_type] = _depth_bound(event_type)
        if bound is not None and bound + 1 <= max_depth:  # the envelope is one level more
            self._shallow.add(event_type)
            return line
        if _has_more_brackets(line, max_depth) and _nests_deeper(line, max_depth):
            self._skip(envelope, "too_deep", max_depth=max_depth)
            return None
        return line

    def _skip(self, envelope: Envelope[Any], reason: str, **detail: object) -> None:
        """Worker thread: count an envelope not written; log the first for each reason."""
        self._skipped += 1
        if reason not in self._skip_logged:  # once per reason: the count is in statistics()
            self._skip_logged.add(reason)
            _log.warning(
                "session_log_envelope_skipped",
                path=self._path,
                seq=envelope.seq,
                kind=envelope.kind,
                reason=reason,
                **detail,
            )

    # -- flushing ----------------------------------------------------------------------------

    def _notify_progress(self) -> None:
        event = self._progress
        if event is not None:
            self._progress = None
            event.set()

    async def flush(self) -> None:
        """Wait until everything published so far is in the file.

        :raises RuntimeError: if the recorder is not entered.

        When it returns, every ``seq`` up to the bus's last ``seq`` at the call is in the file:
        written as an envelope line, or inside a gap marker (lost to a lossy queue, or not
        written, see *What it never writes*). Written means handed to the OS (``write`` and
        ``flush``); whether it is also on disk depends on ``fsync``. Envelopes published
        after the call are not waited for, so it returns while other tasks keep publishing.
        It also returns if a write failed (the error leaves ``async with``) or the recorder
        exits meanwhile.
        """
        sub = self._sub
        if sub is None or not self._running:
            raise RuntimeError("the recorder is not running: use `async with recorder:`")
        target = self._bus.statistics().published
        while self._next_seq <= target and self._running and not self._failed:
            event = self._progress
            if event is None:
                event = self._progress = anyio.Event()
            await event.wait()
