"""kernel-eventbus's pytest plugin: fixtures only, loaded through the ``pytest11`` entry point.

Installing the package makes these fixtures available in every pytest run, with nothing to
configure. The plugin defines no hooks and no autouse fixture, and imports only the bus and
the test kit (the audit package is imported by the ``audit_trail`` fixture when a test asks
for it), so it costs nothing to test suites that do not use it.

``event_bus``
    A fresh :class:`~eventbus.EventBus`, closed after the test. It binds to the test's event
    loop at its first use, so it works in sync tests, and in async tests on both anyio
    backends (``@pytest.mark.anyio``).
``captured_events``
    A :class:`~eventbus.testing.CapturedEvents` recording everything published on
    ``event_bus`` during the test.
``audit_mapper``
    The :class:`audit.AuditMapper` ``audit_trail`` maps events with: the default one. Override
    it in a ``conftest.py`` to audit your own events with your own mapping.
``audit_trail``
    The :class:`audit.Auditor` of a trail attached to ``event_bus`` (see the fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from ._bus import EventBus
from .testing import CapturedEvents, capture_events

if TYPE_CHECKING:
    from audit import AuditMapper, Auditor

__all__ = ["audit_mapper", "audit_trail", "captured_events", "event_bus"]


@pytest.fixture
def event_bus() -> Iterator[EventBus[Any]]:
    """A fresh :class:`~eventbus.EventBus` (default buffer size), closed after the test.

    Override it in a ``conftest.py`` to change the buffer size: every fixture of this plugin
    that needs a bus asks for ``event_bus``.
    """
    bus = EventBus[msgspec.Struct]()
    try:
        yield bus
    finally:
        bus.close()


@pytest.fixture
def captured_events(event_bus: EventBus[Any]) -> Iterator[CapturedEvents[Any]]:
    """Everything published on ``event_bus`` during the test; see :func:`capture_events`.

    It records from fixture setup, inline (no task), so it is complete as soon as each
    ``publish`` returns: ``captured_events.kinds``, ``.events``, ``.of(EventType)``.
    """
    with capture_events(event_bus) as captured:
        yield captured


@pytest.fixture
def audit_mapper() -> AuditMapper:
    """The :class:`audit.AuditMapper` the ``audit_trail`` fixture maps events with.

    By default a fresh ``AuditMapper()``: the built-in mapping of the whole kernel catalogue,
    default redaction and bounds; an event it does not cover is recorded as
    ``Other(detail=kind)`` with actor ``system``. To audit your own events with your own
    mapping, override it in a ``conftest.py`` (or a test module): ``audit_trail`` asks for
    ``audit_mapper``, so every test that uses ``audit_trail`` there gets yours::

        # conftest.py
        import pytest
        from audit import AuditMapper, ProgramInstall

        from myproject.events import DeployFinished

        @pytest.fixture
        def audit_mapper():
            mapper = AuditMapper()

            @mapper.register(DeployFinished)
            def _deploy(event):  # -> (actor, action)
                return "system", ProgramInstall(program=event.service, version=event.version)

            return mapper

    The override must return an :class:`audit.AuditMapper` (``audit_trail`` raises
    :exc:`TypeError` otherwise). A registration may also override how a catalogue event is
    audited; ``AuditMapper(builtin=False)`` records every event you did not register as
    ``Other``.
    """
    from audit import AuditMapper

    return AuditMapper()


@pytest.fixture
async def audit_trail(
    event_bus: EventBus[Any], audit_mapper: AuditMapper
) -> AsyncIterator[Auditor]:
    """An audit trail attached to ``event_bus``; yields its :class:`audit.Auditor`.

    For async tests run by anyio (``@pytest.mark.anyio``), on either backend. The auditor
    runs in ``inline`` mode: each entry is appended inside ``publish`` itself, so the trail
    is complete as soon as ``publish`` returns, never lags, and needs no task.
    ``await audit_trail.flush()`` is therefore instant, and is all a test written for a
    queued auditor needs. Read the entries from ``audit_trail.trail`` (an
    :class:`audit.AuditTrail`: ``query``, ``last``, ``verify``...) or with
    :func:`eventbus.testing.assert_audited`, which accepts the fixture itself::

        import uuid

        import pytest
        from audit import AgentExit
        from eventbus.events import AgentStopped
        from eventbus.testing import assert_audited

        @pytest.mark.anyio
        async def test_stop_is_audited(event_bus, audit_trail):
            agent_id = uuid.uuid4()
            event_bus.publish(AgentStopped(id=agent_id, success=True))
            await audit_trail.flush()
            assert_audited(audit_trail, actor=str(agent_id), action=AgentExit)

    The trail maps events with the ``audit_mapper`` fixture (by default the built-in mapping
    of the whole kernel catalogue; override that fixture for your own events), redacts, and
    keeps a hash chain; no sink. It is detached after the test, before ``event_bus`` closes.

    :raises TypeError: at setup, if ``audit_mapper`` is not an :class:`audit.AuditMapper`.
    """
    from audit import AuditMapper, AuditTrail, attach_audit_trail

    if not isinstance(audit_mapper, AuditMapper):
        raise TypeError(
            "the audit_mapper fixture must return an audit.AuditMapper, "
            f"got {type(audit_mapper).__name__}"
        )
    trail = AuditTrail()
    async with attach_audit_trail(
        event_bus, trail, mapper=audit_mapper, mode="inline", name="audit_trail"
    ) as auditor:
        yield auditor
