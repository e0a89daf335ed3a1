"""Size limits on the wire: the server's max_payload (also after a restart that lowered it),
the stream's max_msg_size, the import's max_message_bytes, and a connection closed for good.

Both server limits count the NATS header block with the payload; a message over
``max_payload`` makes the server close the connection (and nats-py then gives up on it), so
the bridge must refuse such an envelope itself, count it and go on with the next.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats
import pytest
from anyio import ClosedResourceError, fail_after
from bridge_events import BridgeEvent, MessageSent
from conftest import NatsServer, NatsServerFactory
from structlog.testing import capture_logs

from eventbus import Envelope, EventBus, Subscription
from eventbus.bridges.nats import MSG_ID_HEADER, ORIGIN_HEADER, NatsBridge
from eventbus.codec import encode_json, encode_msgpack

pytestmark = pytest.mark.anyio

STREAM = "KERNEL_EVENTS"
SYNC_SUBJECT = "kernel.other.sync"  # stored_ids()'s marker


def make_bridge(bus: EventBus[BridgeEvent], url: str, **kwargs: object) -> NatsBridge[BridgeEvent]:
    kwargs.setdefault("event_type", BridgeEvent)
    kwargs.setdefault("reconnect_time_wait", 0.1)
    kwargs.setdefault("ack_timeout", 1.0)
    return NatsBridge(bus, url, **kwargs)  # type: ignore[arg-type]


def max_payload_config(directory: Path, limit: int) -> Path:
    """A nats-server configuration file that sets ``max_payload`` (there is no flag for it)."""
    config = directory / f"max_payload_{limit}.conf"
    config.write_text(f"max_payload: {limit}\n")
    return config


def wire_size(envelope: Envelope[BridgeEvent], node_id: str, codec: str = "msgpack") -> int:
    """The size the server checks: the exported payload and the header block nats-py sends."""
    encode = encode_json if codec == "json" else encode_msgpack
    payload = encode(msgspec.structs.replace(envelope, origin=node_id))
    headers = f"NATS/1.0\r\n{MSG_ID_HEADER}: {envelope.event_id}\r\n"
    headers += f"{ORIGIN_HEADER}: {node_id}\r\n\r\n"
    return len(payload) + len(headers.encode())


async def create_stream(server: NatsServer, **config: object) -> None:
    """The bridges' stream, made beforehand: it also stores what core NATS publishes."""
    nc = await nats.connect(server.url)
    try:
        await nc.jetstream().add_stream(name=STREAM, subjects=["kernel.>"], **config)
    finally:
        await nc.close()


async def stored_ids(server: NatsServer) -> list[str]:
    """The event ids the stream holds, in order: what really reached the server.

    The stream stores what core NATS publishes asynchronously, in arrival order: a marker
    published with acknowledgement is stored after everything that arrived before it.
    """
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        last = (await js.publish(SYNC_SUBJECT)).seq
        first = (await js.stream_info(STREAM)).state.first_seq
        ids = []
        for seq in range(first, last + 1):
            msg = await js.get_msg(STREAM, seq)
            if msg.subject != SYNC_SUBJECT:
                assert msg.headers is not None
                ids.append(msg.headers[MSG_ID_HEADER])
        return ids
    finally:
        await nc.close()


def failures(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == "nats_export_failed"]


@pytest.mark.parametrize("jetstream", [False, True], ids=["core", "jetstream"])
async def test_envelope_over_a_max_payload_lowered_across_a_reconnection_fails_and_export_goes_on(
    nats_server: NatsServer, jetstream: bool
) -> None:
    await create_stream(nats_server)
    with fail_after(15):
        async with (
            EventBus[BridgeEvent]() as bus,
            make_bridge(bus, nats_server.url, jetstream=jetstream, import_=False) as pub,
        ):
            before = bus.publish(MessageSent(text="before"))
            await pub.flush()
            assert await stored_ids(nats_server) == [before.event_id]  # stored before the stop
            nats_server.stop()
            await pub._link_lost.wait()  # the bridge saw the link drop: it holds what follows
            with capture_logs() as logs:
                big = bus.publish(MessageSent(text="x" * 3000))
                after = bus.publish(MessageSent(text="after"))
                await anyio.wait_all_tasks_blocked()
                # Both taken and encoded, and 3 KB was within the lost connection's 1 MiB.
                assert pub.statistics().export_buffered == 0
                nats_server.extra = ("-c", str(max_payload_config(nats_server.store.parent, 1024)))
                nats_server.start()
                await pub.flush()
            stats = pub.statistics()
            assert stats.connected
        assert pub.statistics().export_abandoned == 0
    # The connection survived (the server closes one that sends too much) and went on.
    assert (stats.exported, stats.export_failed, stats.disconnects) == (2, 1, 1)
    assert await stored_ids(nats_server) == [before.event_id, after.event_id]
    (line,) = failures(logs)
    assert line["event_id"] == big.event_id
    assert line["kind"] == "message_sent"
    size = wire_size(big, pub.node_id)
    assert line["reason"] == f"oversized: {size} bytes with headers > server max_payload 1024"
    assert line["log_level"] == "error"


async def publish_sized(
    bus: EventBus[BridgeEvent], node_id: str, sizes: list[int]
) -> list[Envelope[BridgeEvent]]:
    """Publish one small envelope, then one of exactly each wire size (JSON codec)."""
    probe = bus.publish(MessageSent(text=""))
    base = wire_size(probe, node_id, "json")
    sent = [probe]
    for size in sizes:
        envelope = bus.publish(MessageSent(text="a" * (size - base)))
        assert wire_size(envelope, node_id, "json") == size  # ids and timestamps: fixed width
        sent.append(envelope)
    return sent


@pytest.mark.parametrize("jetstream", [False, True], ids=["core", "jetstream"])
async def test_header_bytes_count_against_the_server_max_payload(
    nats_server_factory: NatsServerFactory, tmp_path: Path, jetstream: bool
) -> None:
    server = nats_server_factory("-c", str(max_payload_config(tmp_path, 1024)))
    await create_stream(server)
    with fail_after(15), capture_logs() as logs:
        async with (
            EventBus[BridgeEvent]() as bus,
            make_bridge(bus, server.url, jetstream=jetstream, import_=False, codec="json") as pub,
        ):
            # The payload of the second is far below 1024 bytes: only its headers push it over.
            probe, fits, over = await publish_sized(bus, pub.node_id, [1024, 1025])
            after = bus.publish(MessageSent(text="after"))
            await pub.flush()
            stats = pub.statistics()
    assert (stats.exported, stats.export_failed, stats.disconnects) == (3, 1, 0)
    assert await stored_ids(server) == [probe.event_id, fits.event_id, after.event_id]
    (line,) = failures(logs)
    assert line["event_id"] == over.event_id
    assert line["reason"] == "oversized: 1025 bytes with headers > server max_payload 1024"


async def test_envelope_over_the_stream_max_msg_size_fails_at_once_and_export_goes_on(
    nats_server: NatsServer,
) -> None:
    with fail_after(15), capture_logs() as logs:
        async with (
            EventBus[BridgeEvent]() as bus,
            make_bridge(
                bus,
                nats_server.url,
                jetstream=True,
                import_=False,
                codec="json",
                stream_config={"max_msg_size": 1024},
            ) as pub,
        ):
            probe, fits, over = await publish_sized(bus, pub.node_id, [1024, 1025])
            after = bus.publish(MessageSent(text="after"))
            await pub.flush()
            stats = pub.statistics()
    # Refused before publishing: no acknowledgement waited for in vain, nothing retried.
    assert (stats.exported, stats.export_failed, stats.export_retries) == (3, 1, 0)
    assert await stored_ids(nats_server) == [probe.event_id, fits.event_id, after.event_id]
    (line,) = failures(logs)
    assert line["event_id"] == over.event_id
    assert line["reason"] == "oversized: 1025 bytes with headers > stream max_msg_size 1024"


async def test_stream_max_msg_size_lowered_while_running_fails_the_envelope_after_one_retry(
    nats_server: NatsServer,
) -> None:
    with fail_after(15):
        async with (
            EventBus[BridgeEvent]() as bus,
            make_bridge(
                bus, nats_server.url, jetstream=True, import_=False, ack_timeout=0.5
            ) as pub,
        ):
            nc = await nats.connect(nats_server.url)
            await nc.jetstream().update_stream(
                name=STREAM, subjects=["kernel.>"], max_msg_size=1024
            )
            await nc.close()
            with capture_logs() as logs:
                big = bus.publish(MessageSent(text="x" * 2000))
                after = bus.publish(MessageSent(text="after"))
                # The stream refuses it without an error reaching the bridge (nats-py drops it):
                # a missing acknowledgement, after which the bridge reads the stream's limit.
                await pub.flush()
            stats = pub.statistics()
    assert (stats.exported, stats.export_failed) == (1, 1)
    assert stats.export_retries == 2  # the batch of two, once
    assert await stored_ids(nats_server) == [after.event_id]
    (line,) = failures(logs)
    assert line["event_id"] == big.event_id
    assert str(line["reason"]).endswith(" bytes with headers > stream max_msg_size 1024")


async def test_stream_max_msg_size_raised_while_running_lets_what_fits_now_through(
    nats_server: NatsServer,
) -> None:
    # What an operator does on seeing nats_export_failed for the stream's limit: raise it.
    with fail_after(15):
        async with (
            EventBus[BridgeEvent]() as bus,
            make_bridge(
                bus,
                nats_server.url,
                jetstream=True,
                import_=False,
                stream_config={"max_msg_size": 1024},
            ) as pub,
        ):
            with capture_logs() as logs:
                refused = bus.publish(MessageSent(text="x" * 2000))
                await pub.flush()
            assert pub.statistics().export_failed == 1  # over the limit the stream had then
            nc = await nats.connect(nats_server.url)
            await nc.jetstream().update_stream(
                name=STREAM, subjects=["kernel.>"], max_msg_size=4096
            )
            await nc.close()
            accepted = bus.publish(MessageSent(text="x" * 2000))
            await pub.flush()
            stats = pub.statistics()
    assert (stats.exported, stats.export_failed, stats.export_retries) == (1, 1, 0)
    assert await stored_ids(nats_server) == [accepted.event_id]
    (line,) = failures(logs)
    assert line["event_id"] == refused.event_id


async def test_a_stream_limit_reread_cut_by_the_link_is_asked_again_not_taken_as_stale(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit was raised, but the re-read before refusing fails as a dropped link would:
    # refusing for good against the stale limit would lose an envelope the stream now takes.
    with fail_after(15):
        async with (
            EventBus[BridgeEvent]() as bus,
            make_bridge(
                bus,
                nats_server.url,
                jetstream=True,
                import_=False,
                stream_config={"max_msg_size": 1024},
            ) as pub,
        ):
            nc = await nats.connect(nats_server.url)
            await nc.jetstream().update_stream(
                name=STREAM, subjects=["kernel.>"], max_msg_size=4096
            )
            await nc.close()
            js = pub._js
            assert js is not None
            stream_info = js.stream_info
            calls = 0

            async def cut_once(*args: Any, **kwargs: Any) -> Any:
                nonlocal calls
                calls += 1
                if calls == 1:
                    raise nats.errors.ConnectionReconnectingError
                return await stream_info(*args, **kwargs)

            monkeypatch.setattr(js, "stream_info", cut_once)
            accepted = bus.publish(MessageSent(text="x" * 2000))
            await pub.flush()
            stats = pub.statistics()
    assert calls == 2
    assert (stats.exported, stats.export_failed) == (1, 0)
    assert await stored_ids(nats_server) == [accepted.event_id]


@pytest.mark.parametrize("jetstream", [False, True], ids=["core", "jetstream"])
async def test_connection_closed_for_good_fails_flush_and_close_counts_what_is_left(
    nats_server: NatsServer, jetstream: bool
) -> None:
    with fail_after(10), capture_logs() as logs:  # far below close_timeout: no waiting
        async with EventBus[BridgeEvent]() as bus:
            async with make_bridge(
                bus, nats_server.url, jetstream=jetstream, import_=False, close_timeout=30
            ) as pub:
                bus.publish(MessageSent(text="sent"))
                await pub.flush()
                # As nats-py does after any error the server sends (-ERR): no reconnection.
                nc = pub._nc
                assert nc is not None
                await nc.close()
                bus.publish(MessageSent(text="stranded"))
                with pytest.raises(ClosedResourceError, match=r"^the NATS connection is closed$"):
                    await pub.flush()
            stats = pub.statistics()
    assert (stats.exported, stats.export_abandoned, stats.connected) == (1, 1, False)
    (line,) = [e for e in logs if e["event"] == "nats_export_abandoned"]
    assert line["abandoned"] == 1


async def receive(sub: Subscription[BridgeEvent], n: int) -> list[Envelope[BridgeEvent]]:
    return [await sub.receive() for _ in range(n)]


@pytest.mark.parametrize("jetstream", [False, True], ids=["core", "jetstream"])
async def test_import_accepts_max_message_bytes_and_rejects_one_byte_more(
    nats_server: NatsServer, jetstream: bool
) -> None:
    limit = 600
    async with EventBus[BridgeEvent]() as origin:
        remote = msgspec.structs.replace(origin.publish(MessageSent(text="hi")), origin="remote")
    document = encode_json(remote)
    assert len(document) < limit
    with fail_after(15):
        async with (
            EventBus[BridgeEvent]() as bus,
            make_bridge(
                bus,
                nats_server.url,
                jetstream=jetstream,
                export=False,
                codec="json",
                max_message_bytes=limit,
            ) as b,
        ):
            nc = await nats.connect(nats_server.url)
            with bus.subscribe() as sub, capture_logs() as logs:
                # Trailing whitespace keeps the JSON valid: only the size differs.
                for size in (limit + 1, limit):
                    data = document + b" " * (size - len(document))
                    if jetstream:
                        await nc.jetstream().publish("kernel.ipc.message_sent", data)
                    else:
                        await nc.publish("kernel.ipc.message_sent", data)
                await nc.flush()
                await nc.close()
                (got,) = await receive(sub, 1)
            stats = b.statistics()
    assert got.event_id == remote.event_id
    assert (stats.oversized, stats.malformed, stats.imported) == (1, 0, 1)
    (line,) = [e for e in logs if e["event"] == "nats_message_oversized"]
    assert (line["size"], line["limit"]) == (limit + 1, limit)
