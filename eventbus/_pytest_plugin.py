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
    An :class:`audit.AuditTrail` fed by ``event_bus`` (see the fixture's docstring).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from ._bus import EventBus
from .testing import CapturedEvents, capture_events

__all__ = ["captured_events", "event_bus"]


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
