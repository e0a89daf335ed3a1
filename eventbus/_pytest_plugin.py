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
    from audit import Auditor

__all__ = ["audit_trail", "captured_events", "event_bus"]


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
async def audit_trail(event_bus: EventBus[Any]) -> AsyncIterator[Auditor]:
    """An audit trail attached to ``event_bus``; yields its :class:`audit.Auditor`.

    For async tests run by anyio (``@pytest.mark.anyio``), on either backend. The auditor
    runs in ``inline`` mode: each entry is appended inside ``publish`` itself, so the trail
    is complete as soon as ``publish`` returns, never lags, and needs no task.
    ``await audit_trail.flush()`` is therefore instant, and is all a test written for a
    queued auditor needs. Read the entries from ``audit_trail.trail`` (an
    :class:`audit.AuditTrail`: ``query``, ``last``, ``verify``...) or with
    :func:`eventbus.testing.assert_audited`, which accepts the fixture itself::

        @pytest.mark.anyio
        async def test_stop_is_audited(event_bus, audit_trail):
            event_bus.publish(AgentStopped(id=agent_id, success=True))
            await audit_trail.flush()
            assert_audited(audit_trail, actor=str(agent_id), action=AgentExit)

    The trail uses the default mapper (the whole kernel catalogue) with redaction and a hash
    chain; no sink. It is detached after the test, before ``event_bus`` closes.
    """
    from audit import AuditTrail, attach_audit_trail

    trail = AuditTrail()
    async with attach_audit_trail(event_bus, trail, mode="inline", name="audit_trail") as auditor:
        yield auditor
