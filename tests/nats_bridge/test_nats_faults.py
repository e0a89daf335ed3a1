"""Faults: a server restarted mid-run, a full export buffer, bad messages, credentials, TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import nats
import pytest
from anyio import fail_after
from bridge_events import AgentStarted, BridgeEvent, MessageSent
from conftest import ManualClock, NatsServer, NatsServerFactory
from structlog.testing import capture_logs

from eventbus import Envelope, EventBus, Subscription
from eventbus.bridges.nats import NatsBridge

pytestmark = pytest.mark.anyio


async def receive(sub: Subscription[BridgeEvent], n: int) -> list[Envelope[BridgeEvent]]:
    return [await sub.receive() for _ in range(n)]


def make_bridge(bus: EventBus[BridgeEvent], url: str, **kwargs: object) -> NatsBridge[BridgeEvent]:
    kwargs.setdefault("event_type", BridgeEvent)
    kwargs.setdefault("reconnect_time_wait", 0.1)
    kwargs.setdefault("ack_timeout", 1.0)
    return NatsBridge(bus, url, **kwargs)  # type: ignore[arg-type]


async def test_server_restart_mid_run_loses_nothing_with_jetstream(
    nats_server: NatsServer,
) -> None:
    with fail_after(30):
        async with (
            EventBus[BridgeEvent]() as bus,
            EventBus[BridgeEvent]() as audit_bus,
            make_bridge(bus, nats_server.url, jetstream=True, import_=False) as pub,
        ):
            with audit_bus.subscribe(max_buffer_size=1000) as sub:
                async with make_bridge(
                    audit_bus, nats_server.url, jetstream=True, export=False, durable="audit"
                ) as audit:
                    for i in range(50):
                        bus.publish(AgentStarted(agent="p", n=i))
                    before = await receive(sub, 50)
                    nats_server.stop()
                    for i in range(50, 100):  # published while the server is down
                        bus.publish(AgentStarted(agent="p", n=i))
                    nats_server.start()
                    after = await receive(sub, 50)
                    await pub.flush()
                    stats = pub.statistics()
                    assert stats.exported == 100
                    assert stats.export_lagged == 0
                    assert stats.reconnects >= 1
                    assert audit.statistics().reconnects >= 1
                    # The durable consumer has nothing else to deliver: no duplicates.
                    pull = audit._pull
                    assert pull is not None
                    info = await pull.consumer_info()
                    assert (info.delivered.stream_seq, info.num_pending) == (100, 0)
                assert sub.statistics().buffered == 0
    assert [e.event.n for e in before + after] == list(range(100))  # type: ignore[union-attr]


async def test_while_disconnected_the_export_buffer_is_bounded_and_losses_are_counted(
    nats_server: NatsServer,
) -> None:
    with fail_after(30):
        async with (
            EventBus[BridgeEvent]() as bus,
            EventBus[BridgeEvent]() as audit_bus,
            make_bridge(
                bus, nats_server.url, jetstream=True, import_=False, max_buffer_size=8
            ) as pub,
        ):
            with audit_bus.subscribe(max_buffer_size=100) as sub:
                async with make_bridge(
                    audit_bus, nats_server.url, jetstream=True, export=False, durable="audit"
                ):
                    bus.publish(AgentStarted(agent="p", n=0))
                    await pub.flush()
                    nats_server.stop()
                    with capture_logs() as logs:
                        # Synchronous publishes: the exporter cannot run in between, so its
                        # queue of 8 keeps the newest 8 and counts 12 lost at once.
                        for i in range(1, 21):
                            bus.publish(AgentStarted(agent="p", n=i))
                    assert pub.statistics().export_lagged == 12
                    assert pub.statistics().export_buffered == 8
                    assert [e["event"] for e in logs] == ["subscription_lagged"]
                    nats_server.start()
                    got = await receive(sub, 9)
                    await pub.flush()
                    stats = pub.statistics()
        matched = 21
        assert stats.exported + stats.export_lagged + stats.export_failed == matched
        assert stats.exported == 9
    assert [e.event.n for e in got] == [0, *range(13, 21)]  # type: ignore[union-attr]


@pytest.mark.parametrize("jetstream", [False, True], ids=["core", "jetstream"])
async def test_malformed_message_is_counted_logged_and_skipped(
    nats_server: NatsServer, jetstream: bool
) -> None:
    with fail_after(15):
        async with (
            EventBus[BridgeEvent]() as bus,
            EventBus[BridgeEvent]() as sender_bus,
            make_bridge(bus, nats_server.url, jetstream=jetstream, export=False) as b,
            make_bridge(sender_bus, nats_server.url, jetstream=jetstream, import_=False) as sender,
        ):
            nc = await nats.connect(nats_server.url)
            with bus.subscribe() as sub, capture_logs() as logs:
                # Bad, then the wrong shape, three times: six messages, logged 1st, 2nd, 4th.
                for garbage in (b"\xc1 not msgpack", b"\x81\xa1x\x01") * 3:
                    if jetstream:  # stored before the valid one below, so delivered first
                        await nc.jetstream().publish("kernel.proc.agent_started", garbage)
                    else:
                        await nc.publish("kernel.proc.agent_started", garbage)
                await nc.flush()
                await nc.close()
                sent = sender_bus.publish(AgentStarted(agent="after"))
                await sender.flush()
                (got,) = await receive(sub, 1)
            stats = b.statistics()
    assert got.event_id == sent.event_id  # the bridge kept running
    assert (stats.malformed, stats.imported) == (6, 1)
    malformed = [e for e in logs if e["event"] == "nats_message_malformed"]
    assert [e["malformed"] for e in malformed] == [1, 2, 4]  # throttled
    assert malformed[0]["subject"] == "kernel.proc.agent_started"
    assert malformed[0]["log_level"] == "error"


@pytest.mark.parametrize("jetstream", [False, True], ids=["core", "jetstream"])
async def test_oversized_message_is_rejected_with_a_clear_log_line(
    nats_server: NatsServer, jetstream: bool
) -> None:
    with fail_after(15):
        async with (
            EventBus[BridgeEvent]() as bus,
            EventBus[BridgeEvent]() as sender_bus,
            make_bridge(
                bus, nats_server.url, jetstream=jetstream, export=False, max_message_bytes=512
            ) as b,
            make_bridge(sender_bus, nats_server.url, jetstream=jetstream, import_=False) as sender,
        ):
            with bus.subscribe() as sub, capture_logs() as logs:
                sender_bus.publish(MessageSent(text="x" * 2000))
                small = sender_bus.publish(MessageSent(text="small"))
                await sender.flush()
                (got,) = await receive(sub, 1)
            stats = b.statistics()
    assert got.event_id == small.event_id
    assert (stats.oversized, stats.imported) == (1, 1)
    (line,) = [e for e in logs if e["event"] == "nats_message_oversized"]
    assert line["limit"] == 512
    assert line["size"] > 2000
    assert line["subject"] == "kernel.ipc.message_sent"


async def test_envelope_too_large_to_export_is_counted_and_logged(nats_server: NatsServer) -> None:
    with fail_after(10):
        async with (
            EventBus[BridgeEvent]() as bus,
            make_bridge(bus, nats_server.url, import_=False, max_message_bytes=512) as b,
        ):
            with capture_logs() as logs:
                big = bus.publish(MessageSent(text="x" * 2000))
                bus.publish(MessageSent(text="fits"))
                await b.flush()
            stats = b.statistics()
    assert (stats.export_failed, stats.exported) == (1, 1)
    (line,) = [e for e in logs if e["event"] == "nats_export_failed"]
    assert line["event_id"] == big.event_id
    assert line["reason"].startswith("oversized: ")


async def test_authenticated_server_without_credentials_fails_with_a_clear_error(
    nats_server_factory: NatsServerFactory,
) -> None:
    server = nats_server_factory("--user", "audit", "--pass", "s3cret")
    with fail_after(10):
        async with EventBus[BridgeEvent]() as bus:
            with pytest.raises(
                ConnectionError,
                match=r"Authorization Violation.*pass user/password or token\)$",
            ):
                async with make_bridge(bus, server.url):
                    pass
            with pytest.raises(ConnectionError, match=r"Authorization Violation"):
                async with make_bridge(bus, server.url, user="audit", password="wrong"):
                    pass
            async with make_bridge(bus, server.url, user="audit", password="s3cret") as b:
                assert b.statistics().connected


async def test_token_credentials_are_passed_to_the_client(
    nats_server_factory: NatsServerFactory,
) -> None:
    server = nats_server_factory("--auth", "t0ken")
    with fail_after(10):
        async with EventBus[BridgeEvent]() as bus, EventBus[BridgeEvent]() as other:
            with pytest.raises(ConnectionError, match=r"Authorization Violation"):
                async with make_bridge(bus, server.url):
                    pass
            async with (
                make_bridge(bus, server.url, token="t0ken", import_=False),
                make_bridge(other, server.url, token="t0ken", export=False),
            ):
                with other.subscribe() as sub:
                    sent = bus.publish(AgentStarted(agent="t"))
                    (got,) = await receive(sub, 1)
    assert got.event_id == sent.event_id


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_options_are_passed_to_the_client(
    nats_server_factory: NatsServerFactory, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    server = nats_server_factory("--tls", "--tlscert", str(cert), "--tlskey", str(key))
    context = ssl.create_default_context(cafile=str(cert))
    with fail_after(10):
        async with EventBus[BridgeEvent]() as bus, EventBus[BridgeEvent]() as other:
            with pytest.raises(ConnectionError, match=r"^cannot connect to NATS at "):
                async with make_bridge(bus, server.url):
                    pass
            async with (
                make_bridge(bus, server.url, tls=context, import_=False),
                make_bridge(
                    other, server.url, tls=context, tls_hostname="localhost", export=False
                ),
            ):
                with other.subscribe() as sub:
                    sent = bus.publish(AgentStarted(agent="tls"))
                    (got,) = await receive(sub, 1)
    assert got.event_id == sent.event_id


async def test_server_back_without_its_jetstream_state_recreates_stream_and_consumer(
    nats_server: NatsServer,
) -> None:
    with fail_after(30):
        async with (
            EventBus[BridgeEvent]() as bus,
            EventBus[BridgeEvent]() as audit_bus,
            make_bridge(bus, nats_server.url, jetstream=True, import_=False) as pub,
        ):
            with audit_bus.subscribe(max_buffer_size=1000) as sub:
                async with make_bridge(
                    audit_bus, nats_server.url, jetstream=True, export=False, durable="audit"
                ) as audit:
                    for i in range(5):
                        bus.publish(AgentStarted(agent="p", n=i))
                    before = await receive(sub, 5)
                    await pub.flush()
                    nats_server.stop()
                    shutil.rmtree(nats_server.store)  # the stream and the consumer are gone
                    nats_server.store.mkdir()
                    with capture_logs() as logs:
                        nats_server.start()
                        for i in range(5, 12):
                            bus.publish(AgentStarted(agent="p", n=i))
                        with fail_after(10):
                            after = await receive(sub, 7)
                            await pub.flush()
                    stats, audit_stats = pub.statistics(), audit.statistics()
                    pull = audit._pull
                    assert pull is not None
                    info = await pull.consumer_info()
    assert [e.event.n for e in before + after] == list(range(12))  # type: ignore[union-attr]
    assert (stats.exported, stats.export_lagged) == (12, 0)
    assert audit_stats.imported == 12
    # The durable consumer was recreated under its name, on the new stream from its start.
    assert (info.name, info.delivered.stream_seq, info.num_pending) == ("audit", 7, 0)  # type: ignore[union-attr]
    events = [e["event"] for e in logs]
    assert events.count("nats_stream_recreated") >= 1
    assert events.count("nats_consumer_recreated") == 1
    (recreated,) = [e for e in logs if e["event"] == "nats_consumer_recreated"]
    assert (recreated["consumer"], recreated["stream_lost"]) == ("audit", True)


async def test_a_lost_durable_consumer_is_recreated_after_what_was_delivered(
    nats_server: NatsServer,
) -> None:
    with fail_after(30):
        async with (
            EventBus[BridgeEvent]() as bus,
            EventBus[BridgeEvent]() as audit_bus,
            make_bridge(bus, nats_server.url, jetstream=True, import_=False) as pub,
        ):
            with audit_bus.subscribe(max_buffer_size=1000) as sub:
                async with make_bridge(
                    audit_bus, nats_server.url, jetstream=True, export=False, durable="audit"
                ) as audit:
                    for i in range(5):
                        bus.publish(AgentStarted(agent="p", n=i))
                    before = await receive(sub, 5)
                    await pub.flush()
                    nc = await nats.connect(nats_server.url)
                    await nc.jetstream().delete_consumer("KERNEL_EVENTS", "audit")
                    await nc.close()
                    with capture_logs() as logs:
                        nats_server.restart()  # the stream is kept, the consumer is not
                        for i in range(5, 9):
                            bus.publish(AgentStarted(agent="p", n=i))
                        after = await receive(sub, 4)
                        await pub.flush()
                    pull = audit._pull
                    assert pull is not None
                    info = await pull.consumer_info()
                    imported = audit.statistics().imported
    assert [e.event.n for e in before + after] == list(range(9))  # type: ignore[union-attr]
    assert imported == 9
    assert (info.name, info.delivered.stream_seq, info.num_pending) == ("audit", 9, 0)  # type: ignore[union-attr]
    events = [e["event"] for e in logs]
    assert "nats_stream_recreated" not in events
    (recreated,) = [e for e in logs if e["event"] == "nats_consumer_recreated"]
    assert (recreated["start_seq"], recreated["stream_lost"]) == (6, False)


@pytest.mark.parametrize(
    ("durable", "delivered"),
    [("audit", 3), (None, 3), (None, 0), ("audit", 0)],
    ids=["durable", "ephemeral", "ephemeral-before-any-delivery", "durable-before-any-delivery"],
)
async def test_a_consumer_deleted_while_the_link_holds_is_recreated_without_loss_or_repeat(
    nats_server: NatsServer, durable: str | None, delivered: int
) -> None:
    # nats-py's fetch from a deleted consumer times out as if no message came; without a
    # reconnection, only the bridge's own check notices.
    with fail_after(20):
        async with (
            EventBus[BridgeEvent]() as bus,
            EventBus[BridgeEvent]() as audit_bus,
            make_bridge(bus, nats_server.url, jetstream=True, import_=False) as pub,
        ):
            with audit_bus.subscribe(max_buffer_size=1000) as sub:
                audit = make_bridge(
                    audit_bus, nats_server.url, jetstream=True, export=False, durable=durable
                )
                clock = ManualClock()
                audit._clock = clock  # the idle import checks its consumer once it moves
                async with audit:
                    for i in range(delivered):
                        bus.publish(AgentStarted(agent="p", n=i))
                    before = await receive(sub, delivered)
                    pull = audit._pull
                    assert pull is not None
                    name = (await pull.consumer_info()).name
                    nc = await nats.connect(nats_server.url)
                    with capture_logs() as logs:
                        await nc.jetstream().delete_consumer("KERNEL_EVENTS", name)
                        for i in range(delivered, delivered + 3):
                            bus.publish(AgentStarted(agent="p", n=i))
                        await pub.flush()  # stored while the consumer is missing
                        clock.advance(60)
                        with fail_after(5):
                            after = await receive(sub, 3)
                        await nc.close()
                    pull = audit._pull
                    assert pull is not None
                    info = await pull.consumer_info()
                    stats = audit.statistics()
                    assert sub.statistics().buffered == 0  # nothing came twice
    assert [e.event.n for e in before + after] == list(range(delivered + 3))  # type: ignore[union-attr]
    assert stats.imported == delivered + 3
    assert (stats.reconnects, stats.disconnects) == (0, 0)  # the link held throughout
    assert (info.delivered.stream_seq, info.num_pending) == (delivered + 3, 0)
    if durable is not None:
        assert info.name == durable
    (recreated,) = [e for e in logs if e["event"] == "nats_consumer_recreated"]
    assert (recreated["start_seq"], recreated["stream_lost"]) == (delivered + 1, False)
