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
        gaps: Gap marker lines written.
        lost: Envelopes the gap markers account for (what :attr:`SessionLog.lost` reads back
            from a log this recorder wrote alone): lost to a lossy queue's overflow, or left
            unwritten by a cancelled exit.
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
    With ``"drop_oldest"`` or ``"drop_newest"`` publishers never wait, and envelopes are lost
    when the queue overflows. Every envelope the log does not hold is accounted for by a gap
    marker line, ``{"gap":{"first_seq":a,"last_seq":b,"lost":n}}`` (a :class:`LogGap`), at the
    place it would have been, so a log never has a *silent* hole:

    * a jump in ``seq`` between two envelopes the recorder received (losses, or a bus whose
      ``seq`` jumped: :meth:`EventBus.publish_envelope` with ``keep_seq`` replaying a lossy
      log) is marked before the later one;
    * losses after the last envelope received are marked as soon as the recorder finds its
      queue empty (it compares with the bus's last ``seq``), by :meth:`flush`, and on exit.

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

    The exit can be cancelled (an outer cancel scope or deadline, also one that cancelled the
    body): it stops after the batch it is writing (batches are written whole), marks what it
    did not write with one final gap marker (up to the exit's ``seq``), closes the file and
    lets the cancellation through. The log is then a valid log: whole lines, every envelope
    before the marker written, nothing missing silently, even for a lossless recorder.

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
    :raises ValueError: for a bad ``overflow`` or ``fsync``, or a ``batch_size`` or
        ``max_buffer_size`` below 1.
    :raises TypeError: if ``batch_size`` or ``max_buffer_size`` is not an int.
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
                # Caught up: whatever the bus handed out that the queue never held is lost.
                # Mark it now, not when (if ever) the next envelope arrives.
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
        for envelope in batch:
            seq = envelope.seq
            if seq > expected and not hole:
                hole = expected
            expected = seq + 1
            if hole:
                out += encode(_GapLine(LogGap(first_seq=hole, last_seq=seq - 1, lost=seq - hole)))
                out += b"\n"
                gaps += 1
                lost += seq - hole
                hole = 0
            out += encode(envelope)
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
        written as an envelope line, or inside a gap marker (lost to a lossy queue). Written
        means handed to the OS (``write`` and
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
