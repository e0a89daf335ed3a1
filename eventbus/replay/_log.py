"""The session log format and its reader, :func:`read_log`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Final, Generic, NamedTuple, TypeVar, overload

import msgspec
import structlog

from .._bus import _check_positive_int, _kind_of
from .._envelope import Envelope
from ..codec import DEFAULT_MAX_DEPTH, DEFAULT_MAX_SIZE, decode_json, decode_oxios_json
from ..events import AnyKernelEvent, Category
from ..events._os import OS_EVENT_TYPES

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "LogGap",
    "SessionLog",
    "read_log",
]

T = TypeVar("T")

_log = structlog.get_logger("eventbus.replay")

DEFAULT_MAX_LINE_BYTES: Final = DEFAULT_MAX_SIZE
"""The default ``max_line_bytes`` of :func:`read_log`: 1 MiB, the codec's ``max_size``."""

# A line the recorder wrote for an envelope starts with the first key in sorted order.
_ENVELOPE_PREFIX: Final = b'{"causation_id":'
_GAP_PREFIX: Final = b'{"gap":'

_OS_TYPES: Final = frozenset(OS_EVENT_TYPES)

_type = type  # read_log's ``type`` parameter shadows the builtin


class LogGap(msgspec.Struct, frozen=True, kw_only=True):
    """A hole in a lossy recording: envelopes ``first_seq`` to ``last_seq`` were not recorded.

    A :class:`SessionLogRecorder` writes one gap marker line,
    ``{"gap":{"first_seq":..,"last_seq":..,"lost":..}}``, where the hole is: before the next
    envelope it recorded, or at the end of the log. A hole is what a drop policy lost, an
    envelope the recorder skipped (its line would be too long, too deep or unencodable), or
    what a cancelled exit did not write. ``lost`` is ``last_seq - first_seq + 1``.
    """

    first_seq: int
    last_seq: int
    lost: int


class _GapLine(msgspec.Struct, frozen=True):
    gap: LogGap


class _WireLabels(msgspec.Struct, frozen=True):
    # The taxonomy labels a Rust session log writes on each OS event (ignored by the catalogue).
    category: str | None = None
    primitive: str | None = None


class _EnvelopeLabels(msgspec.Struct, frozen=True):
    event: _WireLabels


class _RustEnvelope(msgspec.Struct, Generic[T], frozen=True):
    # Seed 002's ``KernelEventEnvelope``: seq, ts_ms, kind and the event_type-tagged event.
    seq: int
    ts_ms: int
    kind: str
    event: T


class _Labels(NamedTuple):
    """What :func:`log_has_required_categories` needs to know about one OS event line."""

    line: int
    native: bool  # written by a Rust kernel without our envelope
    category: str | None  # as written on the event, if at all
    primitive: str | None
    expected: Category  # the event class's category


class SessionLog(Generic[T]):
    """A session log read back by :func:`read_log`: its envelopes in file order, and what the
    reader found on the way.

    Iterating it (any number of times) yields the envelopes; ``len()`` counts them and
    indexing works as on a tuple. It is immutable once built.

    Attributes:
        path: The file it was read from.
        envelopes: Every envelope, in file order.
        gaps: The gap markers of a lossy recording, in file order (:class:`LogGap`).
        torn_lines: 1 if the final line was torn (cut off before its newline and not valid
            JSON) and skipped, else 0.
        line_count: The lines read, including gap markers and a torn final line.
    """

    __slots__ = ("_labels", "envelopes", "gaps", "line_count", "path", "torn_lines")

    def __init__(
        self,
        path: str,
        envelopes: tuple[Envelope[T], ...],
        gaps: tuple[LogGap, ...],
        torn_lines: int,
        line_count: int,
        labels: tuple[_Labels, ...],
    ) -> None:
        self.path = path
        self.envelopes = envelopes
        self.gaps = gaps
        self.torn_lines = torn_lines
        self.line_count = line_count
        self._labels = labels

    def __repr__(self) -> str:
        return (
            f"<SessionLog path={self.path!r} envelopes={len(self.envelopes)} "
            f"gaps={len(self.gaps)} torn_lines={self.torn_lines}>"
        )

    def __iter__(self) -> Iterator[Envelope[T]]:
        return iter(self.envelopes)

    def __len__(self) -> int:
        return len(self.envelopes)

    @overload
    def __getitem__(self, index: int) -> Envelope[T]: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Envelope[T], ...]: ...
    def __getitem__(self, index: int | slice) -> Envelope[T] | tuple[Envelope[T], ...]:
        return self.envelopes[index]

    @property
    def lost(self) -> int:
        """The envelopes the gap markers say were not recorded (0 for a lossless log)."""
        return sum(gap.lost for gap in self.gaps)


def _line_error(
    cls: type[msgspec.MsgspecError], name: str, lineno: int, message: str
) -> msgspec.MsgspecError:
    return cls(f"line {lineno} of {name}: {message}")


_tags: dict[type, str] = {}


def _tag_of(event: object) -> str:
    cls = type(event)
    tag = _tags.get(cls)
    if tag is None:
        tag = _tags[cls] = _kind_of(cls)
    return tag


@overload
def read_log(
    path: str | os.PathLike[str],
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> SessionLog[AnyKernelEvent]: ...
@overload
def read_log(
    path: str | os.PathLike[str],
    *,
    type: type[T],
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> SessionLog[T]: ...
@overload
def read_log(
    path: str | os.PathLike[str],
    *,
    type: Any,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> SessionLog[Any]: ...
def read_log(
    path: str | os.PathLike[str],
    *,
    type: Any = AnyKernelEvent,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> SessionLog[Any]:
    """Read a session log file into a :class:`SessionLog`: every envelope, in file order.

    The whole file is read and validated before this returns; it holds every envelope in
    memory. Each line is one JSON object, in one of these forms (they may be mixed):

    * an envelope, as :class:`SessionLogRecorder` writes it (canonical JSON from
      :func:`eventbus.codec.encode_json`), kept exactly as recorded;
    * a gap marker ``{"gap": {...}}`` from a lossy recording, collected in ``gaps``;
    * a Rust turn-loop envelope (seed 002's ``{"seq", "ts_ms", "kind", "event"}``), read with
      its ``seq`` and ``ts_ns = ts_ms * 1_000_000``;
    * a bare ``event_type``-tagged event (a Rust session or turn-loop log), or an oxios event
      in serde's externally tagged form (``{"AgentStarted": {...}}``, see
      :func:`eventbus.codec.decode_oxios_json`), without an envelope.

    For the last two forms and the Rust envelope the reader synthesises an envelope: ``seq``
    is the line number (1-based; the Rust envelope's own ``seq`` when it has one),
    ``event_id`` is ``"line-<n>"``, ``ts_ns`` is 0 (unknown), ``kind`` is the event's tag,
    no correlation or causation ids, ``replayed`` false.

    :param path: the log file.
    :param type: what events decode as: the built-in catalogue by default, or your union
        (``MyEvent | AnyKernelEvent``) for logs that carry your own events. Oxios lines always
        decode as built-in supervisor events.
    :param max_line_bytes: the longest line accepted, newline excluded (default 1 MiB). The
        file is read line by line with this bound, so an oversized line is never held whole.
    :param max_depth: the deepest nesting accepted in a line, as the codec counts it
        (default :data:`~eventbus.codec.DEFAULT_MAX_DEPTH`, 64); raise it, with
        ``max_line_bytes``, for a log that records deeply nested tool arguments.
    :returns: the :class:`SessionLog`.
    :raises FileNotFoundError, OSError: if the file cannot be read.
    :raises msgspec.DecodeError: for a line that is not JSON (or not UTF-8), empty, longer
        than ``max_line_bytes`` or nested deeper than ``max_depth``, anywhere but as the
        torn final line; the message starts with ``line <n> of <file>:``.
    :raises msgspec.ValidationError: for a line that is JSON but not a valid record (unknown
        ``event_type``, missing field, an envelope whose ``kind`` is not its event's tag...);
        the message starts the same way.
    :raises ValueError: if ``max_line_bytes`` or ``max_depth`` is below 1.
    :raises TypeError: if ``max_line_bytes`` or ``max_depth`` is not an int.

    Crash safety: the recorder ends every line with ``\\n``, so a final line without one
    was cut off mid-write. If it is not well-formed JSON it is *skipped*: ``torn_lines`` is
    1 and a ``session_log_torn_tail`` warning is logged. If it decodes it is kept (the record
    is whole; Rust logs often omit the last newline); if it is whole JSON but not a valid
    record, that is an error (a cut-off write always loses the closing brace). A bad line
    anywhere else is an error, never skipped.

    Not checked: that ``seq`` increases (a log appended to by several runs may restart it;
    :func:`replay` checks when it needs to).
    """
    _check_positive_int("max_line_bytes", max_line_bytes)
    _check_positive_int("max_depth", max_depth)
    name = os.fspath(path)
    envelopes: list[Envelope[Any]] = []
    gaps: list[LogGap] = []
    labels: list[_Labels] = []
    torn = 0
    lineno = 0
    envelope_type: Any = Envelope[type]
    rust_type: Any = _RustEnvelope[type]
    with open(name, "rb") as f:
        while True:
            line = f.readline(max_line_bytes + 1)
            if not line:
                break
            lineno += 1
            terminated = line.endswith(b"\n")
            if terminated:
                line = line[:-1]
            if len(line) > max_line_bytes:
                raise _line_error(
                    msgspec.DecodeError,
                    name,
                    lineno,
                    f"line is longer than max_line_bytes={max_line_bytes}",
                )
            try:
                _read_line(
                    line,
                    lineno,
                    max_depth,
                    type,
                    envelope_type,
                    rust_type,
                    envelopes,
                    gaps,
                    labels,
                )
            except msgspec.MsgspecError as exc:
                # A cut-off write loses at least the closing brace: malformed, not invalid.
                if not terminated and not isinstance(exc, msgspec.ValidationError):
                    torn = 1
                    _log.warning("session_log_torn_tail", path=name, line=lineno, size=len(line))
                    break
                raise _line_error(_type(exc), name, lineno, str(exc)) from exc
    return SessionLog(name, tuple(envelopes), tuple(gaps), torn, lineno, tuple(labels))


def _read_line(
    line: bytes,
    lineno: int,
    depth: int,
    event_type: Any,
    envelope_type: Any,
    rust_type: Any,
    envelopes: list[Envelope[Any]],
    gaps: list[LogGap],
    labels: list[_Labels],
) -> None:
    """Decode one line and append what it holds; raise a msgspec error if it is bad."""
    size = len(line) + 1
    if line.startswith(_ENVELOPE_PREFIX):
        envelope = decode_json(line, envelope_type, max_size=size, max_depth=depth)
        _check_kind(envelope.kind, envelope.event)
        if type(envelope.event) in _OS_TYPES:
            # The bus never encodes a category: decode the labels only if the line has some.
            if b'"category"' in line or b'"primitive"' in line:
                wire = decode_json(line, _EnvelopeLabels, max_size=size, max_depth=depth).event
                category, primitive = wire.category, wire.primitive
            else:
                category = primitive = None
            labels.append(_Labels(lineno, False, category, primitive, envelope.event.category))
        envelopes.append(envelope)
        return
    if line.startswith(_GAP_PREFIX):
        gaps.append(decode_json(line, _GapLine, max_size=size, max_depth=depth).gap)
        return
    if not line.strip():
        raise msgspec.DecodeError("empty line")
    probe = decode_json(line, Any, max_size=size, max_depth=depth)
    if not isinstance(probe, dict):
        raise msgspec.ValidationError(f"Expected `object`, got `{type(probe).__name__}`")
    native = True
    if "event" in probe and "event_id" in probe:  # an envelope in another key order
        envelope = decode_json(line, envelope_type, max_size=size, max_depth=depth)
        _check_kind(envelope.kind, envelope.event)
        native = False
        raw_event = probe["event"]
    elif "event" in probe and "ts_ms" in probe:
        rust = decode_json(line, rust_type, max_size=size, max_depth=depth)
        _check_kind(rust.kind, rust.event)
        envelope = Envelope(
            rust.seq, f"line-{lineno}", rust.ts_ms * 1_000_000, rust.kind, rust.event
        )
        raw_event = probe["event"]
    elif "event_type" in probe:
        event = decode_json(line, event_type, max_size=size, max_depth=depth)
        envelope = Envelope(lineno, f"line-{lineno}", 0, _tag_of(event), event)
        raw_event = probe
    elif "gap" in probe:
        gaps.append(decode_json(line, _GapLine, max_size=size, max_depth=depth).gap)
        return
    elif len(probe) == 1 and next(iter(probe))[:1].isupper():
        event = decode_oxios_json(line, max_size=size, max_depth=depth)
        envelope = Envelope(lineno, f"line-{lineno}", 0, _tag_of(event), event)
        raw_event = None
    else:
        raise msgspec.ValidationError(
            "Expected an envelope, a gap marker, an `event_type`-tagged event or an "
            "externally tagged oxios event - at `$`"
        )
    if type(envelope.event) in _OS_TYPES:
        category = primitive = None
        if isinstance(raw_event, dict):
            category = raw_event.get("category")
            primitive = raw_event.get("primitive")
        labels.append(
            _Labels(
                lineno,
                native,
                category if isinstance(category, str) else None,
                primitive if isinstance(primitive, str) else None,
                envelope.event.category,
            )
        )
    envelopes.append(envelope)


def _check_kind(kind: str, event: object) -> None:
    tag = _tag_of(event)
    if kind != tag:
        raise msgspec.ValidationError(
            f"envelope kind {kind!r} does not match the event's tag {tag!r}"
        )
