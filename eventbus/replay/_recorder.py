"""The session log recorder: a bus consumer that appends every envelope to a JSONL file."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, Final, Literal

import anyio
import anyio.to_thread
import msgspec
import structlog
from anyio import EndOfStream, WouldBlock

from .._bus import EventBus, OverflowPolicy, Subscription, _check_positive_int
from .._envelope import Envelope
from .._files import end_of_last_line
from ..codec import encode_json
from ._log import LogGap, _GapLine

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
            except msgspec.DecodeError:  # torn: cut it
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


@dataclass(frozen=True, slots=True)
class RecorderStatistics:
    """A point-in-time view of a :class:`SessionLogRecorder`.

    Attributes:
        written: Envelopes written to the file (handed to the OS; see ``fsyncs``).
        batches: Batches written, one ``write`` call each.
        fsyncs: ``os.fsync`` calls made.
        gaps: Gap marker lines written (lossy recorders only).
        lost: Envelopes the gap markers account for: published after the recorder subscribed
            and never recorded, because its queue overflowed.
        buffered: Envelopes waiting in the recorder's subscription now.
    """

    written: int
    batches: int
    fsyncs: int
    gaps: int
    lost: int
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
    With ``"drop_oldest"`` or ``"drop_newest"`` publishers never wait; when envelopes are
    lost the recorder writes a gap marker line, ``{"gap":{"first_seq":a,"last_seq":b,
    "lost":n}}`` (a :class:`LogGap`), before the next envelope it records. Gaps are found from
    ``seq``: after the first envelope recorded, a jump in ``seq`` is a gap, as is a first
    envelope later than the one following the bus's ``seq`` at subscribe time. A bus whose
    ``seq`` jumps for another reason (:meth:`EventBus.publish_envelope` with ``keep_seq``
    replaying a lossy log) gets a gap marker too, which records that hole faithfully.

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
    Leaving ``async with`` drains: every envelope the recorder's subscription holds at that
    moment is written (and fsynced unless ``"never"``), then the file and the subscription
    are closed. Events published afterwards are not recorded. If the bus closes first, the
    recorder writes what it holds and then idles until exit. A write error (disk full...)
    ends the consumer task and leaves ``async with`` in an :exc:`ExceptionGroup` (the
    consumer is a task); an exception raised by the body leaves it unwrapped.

    :param bus: the bus to record.
    :param path: the log file. Created; it must not exist unless ``append`` is true.
    :param append: append to an existing file instead of refusing it. A torn final line (a
        write a crash cut short: not JSON) is cut off first, and ``session_log_torn_tail_cut``
        is logged; a whole final record without its newline gets one. Either way the new
        lines start on a line of their own and the log stays readable.
    :param overflow: the recorder subscription's policy (``"block"``: lossless).
    :param max_buffer_size: the recorder subscription's queue capacity.
    :param batch_size: the most envelopes written per batch.
    :param fsync: ``"always"``, ``"batch"`` or ``"never"``.
    :param name: the subscription's name, in logs and statistics.
    :raises ValueError: for a bad ``overflow`` or ``fsync``, or a ``batch_size`` or
        ``max_buffer_size`` below 1.
    :raises TypeError: if ``batch_size`` or ``max_buffer_size`` is not an int.
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
    ) -> None:
        if overflow not in _POLICIES:
            raise ValueError(
                f"overflow must be one of 'drop_oldest', 'drop_newest', 'block', got {overflow!r}"
            )
        if fsync not in _FSYNC:
            raise ValueError(f"fsync must be one of 'always', 'batch', 'never', got {fsync!r}")
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("max_buffer_size", max_buffer_size)
        self._bus = bus
        self._path = os.fspath(path)
        self._append = append
        self._overflow: OverflowPolicy = overflow
        self._max_buffer_size = max_buffer_size
        self._batch_size = batch_size
        self._fsync: FsyncPolicy = fsync
        self._name = name
        self._file: IO[bytes] | None = None
        self._sub: Subscription[Any] | None = None
        self._stack: AsyncExitStack | None = None
        self._next_seq = 0  # the seq expected next; 0 until subscribed
        self._failed = False  # a write raised: the file is in an unknown state
        self._running = False
        self._busy = False  # a batch has been taken and is not yet written
        self._progress: anyio.Event | None = None
        self._since_fsync = 0  # batches written since the last fsync
        self._written = 0
        self._batches = 0
        self._fsyncs = 0
        self._gaps = 0
        self._lost = 0

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
            buffered=0 if sub is None or sub.closed else sub.statistics().buffered,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> SessionLogRecorder:
        if self._stack is not None:
            raise RuntimeError("a SessionLogRecorder can be entered only once")
        if self._append:
            self._file = await anyio.to_thread.run_sync(_open_to_append, self._path)
        else:
            self._file = await anyio.to_thread.run_sync(open, self._path, "xb")
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self._close_file)
            sub = self._bus.subscribe(
                max_buffer_size=self._max_buffer_size, overflow=self._overflow, name=self._name
            )
            stack.callback(sub.close)
            self._sub = sub
            self._next_seq = self._bus.statistics().published + 1
            stack.push_async_exit(self._drain_on_exit)
            tg = await stack.enter_async_context(anyio.create_task_group())
            # On exit, in this order: stop the consumer, wait for it, drain, unsubscribe, close.
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
        try:
            return await stack.__aexit__(exc_type, exc_val, exc_tb)
        except BaseExceptionGroup as group:
            # The task group wraps the body's own exception: let it propagate unwrapped.
            if exc_val is not None and all(e is exc_val for e in group.exceptions):
                return False
            raise

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
        """On exit, once the consumer task is gone: write whatever is still buffered.

        It drains also when the body raised (the log should hold everything up to a crash),
        but not after a write of its own failed.
        """
        sub = self._sub
        if self._failed or sub is None or sub.closed:
            return False
        while True:
            batch = self._take_ready([])
            if not batch:
                return False
            await self._write(batch)

    # -- consuming ---------------------------------------------------------------------------

    async def _consume(self) -> None:
        sub = self._sub
        assert sub is not None
        while True:
            try:
                first = await sub.receive()
            except EndOfStream:
                break
            await self._write(self._take_ready([first]))
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

    async def _write(self, batch: list[Envelope[Any]]) -> None:
        """Write one batch from a worker thread; not interrupted by cancellation."""
        self._busy = True
        lines: list[LogGap | Envelope[Any]] = []
        expected = self._next_seq
        for envelope in batch:
            seq = envelope.seq
            if seq > expected:
                lines.append(LogGap(first_seq=expected, last_seq=seq - 1, lost=seq - expected))
            expected = seq + 1
            lines.append(envelope)
        self._next_seq = expected
        sub = self._sub
        assert sub is not None
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self._write_lines, lines, not sub._ready())
            except BaseException:
                self._failed = True
                raise
            finally:
                self._busy = False
                self._notify_progress()

    def _write_lines(self, items: list[LogGap | Envelope[Any]], idle: bool) -> None:
        """Worker thread: encode, write and maybe fsync one batch."""
        file = self._file
        assert file is not None
        out = bytearray()
        gaps = lost = envelopes = 0
        for item in items:
            if isinstance(item, LogGap):
                out += encode_json(_GapLine(item))
                gaps += 1
                lost += item.lost
            else:
                out += encode_json(item)
                envelopes += 1
            out += b"\n"
        file.write(out)
        file.flush()
        self._written += envelopes
        self._batches += 1
        self._since_fsync += 1
        if gaps:
            self._gaps += gaps
            self._lost += lost
            _log.warning("session_log_gap", path=self._path, lost=lost, gaps=gaps)
        policy = self._fsync
        if policy == "always" or (
            policy == "batch" and (idle or self._since_fsync >= FSYNC_EVERY_BATCHES)
        ):
            os.fsync(file.fileno())
            self._fsyncs += 1
            self._since_fsync = 0

    # -- flushing ----------------------------------------------------------------------------

    def _notify_progress(self) -> None:
        event = self._progress
        if event is not None:
            self._progress = None
            event.set()

    async def flush(self) -> None:
        """Wait until every envelope the recorder has received so far is written to the file.

        :raises RuntimeError: if the recorder is not entered.

        Written means handed to the OS (``write`` and ``flush``); whether it is also on disk
        depends on ``fsync``. It returns when the recorder's queue is empty and no batch is
        being written; with a lossy policy, what was dropped is accounted for by gap markers
        written before later envelopes, not by this call.
        """
        sub = self._sub
        if sub is None or not self._running:
            raise RuntimeError("the recorder is not running: use `async with recorder:`")
        while self._busy or (not sub.closed and sub._ready()):
            event = self._progress
            if event is None:
                event = self._progress = anyio.Event()
            await event.wait()
