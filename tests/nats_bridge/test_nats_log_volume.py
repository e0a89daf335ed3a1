"""Log volume while NATS is down or failing: the first error at once, repeats summarised.

The clock is a ``ManualClock`` set as the bridge's ``_clock``, or the time passed to
``_Repeats`` directly: nothing here waits for time to pass.
"""

from __future__ import annotations

from typing import Any

import anyio
import nats
import nats.errors
import nats.js.errors
import pytest
from anyio import fail_after
from bridge_events import AgentStarted, BridgeEvent
from conftest import ManualClock, NatsServer
from structlog.testing import capture_logs

from eventbus import EventBus
from eventbus.bridges.nats import _REPEAT_LOG_INTERVAL, NatsBridge, _describe, _Repeats

pytestmark = pytest.mark.anyio


def refused(port: int) -> ConnectionRefusedError:
    """What nats-py reports for each reconnection attempt to a server that is down."""
    return ConnectionRefusedError(111, f"Connect call failed ('127.0.0.1', {port})")


def make_bridge(bus: EventBus[BridgeEvent], url: str, **kwargs: object) -> NatsBridge[BridgeEvent]:
    kwargs.setdefault("event_type", BridgeEvent)
    return NatsBridge(bus, url, **kwargs)  # type: ignore[arg-type]


def events(logs: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] in names]


# -- the throttle itself --------------------------------------------------------------------


def test_a_recurring_failure_is_logged_once_then_summarised_at_most_once_per_interval() -> None:
    trouble = _Repeats(interval=30.0)
    with capture_logs() as logs:
        for i in range(150):  # every 0.5 s for 75 s, as nats-py retries by default
            # A pool of servers: each attempt names another address, the same condition.
            trouble.failed(100.0 + i * 0.5, "nats_error", refused(5000 + i), node_id="n")
    first, *summaries = logs
    assert first == {
        "event": "nats_error",
        "log_level": "warning",
        "node_id": "n",
        "error": "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 5000)",
    }
    # Due 30 s after the previous line: at the 61st failure (t=130) and the 121st (t=160).
    assert [(s["event"], s["repeated"], s["total"], s["for_s"]) for s in summaries] == [
        ("nats_error_repeated", 60, 61, 30.0),
        ("nats_error_repeated", 60, 121, 60.0),
    ]
    assert summaries[0]["error"].endswith("('127.0.0.1', 5060)")  # the last error
    assert summaries[0]["node_id"] == "n"  # with its context
    episode = trouble.end(175.0)
    assert episode is not None
    assert (episode.failures, episode.suppressed, episode.duration_s) == (150, 149, 75.0)


def test_a_different_error_is_logged_at_once_and_the_same_errno_is_the_same_error() -> None:
    trouble = _Repeats(interval=30.0)
    with capture_logs() as logs:
        trouble.failed(0.0, "nats_error", refused(4222))
        trouble.failed(0.5, "nats_error", refused(4223))  # another server of the pool
        trouble.failed(1.0, "nats_error", nats.errors.UnexpectedEOF())
        trouble.failed(1.5, "nats_error", refused(4222))
        trouble.failed(2.0, "nats_error", nats.errors.UnexpectedEOF())
        trouble.failed(2.5, "nats_fetch_failed", nats.errors.UnexpectedEOF())  # another event
    assert [(e["event"], e["error"]) for e in logs] == [
        ("nats_error", _describe(refused(4222))),
        ("nats_error", _describe(nats.errors.UnexpectedEOF())),
        ("nats_fetch_failed", _describe(nats.errors.UnexpectedEOF())),
    ]
    episode = trouble.end(3.0)
    assert episode is not None
    assert (episode.failures, episode.suppressed) == (6, 3)


def test_after_an_episode_ends_its_first_failure_is_logged_again() -> None:
    trouble = _Repeats(interval=30.0)
    assert trouble.end(0.0) is None  # nothing failed: nothing to report
    with capture_logs() as logs:
        trouble.failed(0.0, "nats_error", refused(4222))
        trouble.failed(1.0, "nats_error", refused(4222))
        assert trouble.end(2.0) is not None
        trouble.failed(3.0, "nats_error", refused(4222))
    assert [e["event"] for e in logs] == ["nats_error", "nats_error"]
    episode = trouble.end(4.0)
    assert episode is not None
    assert (episode.failures, episode.suppressed, episode.duration_s) == (1, 0, 1.0)


def test_errors_that_never_repeat_exactly_cannot_flood_the_log() -> None:
    trouble = _Repeats(interval=30.0)
    with capture_logs() as logs:
        for i in range(100):  # a new text every time: a sid, a counter, ...
            trouble.failed(float(i) / 100, "nats_error", nats.errors.Error(f"nats: failure {i}"))
    # Eight kinds, then one more line for all the others; each still counted.
    assert len(logs) == 9
    assert logs[-1]["error"] == _describe(nats.errors.Error("nats: failure 8"))
    episode = trouble.end(1.0)
    assert episode is not None
    assert (episode.failures, episode.suppressed) == (100, 91)


def test_the_default_interval_is_thirty_seconds() -> None:
    assert _REPEAT_LOG_INTERVAL == 30.0
    assert _Repeats().interval == _REPEAT_LOG_INTERVAL


# -- the bridge: the error callback, its recovery, its statistics ---------------------------


async def test_an_outage_logs_its_first_errors_then_summaries_and_the_reconnection_totals(
    nats_server: NatsServer,
) -> None:
    clock = ManualClock(start=1000.0)
    with fail_after(10):
        async with EventBus[BridgeEvent]() as bus:
            bridge = make_bridge(bus, nats_server.url, import_=False)
            bridge._clock = clock
            async with bridge:
                with capture_logs() as logs:
                    # What nats-py calls while the server is down (driven here directly).
                    await bridge._on_error(nats.errors.UnexpectedEOF())
                    await bridge._on_disconnected()
                    for _ in range(150):
                        clock.advance(0.5)
                        await bridge._on_error(refused(nats_server.port))
                    await bridge._on_error(nats.errors.AuthorizationError())
                    clock.advance(0.25)
                    await bridge._on_reconnected()
                    clock.advance(100)  # a second, short outage: counted on its own
                    await bridge._on_disconnected()
                    clock.advance(2)
                    await bridge._on_error(refused(nats_server.port))
                    await bridge._on_reconnected()
                stats = bridge.statistics()
    assert [e["error"] for e in events(logs, "nats_error")] == [
        _describe(nats.errors.UnexpectedEOF()),
        _describe(refused(nats_server.port)),
        _describe(nats.errors.AuthorizationError()),  # a different error: at once
        _describe(refused(nats_server.port)),  # the second outage's first error
    ]
    summaries = events(logs, "nats_error_repeated")
    assert [(s["repeated"], s["total"]) for s in summaries] == [(60, 61), (60, 121)]
    assert [
        (e["down_s"], e["errors"], e["suppressed"]) for e in events(logs, "nats_reconnected")
    ] == [(75.25, 152, 149), (2.0, 1, 0)]
    assert stats.link_errors == 153


async def test_a_real_outage_logs_each_kind_of_error_once_and_counts_every_attempt(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts_failed, reconnected = anyio.Event(), anyio.Event()
    refusals = 0
    with fail_after(15):
        async with EventBus[BridgeEvent]() as bus:
            bridge = make_bridge(bus, nats_server.url, import_=False, reconnect_time_wait=0.02)
            on_error, on_reconnected = bridge._on_error, bridge._on_reconnected

            async def counting_error(exc: Exception) -> None:
                nonlocal refusals
                await on_error(exc)
                if isinstance(exc, ConnectionRefusedError):
                    refusals += 1
                    if refusals == 20:
                        attempts_failed.set()

            async def signalling_reconnected() -> None:
                await on_reconnected()
                reconnected.set()

            monkeypatch.setattr(bridge, "_on_error", counting_error)
            monkeypatch.setattr(bridge, "_on_reconnected", signalling_reconnected)
            async with bridge:
                with capture_logs() as logs:
                    nats_server.stop()
                    await attempts_failed.wait()
                    nats_server.start()
                    await reconnected.wait()
                stats = bridge.statistics()
    lines = events(logs, "nats_error")
    kinds = [line["error"].split(":")[0] for line in lines]
    assert kinds.count("ConnectionRefusedError") == 1
    assert len(kinds) == len(set(kinds))  # each kind of error once
    (line,) = events(logs, "nats_reconnected")
    assert line["errors"] == stats.link_errors >= 20
    assert line["suppressed"] == line["errors"] - len(lines)
    assert isinstance(line["down_s"], float)


# -- the bridge's loops ---------------------------------------------------------------------


async def test_a_fetch_failing_again_and_again_is_logged_once_summarised_and_its_end_reported(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(start=1000.0)
    calls = 0
    with fail_after(15):
        async with (
            EventBus[BridgeEvent]() as bus,
            EventBus[BridgeEvent]() as audit_bus,
            make_bridge(bus, nats_server.url, jetstream=True, import_=False) as pub,
        ):
            with audit_bus.subscribe() as sub:
                audit = make_bridge(
                    audit_bus, nats_server.url, jetstream=True, export=False, fetch_timeout=0.05
                )
                audit._clock = clock
                async with audit:
                    pull = audit._pull
                    assert pull is not None
                    fetch = pull.fetch

                    async def refused_five_times(*args: Any, **kwargs: Any) -> Any:
                        nonlocal calls
                        calls += 1
                        if calls <= 5:
                            clock.advance(10)
                            raise nats.js.errors.APIError(code=400, description="bad request")
                        return await fetch(*args, **kwargs)

                    with capture_logs() as logs:
                        monkeypatch.setattr(pull, "fetch", refused_five_times)
                        sent = bus.publish(AgentStarted(agent="a"))
                        await pub.flush()
                        got = await sub.receive()
                    stats = audit.statistics()
    assert got.event_id == sent.event_id
    (first,) = events(logs, "nats_fetch_failed")
    assert "bad request" in first["error"]
    # Failures at t=10, 20, 30, 40, 50 after start: the one at 40 is 30 s after the first.
    (summary,) = events(logs, "nats_fetch_failed_repeated")
    assert (summary["repeated"], summary["total"], summary["for_s"]) == (3, 4, 30.0)
    (recovered,) = events(logs, "nats_import_recovered")
    assert (recovered["failures"], recovered["suppressed"]) == (5, 4)
    assert stats.retried_errors == 5


async def test_a_publish_failing_again_and_again_is_logged_once_summarised_and_its_end_reported(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(start=1000.0)
    calls = 0
    with fail_after(15):
        async with EventBus[BridgeEvent]() as bus:
            pub = make_bridge(bus, nats_server.url, jetstream=True, import_=False)
            pub._clock = clock
            async with pub:
                js = pub._js
                assert js is not None
                publish_async = js.publish_async

                async def unavailable_four_times(*args: Any, **kwargs: Any) -> Any:
                    nonlocal calls
                    calls += 1
                    if calls <= 4:
                        clock.advance(10)
                        raise nats.js.errors.ServiceUnavailableError
                    return await publish_async(*args, **kwargs)

                monkeypatch.setattr(js, "publish_async", unavailable_four_times)
                with capture_logs() as logs:
                    bus.publish(AgentStarted(agent="a"))
                    await pub.flush()
                stats = pub.statistics()
    assert len(events(logs, "nats_export_retry")) == 1
    (summary,) = events(logs, "nats_export_retry_repeated")
    assert (summary["repeated"], summary["total"]) == (3, 4)
    (recovered,) = events(logs, "nats_export_recovered")
    assert (recovered["failures"], recovered["suppressed"]) == (4, 3)
    assert (stats.exported, stats.export_retries, stats.retried_errors) == (1, 4, 4)


async def test_an_idle_consumer_check_failing_again_and_again_is_logged_once_not_acted_on(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that stopped answering without closing the connection: fetches time out as
    # when idle, and the check of the consumer times out too.
    clock = ManualClock(start=1000.0)
    answered = anyio.Event()
    checks = 0
    with fail_after(15):
        async with EventBus[BridgeEvent]() as audit_bus:
            audit = make_bridge(
                audit_bus, nats_server.url, jetstream=True, export=False, fetch_timeout=0.05
            )
            audit._clock = clock
            async with audit:
                pull = audit._pull
                assert pull is not None
                fetch, consumer_info = pull.fetch, pull.consumer_info

                async def unanswered_fetch(*args: Any, **kwargs: Any) -> Any:
                    clock.advance(1.0)  # each idle fetch is followed by a check
                    # Waits as a fetch does; the server's "request timeout" status, which
                    # nats-py returns as [], is what a hung server would not send.
                    await fetch(*args, **kwargs)
                    raise nats.errors.TimeoutError

                async def unanswered_three_times() -> Any:
                    nonlocal checks
                    checks += 1
                    if checks <= 3:
                        raise nats.errors.TimeoutError
                    info = await consumer_info()
                    answered.set()  # the bridge logs before it next waits, before we wake
                    return info

                with capture_logs() as logs:
                    monkeypatch.setattr(pull, "fetch", unanswered_fetch)
                    monkeypatch.setattr(pull, "consumer_info", unanswered_three_times)
                    await answered.wait()
                stats = audit.statistics()
                assert audit._pull is pull  # not recreated: the consumer was never missing
    (failed,) = events(logs, "nats_consumer_check_failed")
    assert failed["error"] == "TimeoutError: nats: timeout"
    (recovered,) = events(logs, "nats_import_recovered")
    assert (recovered["failures"], recovered["suppressed"]) == (3, 2)
    assert events(logs, "nats_consumer_recreated") == []
    assert stats.retried_errors == 3
