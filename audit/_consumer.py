"""The audit consumer: :func:`attach_audit_trail` and its :class:`Auditor` handle."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from itertools import islice
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, get_type_hints

import anyio
import anyio.lowlevel
import msgspec
import structlog
from anyio import ClosedResourceError, EndOfStream, WouldBlock
from anyio.abc import TaskGroup, TaskStatus

from eventbus import Envelope, EventBus, Subscription
from eventbus._bus import _check_positive_int

from ._actions import ACTION_TYPES, AuditAction, EventsDropped, Other
from ._entry import _DOMAIN_HASH, AuditEntry, _encode
from ._mapper import AuditMapper
from ._redact import bound_text, canonical_json
from ._trail import AuditTrail

if TYPE_CHECKING:
    from .sinks import AuditSink

__all__ = ["AuditMode", "Auditor", "AuditorStatistics", "attach_audit_trail"]

AuditMode = Literal["queued", "lossless", "inline"]
"""How the consumer receives envelopes; see :func:`attach_audit_trail`."""

SinkErrorPolicy = Literal["raise", "count"]

_log = structlog.get_logger("audit")
_time_ns = time.time_ns

#: Envelopes the consumer takes before it yields to the scheduler.
_BATCH: Final = 256
_BATCH_RANGE: Final = range(_BATCH)
#: The longest error text kept in a ``mapping_failed`` detail.
_MAX_ERROR_CHARS: Final = 200
_ACTION_SET: Final = frozenset(ACTION_TYPES)
# What an action a user's mapping function returned must survive: the round trip through
# the JSON every sink writes (msgspec does not validate a Struct's fields when it is built).
_ACTION_CHECK: Final = {t: msgspec.json.Decoder(t).decode for t in ACTION_TYPES}
# Each action class's fields and the exact class each holds (msgspec does not check the
# values a Struct is built with, and the bus does not validate events: a built-in mapping
# copies whatever an event holds).
_FIELD_TYPES: Final = {
    t: tuple((name, get_type_hints(t)[name]) for name in t.__struct_fields__) for t in ACTION_TYPES
}
_TEXT_ERRORS: Final = (UnicodeEncodeError, TypeError, ValueError, OverflowError)


def _fits_function(action_type: type[AuditAction]) -> Any:
    """``fits(actor, action, limit)`` for one action class: whether ``actor`` and every field
    of ``action`` hold their declared class and no text is longer than ``limit``. Generated
    (as dataclasses generates ``__init__``): one expression of attribute reads, no loop, no
    ``getattr``, since it runs for every entry."""
    tests = ["actor.__class__ is str", "len(actor) <= limit"]
    for i, (name, cls) in enumerate(_FIELD_TYPES[action_type]):
        if cls is str:
            tests.append(f"(v{i} := action.{name}).__class__ is str and len(v{i}) <= limit")
        else:
            tests.append(f"action.{name}.__class__ is {cls.__name__}")
    source = f"def fits(actor, action, limit):\n    return {' and '.join(tests)}\n"
    namespace: dict[str, Any] = {}
    exec(source, {"bool": bool, "int": int, "str": str}, namespace)
    return namespace["fits"]


_FITS: Final = {t: _fits_function(t) for t in ACTION_TYPES}
_MODES: Final = ("queued", "lossless", "inline")


@dataclass(frozen=True, slots=True)
class AuditorStatistics:
    """A point-in-time view of an :class:`Auditor`, returned by its ``statistics()``.

    For a ``queued`` auditor, once flushed: ``seen + lagged`` equals the envelopes published
    since it started (``lagged`` is also the sum of the ``EventsDropped`` counts it wrote,
    plus losses not yet reached by the consumer).

    Attributes:
        mode: ``"queued"``, ``"lossless"`` or ``"inline"``.
        seen: Envelopes the auditor received and recorded (one entry each).
        appended: Entries it appended: ``seen`` plus one per gap (``EventsDropped``).
        lagged: Envelopes its subscription lost (``queued`` only; counted at publish time).
        gaps: ``EventsDropped`` entries it wrote.
        failed: Envelopes whose mapping or redaction raised (recorded as
            ``Other(detail="mapping_failed:...")``).
        unmapped: Envelopes no mapping function covered (recorded as ``Other(detail=kind)``).
        sink_written: Entries committed to the sink.
        sink_errors: Sink writes that failed.
        sink_lost: Entries that will never reach the sink: those pending when it failed or
            appended after, and, in ``inline`` mode only, those that found its bounded buffer
            full.
    """

    mode: AuditMode
    seen: int
    appended: int
    lagged: int
    gaps: int
    failed: int
    unmapped: int
    sink_written: int
    sink_errors: int
    sink_lost: int


class Auditor:
    """A running audit consumer: the handle :func:`attach_audit_trail` yields.

    Use it once, either as ``async with attach_audit_trail(...) as auditor:`` or with
    ``auditor = await task_group.start(attach_audit_trail(...))``.
    """

    def __init__(
        self,
        bus: EventBus[Any],
        trail: AuditTrail,
        *,
        mapper: AuditMapper | None,
        mode: AuditMode,
        max_buffer_size: int,
        name: str,
        sink: AuditSink | None,
        resume: bool,
        on_sink_error: SinkErrorPolicy,
        sink_batch_size: int,
        sink_buffer_size: int,
    ) -> None:
        if not isinstance(bus, EventBus):
            raise TypeError(f"bus must be an EventBus, got {type(bus).__name__}")
        if not isinstance(trail, AuditTrail):
            raise TypeError(f"trail must be an AuditTrail, got {type(trail).__name__}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of 'queued', 'lossless', 'inline', got {mode!r}")
        if on_sink_error not in ("raise", "count"):
            raise ValueError(f"on_sink_error must be 'raise' or 'count', got {on_sink_error!r}")
        _check_positive_int("max_buffer_size", max_buffer_size)
        _check_positive_int("sink_batch_size", sink_batch_size)
        _check_positive_int("sink_buffer_size", sink_buffer_size)
        if resume and sink is None:
            raise ValueError("resume=True needs a sink to resume from")
        if sink is not None:
            from .sinks import AuditSink  # (only now: it imports sqlite3)

            # (a class has the three methods too: isinstance() on the protocol accepts it)
            if isinstance(sink, type) or not isinstance(sink, AuditSink):
                got = (
                    f"the class {sink.__name__}" if isinstance(sink, type) else type(sink).__name__
                )
                raise TypeError(
                    f"sink must be an AuditSink (write, load_tail and close), got {got}"
                )
        self._bus = bus
        self._trail = trail
        self._mapper = mapper if mapper is not None else AuditMapper()
        self._mode: AuditMode = mode
        self._max_buffer_size = max_buffer_size
        self._name = name
        self._sink = sink
        self._resume = resume
        self._on_sink_error = on_sink_error
        self._sink_batch = sink_batch_size
        self._sink_buffer = sink_buffer_size

        self._state = "new"  # new -> running -> done
        self._sub: Subscription[Any] | None = None
        self._remove_tap: Any = None
        self._tg: TaskGroup | None = None
        self._stopping = False
        self._wait_scope: anyio.CancelScope | None = None
        self._stop_event = anyio.Event()
        self._consumer_done = anyio.Event()
        self._progress: anyio.Event | None = None  # set on progress if a flush waits
        self._writer_wake: anyio.Event | None = None  # set when the sink writer has work
        self._writer_done = False

        self._last_seq = 0  # bus seq of the newest envelope recorded (or of the start)
        self._lag_seen = 0  # subscription losses already written as EventsDropped
        self._seen = 0
        self._gaps = 0
        self._failed = 0
        self._unmapped = 0
        self._failed_kinds: set[str] = set()
        self._lag_logged_ns = 0
        self._lag_unlogged = 0  # envelopes lost since audit_lagged was last logged
        self._lag_unlogged_from = 0  # and where the first of them was

        self._pending: deque[AuditEntry] = deque()
        self._enqueued_seq = 0  # trail seq of the newest entry queued for the sink
        self._written_seq = 0  # trail seq of the newest entry committed to the sink
        self._sink_failed: BaseException | None = None
        self._store_newest: AuditEntry | None = None  # the sink's newest entry at the start
        self._sink_written = 0
        self._sink_errors = 0
        self._sink_lost = 0
        self._sink_full_logged = False

    def __repr__(self) -> str:
        return f"<Auditor {self._name!r} mode={self._mode} {self._state} seen={self._seen}>"

    @property
    def mode(self) -> AuditMode:
        """The consumer's mode."""
        return self._mode

    @property
    def trail(self) -> AuditTrail:
        """The trail it appends to."""
        return self._trail

    # -- lifecycle ---------------------------------------------------------------------------

    async def _setup(self) -> None:
        if self._state != "new":
            raise RuntimeError("an Auditor runs once; call attach_audit_trail() again")
        self._state = "running"
        if self._sink is not None and not self._resume:
            # Before attaching to the bus: an auditor refused records nothing, not even
            # in inline mode what is published while the store is read.
            try:
                await self._check_continues()
            except BaseException:
                self._teardown()
                raise
        bus = self._bus
        if self._mode == "inline":
            self._remove_tap = bus.add_tap(self._record)
        else:
            self._sub = bus.subscribe(
                max_buffer_size=self._max_buffer_size,
                overflow="block" if self._mode == "lossless" else "drop_oldest",
                name=self._name,
            )
        # Nothing can be published between attaching and this read (no await in between).
        self._last_seq = bus.statistics().published
        try:
            if self._resume:
                assert self._sink is not None
                loaded = await anyio.to_thread.run_sync(self._sink.load_tail, self._trail.capacity)
                renumbered = self._trail._restore_entries(loaded)
                self._written_seq = self._trail.last_seq - len(renumbered)
                self._pending.clear()
                self._pending.extend(renumbered)
                self._enqueued_seq = self._trail.last_seq
                _log.info(
                    "audit_trail_restored",
                    name=self._name,
                    restored=len(loaded),
                    last_seq=self._trail.last_seq,
                )
            else:
                self._written_seq = self._enqueued_seq = self._trail.last_seq
                missing = self._continuation()  # (again: the trail may have grown meanwhile)
                if missing:
                    self._written_seq = missing[0].seq - 1
                    self._pending.extend(missing)
                    # Room for them on top of the buffer: they are in the trail already, and
                    # new entries must not wait for (or, inline, be dropped behind) them.
                    self._sink_buffer += len(missing)
                    _log.info(
                        "audit_sink_catching_up",
                        name=self._name,
                        first_seq=missing[0].seq,
                        last_seq=missing[-1].seq,
                    )
        except BaseException:
            self._teardown()
            raise

    async def _check_continues(self) -> None:
        """Refuse a sink this trail does not continue before anything is written to it: the
        trail would write seqs the store already has (SQLite refuses them deep inside the
        writer; JSONL would take them, and its chain would then read as tampered).

        A store that ends at an entry the trail holds is continued: a trail attached to it
        before (and detached, or whose sink failed) has what the store lacks, and
        :meth:`_setup` queues that for the writer first."""
        assert self._sink is not None
        newest = await anyio.to_thread.run_sync(self._sink.load_tail, 1)
        if newest:
            self._store_newest = newest[-1]
            self._continuation()

    def _continuation(self) -> list[AuditEntry]:
        """The trail's entries after the store's newest (see :meth:`_check_continues`).

        :raises ValueError: if the trail does not continue the store.
        """
        stored = self._store_newest
        if stored is None:
            return []
        trail = self._trail
        missing = trail._continuation(stored)
        if missing is not None:
            return missing
        seq = trail.last_seq
        oldest = trail._anchor[0] + 1
        if seq == 0:
            advice = "pass resume=True to continue the store, or give a new one"
        elif oldest <= seq and stored.seq < oldest - 1:
            advice = (
                f"the trail no longer holds the entries after it (its oldest is seq {oldest}), "
                "so it cannot fill the gap: give it a new store"
            )
        else:
            # resume=True would put the store's entries before this trail's own.
            advice = "give it a new store, or resume the store into a new trail"
        raise ValueError(
            f"sink already holds entries up to seq {stored.seq} that this trail does not "
            f"continue (its last seq is {seq}): {advice}"
        )

    async def __call__(
        self, *, task_status: TaskStatus[Auditor] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the consumer until cancelled (or until the bus closes and it has drained).

        For ``await task_group.start(attach_audit_trail(...))``, which returns the auditor
        once it is subscribed. On cancellation it still records what was already published
        and writes what is pending to the sink (shielded) before it returns.
        """
        await self._setup()
        task_status.started(self)
        await self._serve()

    async def __aenter__(self) -> Auditor:
        await self._setup()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        tg.start_soon(self._serve, name=f"audit consumer {self._name}")
        self._tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        self._request_stop()
        assert self._tg is not None
        return await self._tg.__aexit__(exc_type, exc_val, exc_tb)

    def _request_stop(self) -> None:
        self._stopping = True
        self._stop_event.set()
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    async def _serve(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                if self._sink is not None:
                    tg.start_soon(self._write_loop, name=f"audit sink writer {self._name}")
                try:
                    if self._mode == "inline":
                        await self._stop_event.wait()
                    else:
                        await self._consume()
                finally:
                    # Stop taking envelopes, record what was already published, then let the
                    # writer finish: all synchronous, so no publish slips in between.
                    if self._remove_tap is not None:
                        self._remove_tap()
                        self._remove_tap = None
                    self._drain()
                    if self._sub is not None:
                        self._sub.close()
                    self._consumer_done.set()
                    self._wake_writer()
            await self._write_remaining()
        except BaseException:
            await self._write_remaining()
            raise
        finally:
            self._teardown()

    def _teardown(self) -> None:
        self._state = "done"
        if self._sub is not None:
            self._sub.close()
        if self._remove_tap is not None:
            self._remove_tap()
            self._remove_tap = None
        self._consumer_done.set()
        self._writer_done = True
        self._notify_progress()

    # -- consuming ---------------------------------------------------------------------------

    async def _consume(self) -> None:
        sub = self._sub
        assert sub is not None
        record = self._record
        take = sub.receive_nowait
        pending = self._pending
        # Without a sink nothing is ever pending, so the bound never stops a batch.
        bounded = self._sink is not None
        limit = self._sink_buffer
        # One cancel scope for the whole loop, not one per wait (an anyio scope costs about
        # 4 µs on asyncio, as much as recording a few entries): _request_stop cancels it
        # wherever the loop waits, and then the loop ends as it would at its next turn.
        with anyio.CancelScope() as scope:
            self._wait_scope = scope
            try:
                while not self._stopping:
                    n = 0
                    try:
                        if bounded:
                            while n < _BATCH and len(pending) < limit:
                                record(take())
                                n += 1
                        else:
                            for n in _BATCH_RANGE:  # noqa: B007 (n counts what was recorded)
                                record(take())
                            n = _BATCH
                    except WouldBlock:
                        pass
                    except EndOfStream:
                        return
                    if self._progress is not None:
                        self._notify_progress()
                    if n == _BATCH:
                        await anyio.lowlevel.checkpoint()
                        continue
                    while len(pending) >= limit and self._sink_failed is None:
                        # Backpressure: the sink writer is behind. Waiting here lets the
                        # subscription absorb (queued: and record as EventsDropped) the
                        # excess; publishers never wait on the sink.
                        await self._wait_progress()
                    try:
                        envelope = await sub.receive()
                    except EndOfStream:
                        return
                    record(envelope)
            finally:
                self._wait_scope = None

    def _drain(self) -> None:
        """Record, synchronously, everything the subscription still holds."""
        sub = self._sub
        if sub is None:
            return
        while True:
            try:
                envelope = sub.receive_nowait()
            except (WouldBlock, EndOfStream, ClosedResourceError):
                return
            self._record(envelope)

    def _check_gap(self, envelope: Envelope[Any]) -> None:
        """A jump in the bus's seq: a gap if the subscription lost envelopes (else a replay).

        With ``drop_oldest`` the subscription evicts from the front of its queue, so every
        loss counted when ``envelope`` reaches the front lies between the last recorded
        envelope and ``envelope``.
        """
        sub = self._sub
        if sub is None:
            return
        lagged = sub.statistics().lagged
        count = lagged - self._lag_seen
        if count <= 0:
            return
        self._lag_seen = lagged
        first, last = self._last_seq + 1, envelope.seq - 1
        entry = self._trail._append_gap(envelope.ts_ns, count, first, last)
        self._gaps += 1
        if self._sink is not None:
            self._to_sink(entry)
        if not self._lag_unlogged:
            self._lag_unlogged_from = first
        self._lag_unlogged += count
        now = time.monotonic_ns()
        if now - self._lag_logged_ns >= 1_000_000_000:  # at most once a second
            # dropped: every loss since the last record, all between first_seq and last_seq
            # (the envelopes in between that were not lost are recorded).
            _log.warning(
                "audit_lagged",
                name=self._name,
                dropped=self._lag_unlogged,
                first_seq=self._lag_unlogged_from,
                last_seq=last,
                max_buffer_size=self._max_buffer_size,
            )
            self._lag_logged_ns = now
            self._lag_unlogged = 0

    def _record(self, envelope: Envelope[Any]) -> None:
        """Record one envelope (first a gap entry if envelopes were lost before it): map,
        redact and append it. Never raises for a bad mapping. It is also the inline tap.

        The hot path of every mode: the append is done here rather than through
        ``AuditTrail._append`` (same entry, same hash), and the hash reuses the resource's
        bytes instead of encoding the text again.
        """
        event_seq = envelope.seq
        if event_seq != self._last_seq + 1:  # never for a tap: it sees every publish
            self._check_gap(envelope)
        event = envelope.event
        mapper = self._mapper
        info = mapper._resolved.get(type(event))
        if info is None:
            info = mapper._resolve(type(event))
        error: Exception | None = None
        action: AuditAction
        fn = info.fn
        if info.trusted:  # the built-in mapping: returns (str, action), never EventsDropped
            try:
                actor, action = fn(event)  # type: ignore[misc]
            except Exception as exc:
                error = exc
        elif fn is None:
            actor, action = "system", Other(detail=envelope.kind)
            self._unmapped += 1
            self._trail._unmapped += 1
        else:
            try:
                actor, action = fn(event)
                if type(action) not in _ACTION_SET or type(actor) is not str:
                    raise TypeError(
                        "a mapping function must return (str, AuditAction), "
                        f"got ({type(actor).__name__}, {type(action).__name__})"
                    )
                _ACTION_CHECK[type(action)](_encode(action))
                if not _FITS[type(action)](actor, action, mapper._limit):
                    actor, action, error = _fit(actor, action, mapper._limit)
            except Exception as exc:
                error = exc
            else:
                if error is None and type(action) is EventsDropped:
                    self._trail._dropped += action.count
        limit = mapper._limit
        event_id = envelope.event_id
        correlation_id = envelope.correlation_id
        causation_id = envelope.causation_id
        if (
            len(event_id) > limit
            or (correlation_id is not None and len(correlation_id) > limit)
            or (causation_id is not None and len(causation_id) > limit)
        ):
            event_id, correlation_id, causation_id = _fit_ids(
                (event_id, correlation_id, causation_id), limit
            )
        raw: bytes | None = None
        if info.plain:  # nothing to redact in any instance: just the canonical JSON
            try:
                raw = canonical_json(event)
            except Exception:
                raw = None  # unencodable: _resource_raw writes the marker
        if raw is None:
            try:
                raw = mapper._resource_raw(event, info.scan)
            except Exception as exc:
                raw = b"<unavailable: redaction failed>"
                error = error or exc
        cut = len(raw) > limit
        if cut:
            resource = bound_text(raw, limit)
            raw = resource.encode()
        else:
            resource = raw.decode("utf-8", "replace")
        # The actor and the action's texts are cut like the resource. A built-in mapping
        # copies them from the event, so they can be long only if its JSON was (``cut``);
        # a user mapping's are always looked at, and so is everything bound for a sink,
        # where a value of another class than declared would corrupt the store.
        if (
            error is None
            and (cut or self._sink is not None)
            and not _FITS[action.__class__](actor, action, limit)
        ):
            actor, action, error = _fit(actor, action, limit)
        if error is not None:
            actor, action = "system", self._mapping_failed(envelope.kind, error)

        # The append (AuditTrail._append, inlined).
        trail = self._trail
        seq = trail._seq + 1
        recorded_ns = _time_ns()
        try:
            if trail._chain:
                prev = trail._prev
                fields = (
                    seq,
                    envelope.ts_ns,
                    recorded_ns,
                    actor,
                    action,
                    event_seq,
                    event_id,
                    envelope.kind,
                    info.category,
                    info.primitive,
                    correlation_id,
                    causation_id,
                    prev,
                )
                try:
                    encoded = _encode(fields)
                except _TEXT_ERRORS:  # text no store can hold (a lone surrogate): escaped,
                    # then the same fields again
                    actor, action, (event_id, correlation_id, causation_id) = _scrub(
                        actor, action, (event_id, correlation_id, causation_id)
                    )
                    texts = (actor, action, event_seq, event_id)
                    ids = (correlation_id, causation_id, prev)
                    encoded = _encode(fields[:3] + texts + fields[7:10] + ids)
                h = _DOMAIN_HASH.copy()
                h.update(encoded)
                h.update(raw)  # == resource.encode(): raw is valid UTF-8
                digest = h.hexdigest()
            else:
                prev = digest = ""
                if self._sink is not None:  # the sink encodes it: check now, not in its writer
                    try:
                        _encode((actor, action, event_id, correlation_id, causation_id))
                    except _TEXT_ERRORS:
                        actor, action, (event_id, correlation_id, causation_id) = _scrub(
                            actor, action, (event_id, correlation_id, causation_id)
                        )
            entry = AuditEntry(
                seq,
                envelope.ts_ns,
                recorded_ns,
                actor,
                action,
                resource,
                event_seq,
                event_id,
                envelope.kind,
                info.category,
                info.primitive,
                correlation_id,
                causation_id,
                prev,
                digest,
            )
        except Exception as exc:  # a bug of this path: no silent hole, no consumer ended
            entry = self._record_failed(envelope, exc)
        else:
            trail._prev = digest  # ("" stays "" without a chain)
            entries = trail._entries
            if len(entries) == trail._capacity:
                oldest = entries[0]  # evicted by the append below
                trail._anchor = (oldest.seq, oldest.hash)
                trail._evicted += 1
            entries.append(entry)
            trail._seq = seq

        self._last_seq = event_seq
        self._seen += 1
        if self._sink is not None:
            self._to_sink(entry)

    def _record_failed(self, envelope: Envelope[Any], error: Exception) -> AuditEntry:
        """Append the entry of an envelope whose own entry could not be built: a failed
        mapping, without its ids or resource (content errors are handled before: this is
        for a bug, which must neither leave a hole nor end the consumer)."""
        return self._trail._append(
            envelope.ts_ns,
            "system",
            self._mapping_failed(envelope.kind, error),
            "<unavailable: recording failed>",
            envelope.seq,
            None,
            envelope.kind,
            None,
            None,
            None,
            None,
        )

    def _mapping_failed(self, kind: str, error: Exception) -> Other:
        self._failed += 1
        text = f"{type(error).__name__}: {error}"
        if len(text) > _MAX_ERROR_CHARS:
            text = text[:_MAX_ERROR_CHARS] + "…"
        if kind not in self._failed_kinds:  # once per kind, not once per event
            self._failed_kinds.add(kind)
            _log.error("audit_mapping_failed", name=self._name, kind=kind, error=text)
        return Other(detail=f"mapping_failed:{kind}:{text}")

    # -- the sink ----------------------------------------------------------------------------

    def _to_sink(self, entry: AuditEntry) -> None:
        """Queue ``entry`` for the sink writer (callers check that there is a sink)."""
        if self._sink_failed is not None:
            self._sink_lost += 1
            return
        pending = self._pending
        if len(pending) >= self._sink_buffer and self._mode == "inline":
            # A tap cannot wait: the entry stays in the trail but never reaches the sink.
            self._sink_lost += 1
            if not self._sink_full_logged:
                self._sink_full_logged = True
                _log.error(
                    "audit_sink_overflow", name=self._name, sink_buffer_size=self._sink_buffer
                )
            return
        pending.append(entry)
        self._enqueued_seq = entry.seq
        self._wake_writer()

    def _wake_writer(self) -> None:
        wake = self._writer_wake
        if wake is not None:
            self._writer_wake = None
            wake.set()

    async def _write_loop(self) -> None:
        try:
            while True:
                if not self._pending or self._sink_failed is not None:
                    if self._consumer_done.is_set():
                        return
                    wake = self._writer_wake = anyio.Event()
                    await wake.wait()
                    continue
                await self._write_batch()
        finally:
            self._writer_done = True
            self._notify_progress()

    async def _write_remaining(self) -> None:
        """After the consumer stopped (also when cancelled): write what is still pending."""
        if self._sink is None:
            return
        with anyio.CancelScope(shield=True):
            while self._pending and self._sink_failed is None:
                await self._write_batch()

    async def _write_batch(self) -> None:
        sink = self._sink
        assert sink is not None
        pending = self._pending
        n = min(len(pending), self._sink_batch)
        batch = list(islice(pending, n))
        try:
            # Not abandoned on cancellation: either the write never started (cancelled at
            # the call's checkpoint: the batch stays pending) or it completes and returns.
            await anyio.to_thread.run_sync(sink.write, batch)
        except Exception as exc:
            self._sink_failed = exc
            self._sink_errors += 1
            self._sink_lost += len(pending)
            pending.clear()
            _log.error(
                "audit_sink_failed",
                name=self._name,
                sink=repr(sink),
                error=repr(exc),
                lost=self._sink_lost,
                policy=self._on_sink_error,
            )
            self._notify_progress()
            if self._on_sink_error == "raise":
                raise
            return
        for _ in range(n):
            pending.popleft()
        self._sink_written += n
        self._written_seq = batch[-1].seq
        self._sink_full_logged = False
        self._notify_progress()

    # -- flushing ----------------------------------------------------------------------------

    def _notify_progress(self) -> None:
        progress = self._progress
        if progress is not None:
            self._progress = None
            progress.set()

    async def _wait_progress(self) -> None:
        progress = self._progress
        if progress is None:
            progress = self._progress = anyio.Event()
        await progress.wait()

    async def flush(self) -> None:
        """Wait until every envelope published before this call is in the trail (and sink).

        :returns: once the consumer has recorded every envelope the bus had published when
            ``flush`` was called (one it lost is recorded as part of an ``EventsDropped``
            entry), and, with a sink, once every entry it had appended by then is committed
            to the sink. It returns at once in ``inline`` mode without a sink.
        :raises RuntimeError: if the auditor has not been started.

        It also returns when the auditor has stopped (bus closed and drained, or exited), or
        when the sink has failed (see ``statistics().sink_errors``). Cancel safety: cancelling
        a flush affects nothing else.
        """
        if self._state == "new":
            raise RuntimeError("the auditor has not been started")
        if self._mode != "inline":  # (inline, publish itself has recorded, or failed to)
            target = self._bus.statistics().published
            while self._last_seq < target and not self._consumer_done.is_set():
                await self._wait_progress()
        if self._sink is None:
            return
        goal = self._enqueued_seq
        while self._written_seq < goal and self._sink_failed is None and not self._writer_done:
            await self._wait_progress()

    def statistics(self) -> AuditorStatistics:
        """Return a frozen snapshot of the auditor's counters (see :class:`AuditorStatistics`)."""
        sub = self._sub
        lagged = self._lag_seen
        if sub is not None and not sub.closed:
            lagged = sub.statistics().lagged
        return AuditorStatistics(
            mode=self._mode,
            seen=self._seen,
            appended=self._seen + self._gaps,
            lagged=lagged,
            gaps=self._gaps,
            failed=self._failed,
            unmapped=self._unmapped,
            sink_written=self._sink_written,
            sink_errors=self._sink_errors,
            sink_lost=self._sink_lost,
        )


def _fit(
    actor: object, action: AuditAction, limit: int
) -> tuple[str, AuditAction, Exception | None]:
    """``actor`` and ``action`` with every text cut to ``limit`` bytes (with the resource's
    marker), or the error that makes them no entry: a value of another class than declared
    (a built-in mapping copies what an event holds, and nothing validates events)."""
    if actor.__class__ is not str:
        return (
            "",
            action,
            TypeError(
                f"the actor must be a str, got {type(actor).__name__} (from an event whose fields "
                "do not hold their declared types)"
            ),
        )
    changes: dict[str, str] = {}
    for name, cls in _FIELD_TYPES[action.__class__]:
        value = getattr(action, name)
        if value.__class__ is not cls:
            return (
                "",
                action,
                TypeError(
                    f"{type(action).__name__}.{name} must be a {cls.__name__}, got "
                    f"{type(value).__name__} (from an event whose fields do not hold their "
                    "declared types)"
                ),
            )
        if cls is str and len(value) > limit:
            changes[name] = _cut(value, limit)
    if changes:
        action = msgspec.structs.replace(action, **changes)
    return _cut(actor, limit) if len(actor) > limit else actor, action, None


def _cut(text: str, limit: int) -> str:
    return bound_text(text.encode("utf-8", "backslashreplace"), limit)


def _fit_ids(
    ids: tuple[str, str | None, str | None], limit: int
) -> tuple[str, str | None, str | None]:
    """An envelope's ``event_id``, ``correlation_id`` and ``causation_id``, each cut to
    ``limit`` bytes: ids come from publishers and remote peers, unbounded."""
    event_id, correlation_id, causation_id = ids
    return (
        _cut(event_id, limit) if len(event_id) > limit else event_id,
        None if correlation_id is None else _cut(correlation_id, limit),
        None if causation_id is None else _cut(causation_id, limit),
    )


def _scrub(
    actor: str, action: AuditAction, ids: tuple[str, str | None, str | None]
) -> tuple[str, AuditAction, tuple[str, str | None, str | None]]:
    """The texts of an entry with what UTF-8 cannot encode (a lone surrogate, as
    ``os.fsdecode`` makes of a file name that is not UTF-8) escaped as ``\\udcff``."""

    def clean(text: str) -> str:
        return text.encode("utf-8", "backslashreplace").decode()

    changes = {
        name: clean(getattr(action, name))
        for name, cls in _FIELD_TYPES[action.__class__]
        if cls is str
    }
    event_id, correlation_id, causation_id = ids
    return (
        clean(actor),
        msgspec.structs.replace(action, **changes) if changes else action,
        (
            clean(event_id),
            None if correlation_id is None else clean(correlation_id),
            None if causation_id is None else clean(causation_id),
        ),
    )


def attach_audit_trail(
    bus: EventBus[Any],
    trail: AuditTrail,
    *,
    mapper: AuditMapper | None = None,
    mode: AuditMode = "queued",
    max_buffer_size: int = 4096,
    name: str = "audit",
    sink: AuditSink | None = None,
    resume: bool = False,
    on_sink_error: SinkErrorPolicy = "raise",
    sink_batch_size: int = 512,
    sink_buffer_size: int = 16_384,
) -> Auditor:
    """Record every event published on ``bus`` as an entry of ``trail``.

    Use the result either as an async context manager::

        async with attach_audit_trail(bus, trail) as auditor:
            bus.publish(AgentStarted(id=agent_id))
            await auditor.flush()
            assert trail.last(1)[0].action == AgentSpawn(task_type="started")

    or in a task group: ``auditor = await tg.start(attach_audit_trail(bus, trail))``.
    Either way it subscribes before it returns, so nothing published afterwards is missed.
    Leaving the ``async with`` block records what was already published, writes what is
    pending to the sink, then stops; in a task group, cancelling does the same.

    :param mapper: how events become entries (default: a fresh :class:`AuditMapper`).
    :param mode:

        * ``"queued"`` (default): a subscription with its own queue of ``max_buffer_size``
          (``drop_oldest``). Publishers never wait. When the consumer falls behind, the
          envelopes it loses become one ``EventsDropped(count, first_seq, last_seq)`` entry
          (actor ``"system"``) at the point of the gap, and ``audit_lagged`` is logged (at
          most once a second), so the trail never has a silent hole.
        * ``"lossless"``: a ``block`` subscription: nothing is lost; ``await bus.apublish()``
          waits for the auditor and ``bus.publish()`` raises :exc:`anyio.WouldBlock` when its
          queue is full.
        * ``"inline"``: a bus tap: each entry is appended inside ``publish`` itself, on the
          publisher's task. No task, no queue, never lags; in exchange every publish pays
          for mapping, redaction, encoding and hashing (one to two microseconds; see the
          project's measurements).

    :param max_buffer_size: the subscription's queue size (``queued``/``lossless``).
    :param name: the subscription's name, used in logs.
    :param sink: an :class:`~audit.sinks.AuditSink` every appended entry is written to, in
        batches of up to ``sink_batch_size``, from a worker thread. Entries wait for it in a
        buffer of ``sink_buffer_size``; when that is full, the ``queued``/``lossless``
        consumer waits (so the subscription absorbs the excess: ``queued`` then records
        ``EventsDropped``, ``lossless`` makes ``apublish`` wait), while ``inline`` cannot
        wait and counts the entries as ``sink_lost``. Publishers never wait on the sink.
        The auditor does not close the sink.
    :param resume: before consuming, reload the sink's newest entries into ``trail`` and
        continue its seq and hash chain (:meth:`AuditTrail.restore`), reading in a worker
        thread. Envelopes published meanwhile are kept (renumbered after the restored ones).
        Without it, a sink that already holds entries is refused when the auditor starts
        (:exc:`ValueError`) unless ``trail`` continues it: a restarted process must pass
        ``resume=True`` to append to its old store. ``trail`` continues a store that ends
        where it does, or at an entry it still holds: a trail attached to the store before
        (detached since, or kept after its sink failed, with ``on_sink_error="count"``).
        The auditor then first writes the store the entries it lacks (logging
        ``audit_sink_catching_up``), so the store ends up holding the trail's whole chain;
        if the trail has evicted some of them, it is refused, naming its oldest seq.
        ``resume=True`` with such a trail is refused too: it would record the store's
        entries twice. (The auditor reads the sink's newest entry, ``load_tail(1)``, in a
        worker thread before it attaches to the bus, so one refused records nothing; the
        read's own errors propagate.)
    :param on_sink_error: when a sink write fails (disk full, fsync error): ``"raise"``
        (default) lets the error end the auditor, so it surfaces from the ``async with``
        block or task group (in an :exc:`ExceptionGroup`); ``"count"`` logs
        ``audit_sink_failed``, counts it, and keeps auditing into the trail only. Either way
        the failed sink is not written again, and what it committed stays intact.
    :returns: an :class:`Auditor`, not yet started.
    :raises ValueError, TypeError: for bad arguments (at once); :exc:`ValueError` also when
        the auditor starts, for a non-empty sink it would not continue (see ``resume``),
        and the errors of reading the sink then (:exc:`anyio.ClosedResourceError` for a
        closed one, the store's own for one it cannot read).

    A mapping function or redactor that raises does not stop the consumer: the envelope is
    recorded as ``Other(detail="mapping_failed:{kind}:{error}")`` with actor ``"system"``,
    counted in ``failed``, and ``audit_mapping_failed`` is logged once per kind.
    """
    return Auditor(
        bus,
        trail,
        mapper=mapper,
        mode=mode,
        max_buffer_size=max_buffer_size,
        name=name,
        sink=sink,
        resume=resume,
        on_sink_error=on_sink_error,
        sink_batch_size=sink_batch_size,
        sink_buffer_size=sink_buffer_size,
    )
