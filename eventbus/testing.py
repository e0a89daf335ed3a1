"""Test helpers for code that uses an :class:`~eventbus.EventBus`. Importable without pytest.

Three kinds of helper, all small and all usable on asyncio and trio. In the examples ``bus`` is
the bus under test, ``agent_id`` an agent's :class:`uuid.UUID`, ``supervisor`` the code under
test (yours) and the events come from :mod:`eventbus.events`; the project's tests run every
example of this module against the real event classes.

* :func:`capture_events` records every envelope published on a bus, inline, with no consumer
  task and no queue that could lag::

      with capture_events(bus) as captured:
          await supervisor.run(agent_id)           # publishes AgentStarted, then AgentStopped
      assert captured.kinds == ["agent_started", "agent_stopped"]
      assert captured.of(AgentStopped)[0].success

* :func:`expect` waits for one event. It starts listening **when it is called**, so create it
  *before* the action that causes the event and await it *after*; it cannot miss an event
  published in between::

      finished = expect(bus, ToolExecutionFinished, where=lambda e: e.tool_name == "grep")
      await supervisor.run_tool("grep")    # publishes ToolExecutionFinished, maybe from a task
      envelope = await finished            # AssertionError after ``timeout`` seconds

  ``await expect(bus, ...)`` in one expression is correct too when another task causes the
  event while this one waits.

* Assertions in the style of tokio's broadcast tests, on a :class:`~eventbus.Subscription`:
  :func:`assert_received`, :func:`assert_empty`, :func:`assert_lagged`, :func:`assert_closed`,
  and on an audit trail: :func:`assert_audited`. They never wait. When they fail, the message
  shows what was there instead (the nearest envelopes or entries, not a dump), and they hide
  themselves from pytest tracebacks (``__tracebackhide__``).

Every helper checks its arguments when it is called: a wrong type raises :exc:`TypeError` and
a wrong value :exc:`ValueError`, with a message naming the parameter, never a failed
assertion. Where an event kind is a criterion (``capture_events``' ``kinds``,
``assert_received``'s ``expected``) a tag string is accepted, as by
:meth:`EventBus.subscribe <eventbus.EventBus.subscribe>`; where the result is typed by the
class (``expect``, :meth:`CapturedEvents.of`) only a class is. ``assert_audited``'s
``action`` also takes an action class's name, as ``eventbus audit show --action`` does.

The pytest plugin shipped with the package (``eventbus._pytest_plugin``, loaded automatically
by pytest) wraps these in the ``event_bus``, ``captured_events``, ``audit_mapper`` and
``audit_trail`` fixtures.
"""

from __future__ import annotations

import math
import sys
import uuid
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args, overload

import anyio
import msgspec
from anyio import ClosedResourceError, EndOfStream, WouldBlock

from ._bus import (
    EventBus,
    Subscription,
    SubscriptionStatistics,
    _check_kinds,
    _check_positive_int,
)
from ._envelope import Envelope

if TYPE_CHECKING:
    from audit import AuditAction, AuditEntry, Auditor, AuditTrail

__all__ = [
    "CapturedEvents",
    "Expectation",
    "assert_audited",
    "assert_closed",
    "assert_empty",
    "assert_lagged",
    "assert_received",
    "capture_events",
    "expect",
]

E = TypeVar("E", bound=msgspec.Struct)
T = TypeVar("T", bound=msgspec.Struct)

#: How many envelopes or entries a failure message shows.
_NEAREST = 3


def _type_text(value: object) -> str:
    return value.__name__ if isinstance(value, type) else repr(value)


def _check_event_type(event_type: object) -> None:
    if not (isinstance(event_type, type) and issubclass(event_type, msgspec.Struct)):
        name = _type_text(event_type)
        raise TypeError(f"event_type must be a msgspec.Struct class, got {name}")


def _got(value: object) -> str:
    """What a bad argument is, for a TypeError: ``the class X``, or the instance's type."""
    if isinstance(value, type):
        return f"the class {value.__name__}"
    if isinstance(value, Subscription):
        return "Subscription"  # not the private queue layout's class name
    return type(value).__name__


def _check_sub(sub: object) -> None:
    if not isinstance(sub, Subscription):
        raise TypeError(f"sub must be a Subscription, got {_got(sub)}")


def _describe(envelope: Envelope[Any]) -> str:
    text = repr(envelope.event)
    if len(text) > 160:
        text = text[:157] + "..."
    return f"seq={envelope.seq} kind={envelope.kind!r} event={text}"


def _peek(sub: Subscription[Any], n: int) -> list[Envelope[Any]]:
    """The first ``n`` envelopes buffered in ``sub``, without taking them.

    The bus has no public peek (a consumer never needs one): this asks the subscription's
    private one, which both queue layouts of ``eventbus._bus`` implement.
    """
    return sub._peek(n)


def _listing(envelopes: Sequence[Envelope[Any]], total: int) -> str:
    lines = "".join(f"\n    {_describe(e)}" for e in envelopes)
    more = total - len(envelopes)
    return lines + (f"\n    ... and {more} more" if more > 0 else "")


# -- capture_events ------------------------------------------------------------------------


class CapturedEvents(Generic[T]):
    """The envelopes recorded by :func:`capture_events`, in publish (``seq``) order.

    Recording happens inside ``publish`` itself (a bus tap), so it sees every envelope
    published while it is active, whatever the subscriptions' filters and overflow policies,
    never lags, and needs no consumer task: the lists are complete as soon as ``publish``
    returns. The recorded lists stay readable after recording stopped.
    """

    __slots__ = ("_bus", "_classes", "_remove", "_tags", "envelopes")

    def __init__(self, bus: EventBus[T], kinds: tuple[type | str, ...] | None) -> None:
        #: Every recorded envelope, oldest first. Tests may read and clear it.
        self.envelopes: list[Envelope[T]] = []
        self._bus = bus
        # ``kinds`` split once, so the tap is one set lookup and one isinstance per publish.
        self._tags = frozenset(k for k in kinds or () if isinstance(k, str))
        self._classes = tuple(k for k in kinds or () if isinstance(k, type))
        record: Callable[[Envelope[T]], object] = (
            self.envelopes.append if kinds is None else self._record_filtered
        )
        self._remove: Callable[[], None] | None = bus.add_tap(record)

    def _record_filtered(self, envelope: Envelope[T]) -> None:
        if envelope.kind in self._tags or isinstance(envelope.event, self._classes):
            self.envelopes.append(envelope)

    @property
    def events(self) -> list[T]:
        """The recorded events (the envelopes' payloads), oldest first. A new list."""
        return [e.event for e in self.envelopes]

    @property
    def kinds(self) -> list[str]:
        """The recorded envelopes' kinds (event tags), oldest first. A new list."""
        return [e.kind for e in self.envelopes]

    @property
    def active(self) -> bool:
        """``True`` while recording (until :meth:`stop` or the end of the ``with`` block)."""
        return self._remove is not None

    def of(self, event_type: type[E]) -> list[E]:
        """The recorded events that are instances of ``event_type`` (subclasses included).

        :returns: a new list, oldest first.
        :raises TypeError: if ``event_type`` is not a msgspec Struct class.
        """
        _check_event_type(event_type)
        return [e.event for e in self.envelopes if isinstance(e.event, event_type)]

    def clear(self) -> None:
        """Forget what was recorded so far; recording goes on."""
        self.envelopes.clear()

    def stop(self) -> None:
        """Stop recording (remove the tap). Idempotent; what was recorded stays readable."""
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()

    def __len__(self) -> int:
        return len(self.envelopes)

    def __iter__(self) -> Iterator[Envelope[T]]:
        return iter(list(self.envelopes))

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        return f"<CapturedEvents {state} envelopes={len(self.envelopes)}>"

    def __enter__(self) -> CapturedEvents[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.stop()


def capture_events(
    bus: EventBus[T], *, kinds: Iterable[type | str] | None = None
) -> CapturedEvents[T]:
    """Record every envelope published on ``bus`` from now on; see :class:`CapturedEvents`.

    Recording starts when this function is called and stops when the ``with`` block ends (or
    at :meth:`CapturedEvents.stop`)::

        with capture_events(bus, kinds=[AgentStopped]) as captured:
            await supervisor.run(agent_id)         # publishes AgentStarted, then AgentStopped
        assert captured.kinds == ["agent_stopped"]

    :param kinds: record only events of these classes (subclasses included) or tags.
    :returns: the :class:`CapturedEvents`, already recording.
    :raises TypeError: if ``bus`` is not an :class:`~eventbus.EventBus`, or ``kinds`` holds
        something that is neither an event class nor a tag string.
    :raises ValueError: if ``kinds`` is empty.

    It costs one list append per publish while active (it runs inside ``publish``, like the
    audit trail's ``inline`` mode). It does not see envelopes published before it was called
    and it does not survive the bus: it holds no reference that keeps the bus open.
    """
    if not isinstance(bus, EventBus):
        raise TypeError(f"bus must be an EventBus, got {type(bus).__name__}")
    return CapturedEvents(bus, None if kinds is None else _check_kinds(kinds))


# -- expect --------------------------------------------------------------------------------


class Expectation(Generic[E]):
    """One awaited event, created by :func:`expect`. Await it to get the matching envelope.

    It listens from its creation, inside ``publish`` (a bus tap), so an event published
    between :func:`expect` and ``await`` is not missed. It stops listening once it has its
    envelope, when its wait times out, or at :meth:`cancel`. Awaiting it again returns the
    same envelope.
    """

    __slots__ = (
        "_bus",
        "_error",
        "_event_type",
        "_found",
        "_others",
        "_rejected",
        "_remove",
        "_seen",
        "_signal",
        "_timeout",
        "_where",
    )

    def __init__(
        self,
        bus: EventBus[Any],
        event_type: type[E],
        where: Callable[[E], bool] | None,
        timeout: float,
    ) -> None:
        self._bus = bus
        self._event_type = event_type
        self._where = where
        self._timeout = timeout
        self._found: Envelope[E] | None = None
        self._error: BaseException | None = None
        self._signal: anyio.Event | None = None
        self._seen = 0
        # What arrived instead, for the failure message: the latest events of the expected
        # type that ``where`` rejected, and a count of the other kinds.
        self._rejected: deque[Envelope[E]] = deque(maxlen=_NEAREST)
        self._others: Counter[str] = Counter()
        self._remove: Callable[[], None] | None = bus.add_tap(self._on_publish)

    def _on_publish(self, envelope: Envelope[Any]) -> None:
        self._seen += 1
        if not isinstance(envelope.event, self._event_type):
            self._others[envelope.kind] += 1
            return
        try:
            matched = self._where is None or self._where(envelope.event)
        except Exception as exc:  # reported by ``await``, not swallowed by the bus's tap guard
            self._error = exc
            matched = True
        if not matched:
            self._rejected.append(envelope)
            return
        if self._error is None:
            self._found = envelope
        self.cancel()
        if self._signal is not None:
            self._signal.set()

    @property
    def done(self) -> bool:
        """``True`` once a matching envelope was published (or ``where`` raised)."""
        return self._found is not None or self._error is not None

    def cancel(self) -> None:
        """Stop listening. Idempotent. Awaiting afterwards fails unless it already matched."""
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()

    async def wait(self) -> Envelope[E]:
        """Wait for the matching envelope; the same as ``await expectation``.

        :returns: the first envelope published since :func:`expect` whose event is an
            instance of the expected type and satisfies ``where``.
        :raises AssertionError: if none arrives within ``timeout`` seconds (the message lists
            what arrived instead), if listening was cancelled before a match, or if ``where``
            raised (chained from that exception).
        """
        __tracebackhide__ = True
        if not self.done and self._remove is not None:
            if self._signal is None:
                self._signal = anyio.Event()
            with anyio.move_on_after(self._timeout):
                await self._signal.wait()
        if self._error is not None:
            raise AssertionError(
                f"expect({self._event_type.__name__}): the where predicate raised "
                f"{type(self._error).__name__}: {self._error}"
            ) from self._error
        if self._found is not None:
            return self._found
        listening = self._remove is not None
        self.cancel()
        raise AssertionError(self._failure(listening))

    def _failure(self, timed_out: bool) -> str:
        name = self._event_type.__name__
        what = name if self._where is None else f"{name} matching where"
        head = (
            f"expected a {what} within {self._timeout:g}s"
            if timed_out
            else f"expected a {what}, but the expectation was cancelled first"
        )
        lines = [f"{head}; {self._seen} envelope(s) were published since expect()"]
        if self._rejected:
            lines.append(f"  latest {name} rejected by where:")
            lines.extend(f"    {_describe(e)}" for e in self._rejected)
        if self._others:
            kinds = ", ".join(f"{k} x{n}" for k, n in self._others.most_common(_NEAREST + 2))
            lines.append(f"  other kinds: {kinds}")
        if self._bus.closed:
            lines.append("  the bus is closed")
        return "\n".join(lines)

    def __await__(self) -> Generator[Any, None, Envelope[E]]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        state = "done" if self.done else ("waiting" if self._remove else "cancelled")
        return f"<Expectation {self._event_type.__name__} {state}>"


def expect(
    bus: EventBus[Any],
    event_type: type[E],
    *,
    where: Callable[[E], bool] | None = None,
    timeout: float = 5.0,
) -> Expectation[E]:
    """Start waiting for the next ``event_type`` event on ``bus``; await the result.

    Listening starts **now**, not at ``await``: create the expectation before the action that
    publishes the event, then await it::

        stopped = expect(bus, AgentStopped, where=lambda e: e.id == agent_id)
        await supervisor.stop(agent_id)            # publishes AgentStopped
        envelope = await stopped

    :param event_type: the event class to wait for (subclasses match too).
    :param where: a predicate on the *event* (not the envelope); it runs inside ``publish``,
        so keep it cheap. If it raises, ``await`` raises :exc:`AssertionError` from it.
    :param timeout: seconds ``await`` waits before failing (from the ``await``, not from
        this call).
    :returns: an :class:`Expectation`; ``await`` it for the matching :class:`Envelope`.
    :raises TypeError: for a ``bus`` that is not an EventBus, an ``event_type`` that is not
        a msgspec Struct class (a tag string is not accepted: ``where`` receives an instance
        of it), a ``where`` that is not callable, or a ``timeout`` that is not a number.
    :raises ValueError: if ``timeout`` is not a positive number.

    It only sees events published after this call, and only the first match: expect again
    for the next one. An expectation that is never awaited keeps listening (one tap, a few
    counters) until :meth:`Expectation.cancel` or the bus is garbage collected.
    """
    if not isinstance(bus, EventBus):
        raise TypeError(f"bus must be an EventBus, got {type(bus).__name__}")
    _check_event_type(event_type)
    if where is not None and not callable(where):
        raise TypeError(f"where must be callable, got {type(where).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number, got {type(timeout).__name__}")
    try:
        seconds = float(timeout)
    except OverflowError:  # an int past every float: no wait is that long
        seconds = math.inf
    if not seconds > 0 or math.isnan(seconds):
        raise ValueError(f"timeout must be > 0, got {timeout}")
    return Expectation(bus, event_type, where, seconds)


# -- assertions on subscriptions -----------------------------------------------------------


@overload
def assert_received(sub: Subscription[T], expected: None = None) -> Envelope[T]: ...
@overload
def assert_received(sub: Subscription[Any], expected: type[E]) -> Envelope[E]: ...
@overload
def assert_received(sub: Subscription[T], expected: T | str) -> Envelope[T]: ...
def assert_received(sub: Subscription[Any], expected: object = None) -> Envelope[Any]:
    """Take the next buffered envelope from ``sub`` without waiting, and check it::

        sub = bus.subscribe()
        bus.publish(AgentStarted(id=agent_id))
        bus.publish(AgentStopped(id=agent_id, success=True))
        assert_received(sub, AgentStarted)                    # an instance of the class
        assert_received(sub, "agent_stopped")                 # or of that kind (tag)

    :param expected: ``None`` (any envelope), an event class (the event must be an instance
        of it, subclasses included), a tag string (the envelope's ``kind`` must be it, as
        with ``subscribe(kinds=...)``) or an event (the event must be equal to it).
    :returns: the envelope taken.
    :raises AssertionError: if nothing is buffered, the bus is closed and drained, the
        subscription is closed, or the envelope does not match. On a mismatch the envelope has
        been taken (as tokio's ``assert_recv!`` does), and the message says whether a matching
        one is buffered further on.
    :raises TypeError: at once, taking nothing, if ``sub`` is not a
        :class:`~eventbus.Subscription` or ``expected`` is none of the above (an
        :class:`~eventbus.Envelope` included: pass its ``.event``).

    Like every helper here it never waits: let the publisher run first (publish is
    synchronous, so a publish in the test itself is enough).
    """
    __tracebackhide__ = True
    _check_sub(sub)
    _check_expected(expected)
    try:
        envelope = sub.receive_nowait()
    except WouldBlock:
        raise AssertionError(
            f"expected to receive {_expected_text(expected)} from {sub.name!r}, "
            f"but nothing is buffered ({_counters(sub.statistics())})"
        ) from None
    except EndOfStream:
        raise AssertionError(
            f"expected to receive {_expected_text(expected)} from {sub.name!r}, "
            "but the bus is closed and the subscription is drained"
        ) from None
    except ClosedResourceError:
        raise AssertionError(
            f"expected to receive {_expected_text(expected)} from {sub.name!r}, "
            "but the subscription is closed"
        ) from None
    if _matches(envelope, expected):
        return envelope
    buffered = _peek(sub, sub.statistics().buffered)
    later = next((e for e in buffered if _matches(e, expected)), None)
    hint = (
        f"\n  a match is buffered further on: {_describe(later)}"
        if later is not None
        else f"\n  no match among the {len(buffered)} still buffered"
    )
    raise AssertionError(
        f"expected to receive {_expected_text(expected)} from {sub.name!r}, "
        f"but received {_describe(envelope)}{hint}"
    )


def _check_expected(expected: object) -> None:
    if isinstance(expected, Envelope):
        raise TypeError("expected must be an event, not an Envelope: pass its .event")
    if (
        expected is None
        or isinstance(expected, str | msgspec.Struct)
        or (isinstance(expected, type) and issubclass(expected, msgspec.Struct))
    ):
        return
    raise TypeError(
        f"expected must be None, an event class, a tag string or an event, got {_got(expected)}"
    )


def _matches(envelope: Envelope[Any], expected: object) -> bool:
    if expected is None:
        return True
    if isinstance(expected, str):
        return envelope.kind == expected
    if isinstance(expected, type):
        return isinstance(envelope.event, expected)
    return bool(envelope.event == expected)


def _expected_text(expected: object) -> str:
    if expected is None:
        return "an envelope"
    if isinstance(expected, str):
        return f"an envelope of kind {expected!r}"
    if isinstance(expected, type):
        return f"a {expected.__name__}"
    return repr(expected)


def _counters(stats: SubscriptionStatistics) -> str:
    return (
        f"delivered={stats.delivered} lagged={stats.lagged} buffered={stats.buffered} "
        f"max_buffer_size={stats.max_buffer_size} overflow={stats.overflow!r}"
    )


def assert_empty(sub: Subscription[Any]) -> None:
    """Check that ``sub`` holds nothing right now and is still open. Takes nothing.

    :raises AssertionError: if an envelope is buffered (the message shows the first few), if
        the subscription is closed, or if the bus is closed (the next receive would raise
        :exc:`anyio.EndOfStream`, which is "closed", not "empty", as in tokio).
    :raises TypeError: if ``sub`` is not a :class:`~eventbus.Subscription`.
    """
    __tracebackhide__ = True
    _check_sub(sub)
    stats = sub.statistics()
    if stats.buffered:
        raise AssertionError(
            f"expected {sub.name!r} to be empty, but {stats.buffered} envelope(s) are buffered:"
            + _listing(_peek(sub, _NEAREST), stats.buffered)
        )
    if sub.closed:
        raise AssertionError(f"expected {sub.name!r} to be empty, but it is closed")
    if sub._bus.closed:
        raise AssertionError(f"expected {sub.name!r} to be empty, but the bus is closed")


def assert_lagged(sub: Subscription[Any], n: int) -> SubscriptionStatistics:
    """Check that ``sub`` has lost exactly ``n`` envelopes to its overflow policy so far.

    Unlike tokio, whose receiver reports lag at its next receive and then resets, the bus
    counts lag at publish time and never resets it: this checks the running total
    ``sub.statistics().lagged``. It takes nothing.

    :returns: the statistics it checked.
    :raises AssertionError: if the count differs (the message shows every counter).
    :raises TypeError: if ``sub`` is not a :class:`~eventbus.Subscription` or ``n`` is not an
        int.
    :raises ValueError: if ``n`` is negative.
    """
    __tracebackhide__ = True
    _check_sub(sub)
    _check_positive_int("n", n, 0)
    stats = sub.statistics()
    if stats.lagged != n:
        raise AssertionError(
            f"expected {sub.name!r} to have lagged {n}, but it lagged {stats.lagged} "
            f"({_counters(stats)})"
        )
    return stats


def assert_closed(sub: Subscription[Any]) -> None:
    """Check that the next receive on ``sub`` would end the stream. Takes nothing.

    Passes when the subscription is closed, or when the bus is closed and the subscription
    holds nothing more (the next receive raises :exc:`anyio.EndOfStream`).

    :raises AssertionError: if the subscription could still deliver: the bus is open, or it
        is closed but envelopes remain buffered (the message shows the first few).
    :raises TypeError: if ``sub`` is not a :class:`~eventbus.Subscription`.
    """
    __tracebackhide__ = True
    _check_sub(sub)
    if sub.closed:
        return
    stats = sub.statistics()
    if stats.buffered:
        state = "the bus is closed" if sub._bus.closed else "the bus is open"
        raise AssertionError(
            f"expected {sub.name!r} to be closed, but {state} and {stats.buffered} "
            "envelope(s) are still buffered:" + _listing(_peek(sub, _NEAREST), stats.buffered)
        )
    if not sub._bus.closed:
        raise AssertionError(
            f"expected {sub.name!r} to be closed, but it and its bus are open ({_counters(stats)})"
        )


# -- assertions on the audit trail ---------------------------------------------------------


def assert_audited(
    trail: AuditTrail | Auditor | Iterable[AuditEntry],
    *,
    actor: str | None = None,
    action: type[AuditAction] | AuditAction | str | None = None,
    kind: str | None = None,
) -> list[AuditEntry]:
    """Check that the audit trail holds an entry matching every given criterion::

        from audit import AgentExit, AuditTrail, attach_audit_trail

        async with attach_audit_trail(bus, AuditTrail()) as auditor:
            bus.publish(AgentStopped(id=agent_id, success=True))
            await auditor.flush()
        assert_audited(auditor, actor=str(agent_id), action=AgentExit)
        assert_audited(auditor, action=AgentExit(reason="completed"), kind="agent_stopped")
        assert_audited(auditor, action="AgentExit")

    :param trail: an :class:`audit.AuditTrail`, an :class:`audit.Auditor` (its trail is
        read; the ``audit_trail`` fixture is one) or any iterable of
        :class:`audit.AuditEntry`.
    :param actor: the entry's ``actor`` exactly, a string: an agent's id as ``str(agent_id)``,
        ``session:<id>`` or ``system``.
    :param action: an action class (``AgentExit``: any entry whose action is one), its name
        (``"AgentExit"``, as ``eventbus audit show --action`` takes it) or an action
        (``AgentExit(reason="completed")``: equal to it).
    :param kind: the event kind (tag) the entry was recorded from, e.g. ``"agent_stopped"``.
    :returns: every matching entry, oldest first (at least one).
    :raises AssertionError: if none matches. The message shows the nearest entries (those
        matching the most criteria, newest first, at most three) and which criteria each one
        misses, not the whole trail.
    :raises TypeError: if ``trail`` is none of the above, or a criterion has the wrong type
        (an event class or event as ``action``, a UUID as ``actor``, a class as ``kind``).
    :raises ValueError: if no criterion is given, or ``action`` is a string that names no
        action class (the message lists them).

    It reads what the trail holds *now* and never waits: with a queued auditor, ``await
    auditor.flush()`` first (the ``audit_trail`` fixture records inline and needs none).
    """
    __tracebackhide__ = True
    # The bus library never imports audit (tests/test_layering.py). An Auditor, AuditTrail,
    # entry or action passed in means the caller has loaded it; if it is not loaded, none of
    # them can exist, and the checks below reject everything but an empty trail.
    audit = sys.modules.get("audit")
    entries = _audit_entries(trail, audit)
    if actor is None and action is None and kind is None:
        raise ValueError("assert_audited needs at least one of actor, action, kind")
    _check_criterion_str("actor", actor)
    _check_criterion_str("kind", kind)
    criteria: list[tuple[str, str, Callable[[AuditEntry], bool]]] = []
    if actor is not None:
        criteria.append(("actor", f"actor={actor!r}", lambda e: e.actor == actor))
    if action is not None:
        criteria.append(_action_criterion(action, audit))
    if kind is not None:
        criteria.append(("kind", f"kind={kind!r}", lambda e: e.kind == kind))
    matched = [e for e in entries if all(test(e) for _, _, test in criteria)]
    if matched:
        return matched
    wanted = ", ".join(text for _, text, _ in criteria)
    message = f"expected an audit entry with {wanted}; none of the {len(entries)} entries matches"
    scored = [(sum(test(e) for _, _, test in criteria), i, e) for i, e in enumerate(entries)]
    nearest = sorted((t for t in scored if t[0] > 0), key=lambda t: (-t[0], -t[1]))[:_NEAREST]
    if nearest:
        lines = [f"{message}; nearest:"]
        for _, _, entry in nearest:
            missed = ", ".join(name for name, _, test in criteria if not test(entry))
            lines.append(f"    {_describe_entry(entry)}  (differs: {missed})")
    elif entries:
        lines = [f"{message} any criterion; latest:"]
        lines.extend(f"    {_describe_entry(e)}" for e in entries[-_NEAREST:])
    else:
        lines = [message]
    raise AssertionError("\n".join(lines))


def _describe_entry(entry: AuditEntry) -> str:
    return f"seq={entry.seq} actor={entry.actor!r} action={entry.action!r} kind={entry.kind!r}"


def _check_criterion_str(name: str, value: object) -> None:
    if value is None or isinstance(value, str):
        return
    if name == "actor":
        hint = " (an agent's actor is str(agent_id))" if isinstance(value, uuid.UUID) else ""
        raise TypeError(f"actor must be a str, got {_got(value)}{hint}")
    raise TypeError(f"{name} must be a str (an event tag), got {_got(value)}")


def _audit_entries(trail: object, audit: ModuleType | None) -> list[AuditEntry]:
    """The entries of an AuditTrail, an Auditor's trail or an iterable of entries."""
    if audit is not None and isinstance(trail, audit.Auditor):
        return list(trail.trail)
    if audit is not None and isinstance(trail, audit.AuditTrail):
        return list(trail)
    expected = "an AuditTrail, an Auditor or an iterable of AuditEntry"
    if isinstance(trail, str | bytes | msgspec.Struct) or not isinstance(trail, Iterable):
        raise TypeError(f"trail must be {expected}, got {_got(trail)}")
    entries = list(trail)
    entry_type = audit.AuditEntry if audit is not None else ()
    for entry in entries:
        if not isinstance(entry, entry_type):
            raise TypeError(f"trail must be {expected}, got a {_got(trail)} holding {_got(entry)}")
    return entries


def _action_criterion(
    action: object, audit: ModuleType | None
) -> tuple[str, str, Callable[[AuditEntry], bool]]:
    """The ``action`` criterion of assert_audited: a class, a class's name or an action."""
    classes: tuple[type, ...] = get_args(audit.AuditAction) if audit is not None else ()
    if isinstance(action, str):
        if audit is None:  # no entry exists, so nothing can match; the name cannot be checked
            return ("action", f"action={action}", lambda e: False)
        found = [cls for cls in classes if cls.__name__ == action]
        if not found:
            names = ", ".join(sorted(cls.__name__ for cls in classes))
            raise ValueError(f"action must name an audit action class ({names}), got {action!r}")
        action = found[0]
    if isinstance(action, type) and issubclass(action, classes):
        cls = action
        return ("action", f"action={cls.__name__}", lambda e: isinstance(e.action, cls))
    if isinstance(action, classes):
        return ("action", f"action={action!r}", lambda e: e.action == action)
    raise TypeError(
        f"action must be an audit action class, its name or an audit action, got {_got(action)}"
    )
