"""A bridge between a local :class:`~eventbus.EventBus` and NATS (optionally JetStream).

Install it with ``pip install 'kernel-eventbus[nats]'`` (client: ``nats-py``).

.. code-block:: python

    async with EventBus() as bus, NatsBridge(bus, "nats://127.0.0.1:4222") as bridge:
        bus.publish(AgentStarted(...))      # also reaches every other bridged process
        ...
        print(bridge.statistics())

Use it when several processes or machines must see each other's events, or feed one audit
trail; inside one process the bus alone is faster and lossless where it must be.

Export
------
The bridge subscribes to the local bus like any consumer: its own bounded queue
(``max_buffer_size``, ``drop_oldest``), so a slow or disconnected link never slows the
publisher, and every envelope it loses is counted as the subscription's lag
(``statistics().export_lagged``, and the bus's ``subscription_lagged`` log line). It exports
only envelopes published locally (``origin is None``): an envelope imported from another node
is never sent again, which is what keeps three or more nodes free of echo loops.

Each envelope is encoded with :mod:`eventbus.codec` (MessagePack by default, ``codec="json"``,
or any :class:`Codec`) as ``Envelope[event_type]`` (``event_type`` defaults to
``AnyKernelEvent``; pass ``MyEvent | AnyKernelEvent`` for custom events), with
``origin`` set to this bridge's ``node_id``, and published to ``{prefix}.{category}.{kind}``,
where ``category`` is the ``.value`` of the event class's ``category`` class attribute (the
catalogue's ``Category`` enum), or ``"other"`` for classes without one. Headers:
``Nats-Msg-Id`` is the ``event_id`` (JetStream drops a retried duplicate within its duplicate
window) and ``Eventbus-Origin`` the node id.

An envelope that cannot be exported is counted (``export_failed``), logged
(``nats_export_failed`` with its ``event_id`` and the reason) and skipped; export goes on with
the next. That is one the codec cannot encode, a payload larger than ``max_message_bytes``,
or a message larger than the server's ``max_payload`` or, with JetStream, the stream's
``max_msg_size``. Those two limits count the NATS headers with the payload, and are checked
before each publish against the connection in use, so a server restarted with a smaller
``max_payload`` is honoured after the reconnection (the server closes a connection that sends
a message over it).

Import
------
The bridge subscribes to ``{prefix}.>`` (or to the given ``kinds``), decodes each message and
delivers it with :meth:`EventBus.publish_envelope <eventbus.EventBus.publish_envelope>`: the
envelope keeps the remote ``event_id``, ``ts_ns``, ``kind``, correlation and causation ids and
its ``origin`` (the remote node id); only ``seq`` is the local bus's. Messages whose origin is
this bridge's ``node_id`` are skipped (counted as ``import_echoes``). When a local ``block``
subscription is full, the import waits for room rather than dropping.

A malformed message (it does not decode) is counted, logged (``nats_message_malformed``) and
skipped; a message larger than ``max_message_bytes`` is rejected before decoding (counted,
``nats_message_oversized`` with its size and the limit). The bridge keeps running. These log
lines are throttled: the 1st, 2nd, 4th, 8th, ... occurrence of each is logged, with the count.

JetStream
---------
With ``jetstream=True`` the bridge binds the stream ``stream``, creating it if missing with
subjects ``{prefix}.>`` and the limits in ``stream_config`` (any ``nats.js.api.StreamConfig``
field: ``max_msgs``, ``max_bytes``, ``max_age``, ``storage``, ``duplicate_window``, ...).

* Export publishes with acknowledgement, pipelined in batches; a batch whose acks do not all
  arrive (disconnection, ``ack_timeout``, JetStream not ready) is published again from its
  first unacknowledged envelope, with the same ``Nats-Msg-Id``, until the stream accepts it,
  so order is kept and the stream de-duplicates. While this waits, new envelopes wait in the
  export queue, up to its bound, and what overflows is counted as lag. The stream's
  ``max_msg_size`` is read when the stream is bound, again when acks fail while the link
  holds (nats-py reports a publish the stream refused as a missing ack): an envelope over a
  limit lowered while the bridge runs fails after one ``ack_timeout`` instead of blocking the
  export; and again before an envelope is refused for it, so a limit raised while the bridge
  runs is honoured at once.
* Import reads through a pull consumer. With ``durable="name"`` it is a durable consumer: the
  first run creates it (from ``start_seq``, else from the start of the stream), later runs
  resume after the last acknowledged message, so a restarted audit process neither misses nor
  repeats what it had acknowledged. Without ``durable`` the consumer is ephemeral and starts
  at ``start_seq`` or with new messages. A consumer found with unacknowledged deliveries
  (a previous process died mid-batch, or the link dropped during a fetch) is recreated at its
  acknowledgement floor, so those messages come again at once and in order instead of after
  ``ack_wait``; the bridge skips the ones it had already delivered in this process. A durable
  consumer therefore belongs to one bridge at a time. A message is acknowledged after it
  was delivered to the local bus and, when ``ack_barrier`` is given, after
  ``await ack_barrier()`` returned for its batch: pass the audit consumer's flush so a message
  is acknowledged only once its entry is stored.

Faults
------
The bridge connects once in ``__aenter__`` and fails at once with :exc:`ConnectionError` if it
cannot (server unreachable, authorization refused, TLS failure), with the server's reason in
the message. Afterwards it reconnects forever (every ``reconnect_time_wait`` seconds). While
disconnected, export waits with envelopes in its bounded queue; with JetStream they are
published after the reconnection, without loss unless the queue overflowed (counted). Core
NATS is at-most-once by design: messages in flight when a connection breaks, or published while
an importer is away, are lost by the server; use JetStream where loss matters.

With JetStream, after each reconnection (and when a publish finds no stream, or a fetch fails)
the bridge binds the stream again, so a server that came back without its JetStream state (a
store directory emptied or lost, a server without persistent storage) is recovered from: the
export creates the stream again as at the start (``nats_stream_recreated``, logged once per
recovery) and publishes what it holds into it; the import creates its consumer again, a
durable one under the same name (``nats_consumer_recreated``, once per recovery). When the
stream itself was lost (it is missing, or has another creation time), the new consumer starts
at the start of the new, empty stream, so it imports everything exported since; what the old
stream held and this importer had not yet received is gone with the server's storage and
cannot be recovered. When only the consumer was lost, the new one starts after the last
message this process delivered to its bus (or where the first consumer started, if it had
delivered nothing), so nothing stored meanwhile is missed and nothing is delivered twice.
While JetStream is not ready, binding is retried with a back-off.

A consumer deleted while the link holds (``nats consumer rm``, the JetStream API, an
ephemeral consumer expired by the server) is noticed without a reconnection: nats-py's
``fetch`` from a missing consumer times out exactly as when no message came (the server does
not answer), so an idle import asks JetStream whether its consumer still exists about once a
second (one small API request) and, if it is gone, creates it again as above
(``nats_consumer_recreated``, once).

A connection closed for good (nats-py closes it after any error the server reports) stops the
export: ``flush()`` raises :exc:`~anyio.ClosedResourceError`, and closing the bridge counts
what is left as ``export_abandoned``.

Logging while NATS is down
--------------------------
An outage repeats the same failure: nats-py reports every reconnection attempt (each
``reconnect_time_wait``), and the import and export loops retry what failed. Each such
failure is logged once, then summarised, per trouble (the link, the import, the export):

* the first failure of each kind (its log event and its error's type and text; an
  ``OSError`` by its ``errno``, since its text names the server address) is logged at once,
  with the error: ``nats_error``, ``nats_fetch_failed``, ``nats_consumer_check_failed``,
  ``nats_stream_bind_failed``, ``nats_consumer_bind_failed``, ``nats_ack_failed``,
  ``nats_export_retry``, ``nats_stream_info_failed``; a different error is logged at once;
* repeats are counted, not logged; one that comes 30 s or more after its kind's last line
  logs ``{event}_repeated`` with ``repeated`` (since that line), ``total``, ``for_s`` (since
  the trouble began) and the latest error: an hour-long outage costs about 120 lines per kind
  instead of 7,200;
* the end of the trouble is logged with its totals: ``nats_reconnected`` with ``down_s``,
  ``errors`` and ``suppressed`` (errors not logged on their own line); ``nats_import_recovered``
  and ``nats_export_recovered`` with ``failures``, ``suppressed`` and ``duration_s``. The next
  failure then starts a new trouble, logged at once.

Every failure is counted in :meth:`~NatsBridge.statistics`: ``link_errors`` (what nats-py
reported) and ``retried_errors`` (what the loops retried).

Backends
--------
nats-py is written for asyncio only, so the bridge runs only on anyio's asyncio backend;
under trio ``__aenter__`` raises :exc:`RuntimeError`. The bus itself works on both.

Statistics
----------
:meth:`NatsBridge.statistics` returns a :class:`BridgeStatistics`. Once the bridge is closed,
for the export side::

    matched == exported + export_lagged + export_failed + export_abandoned

where ``matched`` is every local envelope its subscription matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from types import TracebackType
from typing import Any, Final, Generic, TypeVar

import anyio
import msgspec
import structlog
from anyio import ClosedResourceError, EndOfStream, WouldBlock

try:
    import nats
    import nats.errors
    import nats.js
    import nats.js.api
    import nats.js.errors
    from nats.aio.client import Client as _NatsClient
    from nats.aio.msg import Msg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "eventbus.bridges.nats needs nats-py: pip install 'kernel-eventbus[nats]'"
    ) from exc

from .._bus import EventBus, Subscription, _check_kinds, _check_positive_int, _kind_of
from .._envelope import Envelope
from ..events import AnyKernelEvent
from ._codec import Codec, CodecName, json_codec, msgpack_codec, resolve_codec

__all__ = [
    "MSG_ID_HEADER",
    "ORIGIN_HEADER",
    "BridgeStatistics",
    "Codec",
    "NatsBridge",
    "json_codec",
    "msgpack_codec",
    "subject_for",
]

T = TypeVar("T", bound=msgspec.Struct)

#: The header JetStream de-duplicates on; the bridge sets it to the envelope's ``event_id``.
MSG_ID_HEADER: Final = "Nats-Msg-Id"
#: The header that carries the exporting bridge's ``node_id``.
ORIGIN_HEADER: Final = "Eventbus-Origin"

_DEFAULT_MAX_MESSAGE_BYTES: Final = 1 << 20
# A failure that recurs (a reconnection attempt twice a second while the server is down, a
# fetch JetStream keeps refusing) is logged once, then summarised at most this often. 30 s:
# an hour-long outage costs about 120 lines per condition instead of 7,200, and an operator
# tailing the log, or an alert over a one-minute window, still sees that it persists, with
# its latest error.
_REPEAT_LOG_INTERVAL: Final = 30.0
# Distinct errors of one episode logged at once (each a line); further kinds are counted
# with the first of their log event, so a client that invents a new message per failure
# cannot flood the log either.
_MAX_CONDITIONS: Final = 8
# An idle JetStream import asks this often (seconds) whether its consumer still exists: a
# fetch from a deleted consumer only times out. One small API request per idle second.
_CONSUMER_CHECK_INTERVAL: Final = 1.0
_EXPORT_BATCH: Final = 256
# The server counts a message's header block against its max_payload, nats-py does not: the
# block is "NATS/1.0\r\n", then "Name: value\r\n" per header, then "\r\n".
_HEADER_BLOCK_BYTES: Final = len(b"NATS/1.0\r\n\r\n")
_MSG_ID_LINE_BYTES: Final = len(f"{MSG_ID_HEADER}: \r\n")

# One encoded envelope: subject, payload, headers, and the bytes the server counts against its
# max_payload (payload and header block).
_Item = tuple[str, bytes, dict[str, str], int]

_log = structlog.get_logger("eventbus.bridges.nats")

# Errors of a broken or re-establishing link: wait for the connection and try again.
_LINK_ERRORS: Final = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    OSError,
    TimeoutError,
)


class _DefaultEventType:
    """The default of ``NatsBridge(event_type=...)``: :data:`~eventbus.events.AnyKernelEvent`.

    A stand-in, so that ``help(NatsBridge)`` and ``inspect.signature`` show the alias's name:
    the union itself as the default would print all its member classes (about 85). The
    bridge replaces it with the union before using it; type checkers see ``event_type: Any``
    either way.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "AnyKernelEvent"


_ANY_KERNEL_EVENT: Final = _DefaultEventType()


def _category_of(event_type: type) -> str:
    category = getattr(event_type, "category", None)
    if category is None:
        return "other"
    return str(getattr(category, "value", category))


def _check_token(value: str, what: str) -> str:
    if not value or any(c in value for c in " \t\r\n.*>"):
        raise ValueError(
            f"{what} must be a non-empty NATS subject token (no spaces, '.', '*' or '>'), "
            f"got {value!r}"
        )
    return value


def subject_for(event_type: type, prefix: str = "kernel") -> str:
    """Return the subject the bridge publishes events of ``event_type`` to.

    :returns: ``"{prefix}.{category}.{kind}"``, where ``category`` is the ``.value`` of the
        class attribute ``category`` (``"other"`` when the class has none) and ``kind`` the
        event's tag (its class name when untagged).
    :raises ValueError: if the category or kind is not a valid subject token.
    :raises TypeError: if ``event_type`` is not a ``msgspec.Struct`` class.
    """
    category = _check_token(_category_of(event_type), "the event category")
    kind = _check_token(_kind_of(event_type), "the event kind")
    return f"{prefix}.{category}.{kind}"


@dataclass(frozen=True, slots=True)
class BridgeStatistics:
    """A point-in-time view of a :class:`NatsBridge`, returned by its ``statistics()``.

    Attributes:
        node_id: This bridge's node id (the ``origin`` of what it exports).
        connected: Whether the NATS connection is up now.
        exported: Envelopes published to NATS (with JetStream: acknowledged by the stream).
        export_lagged: Envelopes lost by the export subscription's bounded queue (its lag).
        export_buffered: Envelopes waiting in the export queue now.
        export_failed: Envelopes that could not be exported at all: not encodable, a payload
            larger than ``max_message_bytes``, or, headers included, larger than the server's
            ``max_payload`` or the stream's ``max_msg_size``. Each is logged.
        export_retries: Publishes repeated after a disconnection or a missing acknowledgement.
        export_abandoned: Envelopes still queued or unacknowledged when the bridge closed and
            its ``close_timeout`` ran out. Logged.
        imported: Envelopes delivered to the local bus.
        import_echoes: Messages that came from this node, skipped.
        malformed: Messages that did not decode, skipped.
        oversized: Messages larger than ``max_message_bytes``, skipped.
        import_dropped: Messages the NATS client dropped because the import fell behind
            (core NATS slow consumer), or that arrived after the local bus closed.
        disconnects: Connections lost since the bridge started.
        reconnects: Connections re-established since the bridge started.
        link_errors: Errors the NATS client reported: each failed reconnection attempt,
            a connection lost, an error the server sent. Slow consumers are counted in
            ``import_dropped`` instead.
        retried_errors: Operations of the bridge's loops that failed and were tried again:
            binding the stream or the import consumer, checking the consumer, fetching,
            acknowledging, reading the stream's limits, publishing a batch (the envelopes
            it held are counted in ``export_retries``).
    """

    node_id: str
    connected: bool
    exported: int
    export_lagged: int
    export_buffered: int
    export_failed: int
    export_retries: int
    export_abandoned: int
    imported: int
    import_echoes: int
    malformed: int
    oversized: int
    import_dropped: int
    disconnects: int
    reconnects: int
    link_errors: int
    retried_errors: int


class _Counters:
    """The bridge's mutable counters (one object, plain attributes: cheap to bump)."""

    def __init__(self) -> None:
        self.disconnects = 0
        self.export_abandoned = 0
        self.export_failed = 0
        self.export_retries = 0
        self.exported = 0
        self.import_dropped = 0
        self.import_echoes = 0
        self.imported = 0
        self.link_errors = 0
        self.malformed = 0
        self.oversized = 0
        self.reconnects = 0
        self.retried_errors = 0

    def bump(self, name: str) -> int:
        """Add one to ``name``; return the new value."""
        value: int = getattr(self, name) + 1
        setattr(self, name, value)
        return value


def _condition_of(event: str, error: BaseException) -> tuple[str, str, object]:
    """What makes two failures "the same": their log event and the kind of error.

    An ``OSError``'s text names the address it failed on (each server of the pool in turn),
    so its ``errno`` stands for it; other errors are told apart by type and text (a
    JetStream API error's text has its code and description).
    """
    if isinstance(error, OSError) and error.errno is not None:
        return event, type(error).__qualname__, error.errno
    return event, type(error).__qualname__, str(error)


def _describe(error: BaseException) -> str:
    """The error's type and text: ``repr`` shows neither for nats-py's JetStream errors."""
    name, text = type(error).__name__, str(error)
    if not text:
        return name
    return text if name in text else f"{name}: {text}"


class _Condition:
    __slots__ = ("count", "last_line", "unlogged")

    def __init__(self, now: float) -> None:
        self.count = 1  # failures of this condition in the episode
        self.unlogged = 0  # of which not logged, since its last line
        self.last_line = now


@dataclass(frozen=True, slots=True)
class _Episode:
    failures: int
    suppressed: int
    duration_s: float


class _Repeats:
    """The log lines of one recurring trouble: the link, the import loop, the export loop.

    An episode runs from a first failure until :meth:`end` (the link is back, the loop
    works again). In it, the first failure of each condition (see :func:`_condition_of`) is
    logged at once with its error; later ones are counted, not logged, and a failure that
    comes ``interval`` seconds or more after its condition's last line logs
    ``{event}_repeated`` with the count since that line and the error. :meth:`end` returns
    the episode's totals and forgets its conditions, so the next episode logs again.

    The caller passes the time, read from its clock: tests drive it without sleeping.
    """

    __slots__ = ("_conditions", "failures", "interval", "started", "suppressed")

    def __init__(self, interval: float = _REPEAT_LOG_INTERVAL) -> None:
        self.interval = interval
        self.started: float | None = None
        self.failures = 0
        self.suppressed = 0
        self._conditions: dict[tuple[str, str, object], _Condition] = {}

    def failed(self, now: float, event: str, error: BaseException, **context: Any) -> None:
        """Count one failure; log it if it is the first of its condition, or summarise."""
        if self.started is None:
            self.started = now
        self.failures += 1
        key = _condition_of(event, error)
        condition = self._conditions.get(key)
        if condition is None and len(self._conditions) >= _MAX_CONDITIONS:
            key = (event, "", None)  # one more condition per event at most: "other errors"
            condition = self._conditions.get(key)
        if condition is None:
            self._conditions[key] = _Condition(now)
            _log.warning(event, **context, error=_describe(error))
            return
        condition.count += 1
        condition.unlogged += 1
        self.suppressed += 1
        if now - condition.last_line >= self.interval:
            _log.warning(
                f"{event}_repeated",
                **context,
                error=_describe(error),
                repeated=condition.unlogged,
                total=condition.count,
                for_s=round(now - self.started, 3),
            )
            condition.last_line = now
            condition.unlogged = 0

    def end(self, now: float) -> _Episode | None:
        """Close the episode; return its totals, or None if nothing failed."""
        started = self.started
        if started is None:
            return None
        episode = _Episode(self.failures, self.suppressed, round(now - started, 3))
        self.started = None
        self.failures = self.suppressed = 0
        self._conditions.clear()
        return episode


class NatsBridge(Generic[T]):
    """Carries envelopes between a local bus and NATS; an async context manager.

    See the module documentation for the full contract.

    :param bus: the local bus.
    :param servers: a NATS URL or a list of them.
    :param event_type: the event class or union of tagged classes that imported messages
        decode to: ``AnyKernelEvent`` (default), or e.g. ``MyEvent | AnyKernelEvent``.
    :param subject_prefix: the first subject token(s); default ``"kernel"``.
    :param node_id: this process's id, put in every exported envelope's ``origin`` and
        ``Eventbus-Origin`` header; default random. Give every bridged process a different
        one. Printable, without leading or trailing spaces (a header value loses them).
    :param export: publish local envelopes to NATS.
    :param import_: deliver envelopes from NATS into the local bus.
    :param kinds: only these event classes or tags cross the bridge, in both directions.
    :param jetstream: use JetStream (stream, acknowledged publishes, consumers).
    :param stream: the JetStream stream name.
    :param stream_config: ``StreamConfig`` fields used when the stream is created.
    :param durable: name of a durable consumer for import (JetStream only).
    :param start_seq: stream sequence the import consumer starts at when it is created.
    :param ack_barrier: awaited after each imported batch, before its messages are
        acknowledged (JetStream only).
    :param ack_wait: seconds JetStream waits for an acknowledgement before redelivering.
    :param codec: ``"msgpack"`` (default), ``"json"`` or a :class:`Codec`.
    :param max_buffer_size: capacity of the export subscription's queue.
    :param max_message_bytes: larger messages are refused in both directions.
    :param fetch_batch: most messages fetched from a JetStream consumer at once.
    :param fetch_timeout: seconds a JetStream fetch waits; bounds import latency when idle.
    :param ack_timeout: seconds an exported batch waits for its JetStream acknowledgements.
    :param close_timeout: seconds ``__aexit__`` spends exporting what is still queued.
    :param user, password, token: credentials, passed to ``nats.connect``.
    :param tls, tls_hostname: an :class:`ssl.SSLContext` and the name to verify, passed on.
    :param connect_timeout: seconds for the first connection and each reconnection attempt.
    :param reconnect_time_wait: seconds between reconnection attempts.
    :param connect_options: any other ``nats.connect`` keyword arguments.
    :raises ValueError: for a bad prefix, node id, size, timeout or option combination, or
        empty ``kinds``.
    :raises TypeError: if ``bus`` is not an :class:`EventBus`, ``codec`` is not a codec, a
        size is not an int, or ``kinds`` holds something that is neither an event class nor
        a tag string.
    """

    def __init__(
        self,
        bus: EventBus[T],
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        event_type: Any = _ANY_KERNEL_EVENT,
        subject_prefix: str = "kernel",
        node_id: str | None = None,
        export: bool = True,
        import_: bool = True,
        kinds: Iterable[type | str] | None = None,
        jetstream: bool = False,
        stream: str = "KERNEL_EVENTS",
        stream_config: Mapping[str, Any] | None = None,
        durable: str | None = None,
        start_seq: int | None = None,
        ack_barrier: Callable[[], Awaitable[object]] | None = None,
        ack_wait: float = 30.0,
        codec: CodecName | Codec[Any] = "msgpack",
        max_buffer_size: int = 1024,
        max_message_bytes: int = _DEFAULT_MAX_MESSAGE_BYTES,
        fetch_batch: int = 256,
        fetch_timeout: float = 0.25,
        ack_timeout: float = 5.0,
        close_timeout: float = 5.0,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        tls_hostname: str | None = None,
        connect_timeout: float = 2.0,
        reconnect_time_wait: float = 0.5,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(bus, EventBus):
            raise TypeError(f"bus must be an EventBus, got {type(bus).__name__}")
        if not isinstance(subject_prefix, str) or not subject_prefix:
            raise ValueError(f"subject_prefix must be a non-empty str, got {subject_prefix!r}")
        for token_ in subject_prefix.split("."):
            _check_token(token_, "each subject_prefix token")
        if node_id is None:
            node_id = os.urandom(8).hex()
        elif (
            not isinstance(node_id, str)
            or not node_id
            or not node_id.isprintable()
            or node_id != node_id.strip()  # nats-py strips header values
        ):
            raise ValueError(
                "node_id must be a non-empty printable str without leading or trailing "
                f"spaces, got {node_id!r}"
            )
        if not (export or import_):
            raise ValueError("export and import_ must not both be false")
        if not jetstream and (durable is not None or start_seq is not None):
            raise ValueError("durable and start_seq need jetstream=True")
        if not jetstream and ack_barrier is not None:
            raise ValueError("ack_barrier needs jetstream=True")
        if start_seq is not None and (isinstance(start_seq, bool) or start_seq < 1):
            raise ValueError(f"start_seq must be >= 1, got {start_seq!r}")
        for name, value in (
            ("max_buffer_size", max_buffer_size),
            ("max_message_bytes", max_message_bytes),
            ("fetch_batch", fetch_batch),
        ):
            _check_positive_int(name, value)
        for name, seconds in (
            ("fetch_timeout", fetch_timeout),
            ("ack_timeout", ack_timeout),
            ("ack_wait", ack_wait),
            ("connect_timeout", connect_timeout),
            ("reconnect_time_wait", reconnect_time_wait),
        ):
            if not seconds > 0:
                raise ValueError(f"{name} must be > 0, got {seconds!r}")
        if not close_timeout >= 0:
            raise ValueError(f"close_timeout must be >= 0, got {close_timeout!r}")
        if durable is not None:
            _check_token(durable, "durable")
        _check_token(stream, "stream")
        if event_type is _ANY_KERNEL_EVENT:
            event_type = AnyKernelEvent

        self._bus = bus
        self._servers = [servers] if isinstance(servers, str) else list(servers)
        self._event_type = event_type
        self._prefix = subject_prefix
        self._node_id = node_id
        self._export = export
        self._import = import_
        # Checked as the bus checks a subscription's kinds, also when nothing is exported.
        self._kinds = None if kinds is None else _check_kinds(kinds)
        self._kind_names: frozenset[str] | None = None
        if self._kinds is not None:
            self._kind_names = frozenset(
                _check_token(k if isinstance(k, str) else _kind_of(k), "each kind")
                for k in self._kinds
            )
        self._jetstream = jetstream
        self._stream = stream
        self._stream_config = dict(stream_config or {})
        self._durable = durable
        self._start_seq = start_seq
        self._ack_barrier = ack_barrier
        self._ack_wait = float(ack_wait)
        self._codec = resolve_codec(codec, event_type, max_message_bytes)
        self._max_buffer_size = max_buffer_size
        self._max_bytes = max_message_bytes
        # The header block less the event id, which is the same for every envelope.
        self._header_bytes = (
            _HEADER_BLOCK_BYTES
            + _MSG_ID_LINE_BYTES
            + len(f"{ORIGIN_HEADER}: {node_id}\r\n".encode())
        )
        self._fetch_batch = fetch_batch
        self._fetch_timeout = float(fetch_timeout)
        self._ack_timeout = float(ack_timeout)
        self._close_timeout = float(close_timeout)
        self._connect_kwargs: dict[str, Any] = {
            "user": user,
            "password": password,
            "token": token,
            "tls": tls,
            "tls_hostname": tls_hostname,
            "connect_timeout": connect_timeout,
            "reconnect_time_wait": reconnect_time_wait,
        }
        self._connect_kwargs.update(connect_options or {})

        self._c = _Counters()
        self._nc: _NatsClient | None = None
        self._js: nats.js.JetStreamContext | None = None
        self._sub: Subscription[T] | None = None
        self._pull: nats.js.JetStreamContext.PullSubscription | None = None
        self._core_subs: list[Any] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self._subjects: dict[type, str | None] = {}
        self._connecting = True
        self._connect_failed = False
        self._entered = False
        self._closed = False
        self._stopping_import = False
        self._link_up = asyncio.Event()
        self._link_lost = asyncio.Event()
        self._export_idle = asyncio.Event()
        self._export_idle.set()
        self._export_stopped = False  # the export loop ended: the connection closed under it
        self._in_hand = 0
        self._import_done = asyncio.Event()
        self._delivered_seq = 0  # stream seq of the last message delivered to the bus
        # The stream seq the first import consumer started after. One recreated before
        # anything was delivered (deleted by an operator, an ephemeral one expired) starts
        # there too, not at "new" messages, which would lose those published meanwhile.
        self._consumer_floor = 0
        self._stream_max_msg_size = 0  # the stream's limit (JetStream), <= 0: none
        # The export binds the stream again after each reconnection, or when a publish
        # finds no stream: the server may have come back without its JetStream state.
        self._export_bound_at = 0  # the reconnects count when the export last bound it
        self._export_rebind = False
        # The ``created`` time of the stream the import consumer reads (None: unknown).
        self._import_stream_created: object = None
        # Recurring failures are logged once, then summarised (see _Repeats). The clock is
        # an attribute so that tests can drive time.
        self._clock: Callable[[], float] = time.monotonic
        self._link_trouble = _Repeats()
        self._import_trouble = _Repeats()
        self._export_trouble = _Repeats()
        self._down_since: float | None = None  # when the link was lost, on the clock

    def __repr__(self) -> str:
        mode = "jetstream" if self._jetstream else "core"
        return f"<NatsBridge node_id={self._node_id!r} {mode} servers={self._servers!r}>"

    @property
    def node_id(self) -> str:
        """This bridge's node id: the ``origin`` of every envelope it exports."""
        return self._node_id

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> NatsBridge[T]:
        """Connect, bind the stream and consumer if asked, start exporting and importing.

        When it returns, every local envelope published from then on is exported, and the
        import subscription or consumer exists.

        :raises RuntimeError: if not running on asyncio (nats-py is asyncio-only), or if the
            bridge was entered before.
        :raises ConnectionError: if the first connection fails; the message says why
            (unreachable, authorization refused, TLS).
        :raises ValueError: if the existing stream does not cover ``{prefix}.>``.
        :raises anyio.ClosedResourceError: if the bus is closed.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "NatsBridge runs only on the asyncio backend: nats-py is asyncio-only"
            ) from None
        if self._entered:
            raise RuntimeError("a NatsBridge can be entered only once")
        self._entered = True
        await self._connect()
        try:
            if self._jetstream:
                self._import_stream_created = (await self._bind_stream()).created
            if self._export:
                self._sub = self._bus.subscribe(
                    max_buffer_size=self._max_buffer_size,
                    overflow="drop_oldest",
                    kinds=self._kinds,
                    where=_is_local,
                    name=f"nats-export:{self._node_id}",
                )
            if self._import:
                await self._start_import()
            tg = anyio.create_task_group()
            await tg.__aenter__()
            self._tg = tg
            if self._sub is not None:
                tg.start_soon(self._export_loop, self._sub)
            if self._pull is not None:
                tg.start_soon(self._import_loop)
        except BaseException:
            if self._sub is not None:
                self._sub.close()
            await self._close_connection()
            raise
        _log.info(
            "nats_bridge_started",
            node_id=self._node_id,
            servers=self._servers,
            jetstream=self._jetstream,
            export=self._export,
            import_=self._import,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        """Stop importing, export what is queued (up to ``close_timeout``), disconnect.

        Envelopes still queued or unacknowledged when the time runs out are counted in
        ``export_abandoned`` and logged (``nats_export_abandoned``), never dropped silently.
        """
        tg = self._tg
        assert tg is not None
        self._stopping_import = True
        for sub in self._core_subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        with anyio.move_on_after(self._close_timeout):
            if self._pull is not None:
                # Let the current batch be delivered and acknowledged, not cut in half.
                await self._import_done.wait()
            if exc_type is None and self._sub is not None:
                # A connection closed for good: what is left is counted as abandoned below.
                with contextlib.suppress(ClosedResourceError):
                    await self.flush()
        tg.cancel_scope.cancel()
        try:
            return await tg.__aexit__(exc_type, exc_val, exc_tb)
        finally:
            self._finish()
            await self._close_connection()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        sub = self._sub
        if sub is not None:
            abandoned = self._in_hand + sub.statistics().buffered
            self._in_hand = 0
            sub.close()
            if abandoned:
                self._c.export_abandoned += abandoned
                _log.error(
                    "nats_export_abandoned",
                    node_id=self._node_id,
                    abandoned=abandoned,
                    close_timeout=self._close_timeout,
                )
        _log.info("nats_bridge_stopped", **asdict(self.statistics()))

    async def flush(self) -> None:
        """Wait until everything the export subscription holds now has been exported.

        With JetStream that means acknowledged by the stream; with core NATS, written to the
        server (``nats`` flush). Envelopes published while it waits may be included.

        :raises anyio.ClosedResourceError: if the bridge is not running, or its NATS connection
            was closed for good (what it still holds can no longer be exported).
        """
        if self._sub is None or self._nc is None or self._closed:
            raise ClosedResourceError
        while not (self._in_hand == 0 and self._sub.statistics().buffered == 0):
            if self._export_stopped:
                raise ClosedResourceError("the NATS connection is closed")
            self._export_idle.clear()
            await self._export_idle.wait()
        if not self._jetstream:
            while True:
                await self._wait_link()
                try:
                    await self._nc.flush(timeout=int(max(1, self._ack_timeout)))
                    return
                except _LINK_ERRORS:
                    continue

    def statistics(self) -> BridgeStatistics:
        """Return a frozen snapshot of the bridge's counters (see :class:`BridgeStatistics`)."""
        c = self._c
        sub_stats = self._sub.statistics() if self._sub is not None else None
        nc = self._nc
        return BridgeStatistics(
            node_id=self._node_id,
            connected=bool(nc is not None and nc.is_connected),
            exported=c.exported,
            export_lagged=sub_stats.lagged if sub_stats else 0,
            export_buffered=sub_stats.buffered if sub_stats else 0,
            export_failed=c.export_failed,
            export_retries=c.export_retries,
            export_abandoned=c.export_abandoned,
            imported=c.imported,
            import_echoes=c.import_echoes,
            malformed=c.malformed,
            oversized=c.oversized,
            import_dropped=c.import_dropped,
            disconnects=c.disconnects,
            reconnects=c.reconnects,
            link_errors=c.link_errors,
            retried_errors=c.retried_errors,
        )

    # -- connection --------------------------------------------------------------------------

    async def _connect(self) -> None:
        nc = _NatsClient()
        self._nc = nc
        try:
            await nc.connect(
                servers=self._servers,
                name=f"eventbus-bridge:{self._node_id}",
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                closed_cb=self._on_closed,
                max_reconnect_attempts=-1,
                no_echo=True,
                **self._connect_kwargs,
            )
        except BaseException as exc:
            self._connect_failed = True
            # Closing a transport whose TLS handshake failed can hang in asyncio: bound it.
            await self._close_connection(within=0.25)
            if not isinstance(exc, Exception):
                raise
            cause = exc.__cause__ if isinstance(exc, _ConnectAborted) else exc
            raise ConnectionError(_connect_error_message(self._servers, cause)) from cause
        self._connecting = False
        self._link_up.set()
        if self._jetstream:
            self._js = nc.jetstream(timeout=self._ack_timeout)

    async def _close_connection(self, within: float | None = None) -> None:
        nc = self._nc
        if nc is None:
            return
        if not nc.is_closed:
            try:
                with anyio.move_on_after(self._close_timeout + 1.0 if within is None else within):
                    await nc.close()
            except (nats.errors.Error, OSError) as exc:
                _log.warning("nats_close_failed", node_id=self._node_id, error=repr(exc))
        _abort_sockets(nc)

    async def _on_error(self, exc: Exception) -> None:
        if self._connecting:
            if self._connect_failed:  # errors while closing the failed connection
                return
            # The first connection fails fast, with its reason, rather than retrying.
            raise _ConnectAborted from exc
        if isinstance(exc, nats.errors.SlowConsumerError):
            self._count_and_log(
                "import_dropped",
                _log.warning,
                "nats_import_slow_consumer",
                count_key="dropped",
                subject=exc.subject,
            )
            return
        self._c.link_errors += 1
        self._link_trouble.failed(self._clock(), "nats_error", exc, node_id=self._node_id)

    async def _on_disconnected(self) -> None:
        if self._connecting or self._closed:
            return
        self._c.disconnects += 1
        self._link_up.clear()
        self._link_lost.set()
        if self._down_since is None:
            self._down_since = self._clock()
        _log.warning("nats_disconnected", node_id=self._node_id)

    async def _on_reconnected(self) -> None:
        self._c.reconnects += 1
        self._link_lost = asyncio.Event()
        self._link_up.set()
        nc = self._nc
        url = None if nc is None or nc.connected_url is None else nc.connected_url.netloc
        now = self._clock()
        down_since, self._down_since = self._down_since, None
        episode = self._link_trouble.end(now)
        _log.info(
            "nats_reconnected",
            node_id=self._node_id,
            server=url,
            down_s=None if down_since is None else round(now - down_since, 3),
            errors=episode.failures if episode else 0,
            suppressed=episode.suppressed if episode else 0,
        )

    async def _on_closed(self) -> None:
        # Wake every waiter; they see the closed connection and stop.
        self._link_up.set()
        self._link_lost.set()

    async def _wait_link(self) -> None:
        """Return when the connection is up; raise ClosedResourceError if it closed."""
        nc = self._nc
        if nc is None or nc.is_closed:
            raise ClosedResourceError
        if not self._link_up.is_set():
            await self._link_up.wait()
            if nc.is_closed:
                raise ClosedResourceError

    # -- JetStream stream --------------------------------------------------------------------

    async def _bind_stream(
        self, created_event: str = "nats_stream_created"
    ) -> nats.js.api.StreamInfo:
        """Bind the stream, creating it if missing (logged as ``created_event``).

        :returns: the stream's info.
        :raises ValueError: if the stream exists without ``{prefix}.>`` in its subjects, or
            ``stream_config`` holds unknown fields.
        """
        js = self._js
        assert js is not None
        wanted = f"{self._prefix}.>"
        try:
            info = await js.stream_info(self._stream)
        except nats.js.errors.NotFoundError:
            known = {f.name for f in fields(nats.js.api.StreamConfig)}
            unknown = sorted(set(self._stream_config) - known)
            if unknown:
                raise ValueError(
                    f"stream_config has unknown StreamConfig fields: {', '.join(unknown)}"
                ) from None
            config = nats.js.api.StreamConfig(
                **{**self._stream_config, "name": self._stream, "subjects": [wanted]}
            )
            info = await js.add_stream(config)
            _log.info(created_event, node_id=self._node_id, stream=self._stream, subjects=[wanted])
        subjects = info.config.subjects or []
        if wanted not in subjects:
            raise ValueError(
                f"stream {self._stream!r} exists with subjects {subjects!r}, "
                f"which do not include {wanted!r}"
            )
        self._stream_max_msg_size = info.config.max_msg_size or 0
        return info

    async def _rebind_stream(self, trouble: _Repeats) -> nats.js.api.StreamInfo | None:
        """Bind the stream again, creating it if it was lost (``nats_stream_recreated``).

        :returns: the stream's info, or None if that failed (the link, JetStream not ready
            yet, a stream without the prefix): try again later. A failure is counted in
            ``retried_errors`` and logged as ``nats_stream_bind_failed`` in the calling
            loop's ``trouble`` (repeats summarised).
        """
        try:
            return await self._bind_stream("nats_stream_recreated")
        except (*_LINK_ERRORS, nats.js.errors.APIError, ValueError) as exc:
            self._retry_failed(trouble, "nats_stream_bind_failed", exc, stream=self._stream)
            return None

    async def _read_stream_limit(self) -> bool:
        """Read the stream's ``max_msg_size`` again.

        :returns: ``False`` if the link failed meanwhile (the limit is unknown: ask again
            once it is back); ``True`` otherwise, also when the server answered with an error
            (the old limit is kept, so that a refusal cannot turn into a loop).
        """
        js = self._js
        assert js is not None
        try:
            info = await js.stream_info(self._stream)
        except _LINK_ERRORS as exc:
            self._retry_failed(self._export_trouble, "nats_stream_info_failed", exc)
            return False
        except nats.js.errors.NotFoundError:
            # The stream is gone (a server back without its JetStream state): bind it
            # again, which creates it, before the next publish.
            self._export_rebind = True
            return False
        except nats.js.errors.APIError as exc:
            self._retry_failed(self._export_trouble, "nats_stream_info_failed", exc)
            return True
        self._stream_max_msg_size = info.config.max_msg_size or 0
        return True

    # -- export ------------------------------------------------------------------------------

    def _subject(self, event_type: type) -> str | None:
        subject = self._subjects.get(event_type, "")
        if subject == "":
            try:
                subject = subject_for(event_type, self._prefix)
            except ValueError as exc:
                _log.error(
                    "nats_export_bad_subject", event_type=event_type.__name__, error=str(exc)
                )
                subject = None
            self._subjects[event_type] = subject
        return subject

    def _encode(self, envelope: Envelope[T]) -> _Item | None:
        kind, event_id = envelope.kind, envelope.event_id
        subject = self._subject(type(envelope.event))
        if subject is None:
            self._export_failed(kind, event_id, "bad_subject")
            return None
        try:
            payload = self._codec.encode(msgspec.structs.replace(envelope, origin=self._node_id))
        except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as exc:
            self._export_failed(kind, event_id, f"unencodable: {exc}")
            return None
        if len(payload) > self._max_bytes:
            reason = f"oversized: {len(payload)} bytes > max_message_bytes {self._max_bytes}"
            self._export_failed(kind, event_id, reason)
            return None
        headers = {MSG_ID_HEADER: event_id, ORIGIN_HEADER: self._node_id}
        size = len(payload) + self._header_bytes + len(event_id.encode())
        return subject, payload, headers, size

    def _refused_as_oversized(self, item: _Item) -> bool:
        """Count and log ``item`` as failed if the server or the stream would refuse its size.

        Checked before each publish, after any wait for the link, against the limits of the
        connection in use: a server restarted with a smaller ``max_payload`` changes it across
        a reconnection. Both limits count the header block with the payload; nats-py checks
        only the payload, and the server closes a connection that sends too much (nats-py then
        gives up on it for good), so the bridge checks the whole size itself.
        """
        size = item[3]
        nc = self._nc
        max_payload = 0 if nc is None else nc.max_payload
        if max_payload and size > max_payload:
            limit = f"server max_payload {max_payload}"
        elif 0 < self._stream_max_msg_size < size:
            limit = f"stream max_msg_size {self._stream_max_msg_size}"
        else:
            return False
        subject, _, headers, _ = item
        reason = f"oversized: {size} bytes with headers > {limit}"
        self._export_failed(subject.rsplit(".", 1)[1], headers[MSG_ID_HEADER], reason)
        return True

    def _export_failed(self, kind: str, event_id: str, reason: str) -> None:
        self._in_hand -= 1
        n = self._c.bump("export_failed")
        _log.error(
            "nats_export_failed",
            node_id=self._node_id,
            kind=kind,
            event_id=event_id,
            reason=reason,
            failed=n,
        )

    async def _export_loop(self, sub: Subscription[T]) -> None:
        batch: list[Envelope[T]] = []
        while True:
            if not batch:
                if self._in_hand == 0:
                    self._export_idle.set()
                try:
                    batch.append(await sub.receive())
                except (EndOfStream, ClosedResourceError):
                    self._export_idle.set()
                    return
            while len(batch) < _EXPORT_BATCH:
                try:
                    batch.append(sub.receive_nowait())
                except (WouldBlock, EndOfStream, ClosedResourceError):
                    break
            self._in_hand = len(batch)
            items = [item for item in map(self._encode, batch) if item is not None]
            batch.clear()
            try:
                if self._jetstream:
                    await self._publish_acked(items)
                else:
                    await self._publish_core(items)
            except ClosedResourceError:  # the connection was closed under us, for good
                self._export_stopped = True
                self._export_idle.set()
                return

    async def _publish_core(self, items: list[_Item]) -> None:
        nc = self._nc
        assert nc is not None
        i = 0
        while i < len(items):
            await self._wait_link()
            item = items[i]
            if self._refused_as_oversized(item):  # no await since: nats-py sees the same limit
                i += 1
                continue
            subject, payload, headers, _ = item
            try:
                await nc.publish(subject, payload, headers=headers)
            except _LINK_ERRORS as exc:
                self._c.export_retries += 1
                self._retry_failed(self._export_trouble, "nats_export_retry", exc, pending=1)
                self._link_up.clear()
                await anyio.sleep(0.01)
                continue
            self._c.exported += 1
            self._in_hand -= 1
            i += 1
        self._retry_recovered(self._export_trouble, "nats_export_recovered")

    async def _publish_acked(self, items: list[_Item]) -> None:
        js = self._js
        assert js is not None
        pending = items
        backoff = 0.05
        while pending:
            await self._wait_link()
            if self._export_rebind or self._export_bound_at != self._c.reconnects:
                reconnects = self._c.reconnects
                if await self._rebind_stream(self._export_trouble) is None:
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                    continue
                self._export_bound_at, self._export_rebind = reconnects, False
            limit = self._stream_max_msg_size
            # Refusing is for good: first make sure the stream's limit was not raised since
            # it was read (what an operator does on seeing these failures). If the link
            # failed while asking, ask again once it is back, never refuse blind.
            if (
                limit > 0
                and any(item[3] > limit for item in pending)
                and not await self._read_stream_limit()
            ):
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            # Dropped here, not retried: this server or stream can never accept them.
            pending = [item for item in pending if not self._refused_as_oversized(item)]
            if not pending:
                break
            lost = self._link_lost
            futures: list[asyncio.Future[Any]] = []
            error: BaseException | None = None
            try:
                for subject, payload, headers, _ in pending:
                    futures.append(await js.publish_async(subject, payload, headers=headers))
                acked, error = await self._await_acks(futures, lost)
            except (nats.errors.MaxPayloadError, *_LINK_ERRORS) as exc:
                # MaxPayloadError: a reconnection to a smaller limit during this loop; the
                # next round drops what no longer fits.
                acked, error = _leading_successes(futures), exc
            finally:
                for future in futures:
                    if not future.done():
                        future.cancel()
            self._c.exported += acked
            self._in_hand -= acked
            pending = pending[acked:]
            if pending:
                if isinstance(error, nats.js.errors.NoStreamResponseError):
                    self._export_rebind = True  # no stream answered: it may be gone
                self._c.export_retries += len(pending)
                self._retry_failed(
                    self._export_trouble,
                    "nats_export_retry",
                    error or TimeoutError("no acknowledgement"),
                    pending=len(pending),
                )
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                if not lost.is_set():
                    # The link held, so the stream may be refusing them: nats-py reports a
                    # refused publish as a missing ack (nats-io/nats.py#985). Its
                    # max_msg_size may have shrunk.
                    await self._read_stream_limit()
        self._retry_recovered(self._export_trouble, "nats_export_recovered")

    async def _await_acks(
        self, futures: list[asyncio.Future[Any]], lost: asyncio.Event
    ) -> tuple[int, BaseException | None]:
        """Wait for every ack, the link to drop, or ack_timeout; return leading successes."""
        gathered = asyncio.gather(*futures, return_exceptions=True)
        lost_waiter = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait(
                (gathered, lost_waiter),
                timeout=self._ack_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            lost_waiter.cancel()
            if not gathered.done():
                gathered.cancel()
            # Retrieve the outcome so asyncio does not report it as never retrieved.
            gathered.add_done_callback(_consume)
        acked = _leading_successes(futures)
        error: BaseException | None = None
        if acked < len(futures):
            failed = futures[acked]
            if failed.done() and not failed.cancelled():
                error = failed.exception()
            else:
                error = TimeoutError("no acknowledgement")
        return acked, error

    # -- import ------------------------------------------------------------------------------

    def _import_subjects(self) -> list[str]:
        if self._kinds is None:
            return [f"{self._prefix}.>"]
        subjects = []
        for k in self._kinds:
            if isinstance(k, str):
                subjects.append(f"{self._prefix}.*.{k}")
            else:
                subjects.append(subject_for(k, self._prefix))
        return subjects

    async def _start_import(self) -> None:
        nc = self._nc
        assert nc is not None
        if not self._jetstream:
            for subject in self._import_subjects():
                self._core_subs.append(await nc.subscribe(subject, cb=self._on_core_message))
            # Round trips, so the server has registered the subscriptions when we return.
            # Two: nats-py writes flush()'s PING straight to the socket, possibly ahead of
            # the SUB still in its pending buffer; the flusher writes that buffer during the
            # first round trip, so the second PING follows the SUB.
            for _ in range(2):
                await nc.flush(timeout=max(1, int(self._ack_timeout)))
            return
        js = self._js
        assert js is not None
        await self._pull_subscribe(self._start_seq)
        # A consumer left with unacknowledged deliveries (a crash, a lost link) would send
        # them again only after ack_wait, out of order: resume at the ack floor instead.
        self._consumer_floor = await self._rewind_if_in_flight()

    async def _pull_subscribe(self, start_seq: int | None) -> None:
        js = self._js
        assert js is not None
        subjects = self._import_subjects()
        # One filter subject works on every server; several kinds are filtered here.
        filter_subject = subjects[0] if len(subjects) == 1 else f"{self._prefix}.>"
        api = nats.js.api
        if start_seq is not None:
            policy, opt_seq = api.DeliverPolicy.BY_START_SEQUENCE, start_seq
        elif self._durable is not None:
            policy, opt_seq = api.DeliverPolicy.ALL, None
        else:
            policy, opt_seq = api.DeliverPolicy.NEW, None
        config = api.ConsumerConfig(
            deliver_policy=policy,
            opt_start_seq=opt_seq,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_ack_pending=max(self._fetch_batch * 4, 1024),
        )
        self._pull = await js.pull_subscribe(
            filter_subject, durable=self._durable, stream=self._stream, config=config
        )

    async def _rebind_import(self) -> bool:
        """After a reconnection: bind the stream and find the consumer, recreating what is gone.

        A stream that is missing is created (``nats_stream_recreated``). A stream found
        replaced (another ``created`` time, or fewer messages than this process delivered)
        starts its sequences again, so the import restarts at its start and forgets what it
        had delivered. A missing consumer is created again under the same name
        (``nats_consumer_recreated``): at the new stream's start if the stream was replaced,
        else after the last message delivered to the local bus in this process, or where the
        first consumer started if that is later. A consumer still there is rewound if
        deliveries are in flight.

        :returns: False if the link or JetStream failed meanwhile: try again later.
        """
        info = await self._rebind_stream(self._import_trouble)
        if info is None:
            return False
        created = info.created
        replaced = (
            created is not None and created != self._import_stream_created
        ) or info.state.last_seq < self._delivered_seq
        self._import_stream_created = created
        if replaced:
            self._delivered_seq = self._consumer_floor = 0
        pull = self._pull
        assert pull is not None
        try:
            try:
                consumer = await pull.consumer_info()
            except nats.js.errors.NotFoundError:
                await self._recreate_consumer(replaced)
            else:
                await self._rewind_if_in_flight(consumer)
        except (*_LINK_ERRORS, nats.js.errors.APIError) as exc:
            self._retry_failed(
                self._import_trouble, "nats_consumer_bind_failed", exc, stream=self._stream
            )
            return False
        return True

    async def _recreate_consumer(self, stream_replaced: bool) -> None:
        pull = self._pull
        assert pull is not None
        with contextlib.suppress(nats.errors.Error):
            await pull.unsubscribe()
        start = 1 if stream_replaced else max(self._delivered_seq, self._consumer_floor) + 1
        await self._pull_subscribe(start)
        _log.warning(
            "nats_consumer_recreated",
            node_id=self._node_id,
            stream=self._stream,
            consumer=self._durable,
            start_seq=start,
            stream_lost=stream_replaced,
        )

    async def _rewind_if_in_flight(self, info: nats.js.api.ConsumerInfo | None = None) -> int:
        """Recreate the consumer at its ack floor if deliveries are unacknowledged.

        Messages up to the last one delivered to the local bus in this process are then
        skipped (``_delivered_seq``), so nothing is imported twice and order is kept.

        :returns: the stream sequence the consumer now delivers after.
        """
        js, pull = self._js, self._pull
        assert js is not None
        assert pull is not None
        if info is None:
            info = await pull.consumer_info()
        if not info.num_ack_pending:
            return info.delivered.stream_seq if info.delivered else 0
        start = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
        _log.info(
            "nats_consumer_rewound",
            node_id=self._node_id,
            consumer=info.name,
            unacknowledged=info.num_ack_pending,
            start_seq=start,
        )
        await pull.unsubscribe()
        await js.delete_consumer(self._stream, info.name)
        await self._pull_subscribe(start)
        return start - 1

    async def _consumer_exists(self) -> bool:
        """Ask JetStream whether the import consumer still exists.

        nats-py's ``fetch`` from a consumer that was deleted (``nats consumer rm``, an
        ephemeral one expired) times out as when no message came: the server answers
        nothing. An idle import therefore asks now and then.

        :returns: False if JetStream says the consumer, or its stream, is gone. True if it
            exists, or if the question failed (the link, JetStream unavailable): that is
            counted and logged as ``nats_consumer_check_failed`` and asked again later.
        """
        pull = self._pull
        assert pull is not None
        try:
            await pull.consumer_info()
        except nats.js.errors.NotFoundError:
            return False
        except (*_LINK_ERRORS, nats.js.errors.APIError) as exc:
            self._retry_failed(self._import_trouble, "nats_consumer_check_failed", exc)
            return True
        self._retry_recovered(self._import_trouble, "nats_import_recovered")
        return True

    def _retry_failed(
        self, trouble: _Repeats, event: str, error: BaseException, **context: Any
    ) -> None:
        """Count a failed operation its loop will try again; log it once, or summarise."""
        self._c.retried_errors += 1
        trouble.failed(self._clock(), event, error, node_id=self._node_id, **context)

    def _retry_recovered(self, trouble: _Repeats, event: str) -> None:
        """The loop of ``trouble`` works again: log ``event`` with its failures, if any."""
        if trouble.started is None:
            return
        episode = trouble.end(self._clock())
        assert episode is not None
        _log.info(
            event,
            node_id=self._node_id,
            failures=episode.failures,
            suppressed=episode.suppressed,
            duration_s=episode.duration_s,
        )

    def _decode(self, msg: Msg) -> Envelope[T] | None:
        """Decode and screen one message; None if it must be skipped (counted)."""
        headers = msg.headers
        if headers is not None and headers.get(ORIGIN_HEADER) == self._node_id:
            self._c.import_echoes += 1
            return None
        data = msg.data
        if len(data) > self._max_bytes:
            self._count_and_log(
                "oversized",
                _log.error,
                "nats_message_oversized",
                subject=msg.subject,
                size=len(data),
                limit=self._max_bytes,
            )
            return None
        try:
            envelope: Envelope[T] = self._codec.decode(data)
        except msgspec.DecodeError as exc:  # ValidationError included
            self._count_and_log(
                "malformed",
                _log.error,
                "nats_message_malformed",
                subject=msg.subject,
                size=len(data),
                error=str(exc),
            )
            return None
        if envelope.origin == self._node_id:
            self._c.import_echoes += 1
            return None
        if self._kind_names is not None and envelope.kind not in self._kind_names:
            return None
        return envelope

    def _count_and_log(
        self,
        counter: str,
        log: Callable[..., object],
        event: str,
        *,
        count_key: str | None = None,
        **context: Any,
    ) -> None:
        """Add one to ``counter``; log ``event`` on its 1st, 2nd, 4th, 8th... occurrence.

        The line carries the node id, ``context`` and the count (under ``count_key``, by
        default the counter's name), so a flood of bad messages costs a few log lines.
        """
        n = self._c.bump(counter)
        if n & (n - 1) == 0:
            log(event, node_id=self._node_id, **context, **{count_key or counter: n})

    async def _deliver(self, envelope: Envelope[T]) -> None:
        """Publish into the local bus, waiting while a ``block`` subscription is full.

        :raises anyio.ClosedResourceError: if the local bus is closed.
        """
        await self._bus.apublish_envelope(envelope)
        self._c.imported += 1

    def _bus_closed(self) -> None:
        n = self._c.bump("import_dropped")
        if n == 1:
            _log.warning("nats_import_bus_closed", node_id=self._node_id)

    async def _on_core_message(self, msg: Msg) -> None:
        if self._stopping_import:
            return
        envelope = self._decode(msg)
        if envelope is not None:
            try:
                await self._deliver(envelope)
            except ClosedResourceError:
                self._bus_closed()

    async def _import_loop(self) -> None:
        try:
            await self._import_batches()
        finally:
            self._import_done.set()

    async def _import_batches(self) -> None:
        barrier = self._ack_barrier
        reconnects = self._c.reconnects
        rebind = False
        checked_at = self._clock()
        while not self._stopping_import:
            try:
                await self._wait_link()
                if rebind or self._c.reconnects != reconnects:
                    # The server may have come back without its JetStream state.
                    reconnects, rebind = self._c.reconnects, True
                    if not await self._rebind_import():
                        await anyio.sleep(self._fetch_timeout)
                        continue
                    rebind = False
                    checked_at = self._clock()
                pull = self._pull
                assert pull is not None
                msgs = await pull.fetch(self._fetch_batch, timeout=self._fetch_timeout)
            except ClosedResourceError:
                return
            except TimeoutError:
                # No message, or no consumer: nats-py cannot tell them apart (the server
                # does not answer a fetch from a deleted consumer). Ask now and then.
                now = self._clock()
                if now - checked_at >= _CONSUMER_CHECK_INTERVAL:
                    checked_at = now
                    rebind = not await self._consumer_exists()
                continue
            except nats.js.errors.APIError as exc:
                self._retry_failed(self._import_trouble, "nats_fetch_failed", exc)
                rebind = True  # the consumer or the stream may be gone
                await anyio.sleep(self._fetch_timeout)
                continue
            except _LINK_ERRORS:
                continue
            # The server answered (nats-py returns [] for its "request timeout" status).
            self._retry_recovered(self._import_trouble, "nats_import_recovered")
            if not msgs:
                continue
            for i, msg in enumerate(msgs):
                seq = msg.metadata.sequence.stream
                if seq <= self._delivered_seq:
                    continue  # delivered before a rewind: already in the local bus
                envelope = self._decode(msg)
                if envelope is not None:
                    try:
                        await self._deliver(envelope)
                    except ClosedResourceError:
                        # Not delivered, so not acknowledged: JetStream delivers them again.
                        _log.warning("nats_import_bus_closed", node_id=self._node_id)
                        for undelivered in msgs[i:]:
                            await undelivered.nak()
                        return
                self._delivered_seq = seq
            if barrier is not None:
                await barrier()
            for msg in msgs:
                try:
                    await msg.ack()
                except (nats.errors.MsgAlreadyAckdError, *_LINK_ERRORS) as exc:
                    # Unacknowledged messages are delivered again after a rewind.
                    self._retry_failed(self._import_trouble, "nats_ack_failed", exc)
                    break


class _ConnectAborted(Exception):
    """Raised from the error callback to stop nats-py retrying the first connection."""


def _connect_error_message(servers: list[str], exc: BaseException | None) -> str:
    reason = "unknown error" if exc is None else (str(exc) or type(exc).__name__)
    hint = ""
    text = reason.lower()
    if "authorization" in text or "authentication" in text:
        hint = " (the server requires credentials: pass user/password or token)"
    elif isinstance(exc, ssl.SSLError) or "tls" in text or "ssl" in text:
        hint = " (check the tls context and tls_hostname)"
    elif isinstance(exc, OSError):
        hint = " (is nats-server running there?)"
    return f"cannot connect to NATS at {', '.join(servers)}: {reason}{hint}"


def _abort_sockets(nc: _NatsClient) -> None:
    """Abort the client's sockets if its close left them open.

    nats-py's ``close()`` can wait forever for a transport whose TLS handshake failed, and a
    bounded close then leaves the socket open; abort it rather than leak it.
    """
    transport = getattr(nc, "_transport", None)
    for name in ("_io_writer", "_bare_io_writer"):
        raw = getattr(getattr(transport, name, None), "transport", None)
        if raw is not None and not raw.is_closing():
            raw.abort()


def _is_local(envelope: Envelope[Any]) -> bool:
    return envelope.origin is None


def _leading_successes(futures: list[asyncio.Future[Any]]) -> int:
    n = 0
    for future in futures:
        if not future.done() or future.cancelled() or future.exception() is not None:
            break
        n += 1
    return n


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
