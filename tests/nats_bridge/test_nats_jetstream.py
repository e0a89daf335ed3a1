"""JetStream mode: the stream, acknowledged and de-duplicated export, durable import."""

from __future__ import annotations

import anyio
import nats
import pytest
from anyio import fail_after
from bridge_events import AgentStarted, BridgeEvent, Note
from conftest import NatsServer

from eventbus import Envelope, EventBus, Subscription
from eventbus.bridges.nats import NatsBridge

pytestmark = pytest.mark.anyio


async def receive(sub: Subscription[BridgeEvent], n: int) -> list[Envelope[BridgeEvent]]:
    return [await sub.receive() for _ in range(n)]


def js_bridge(
    bus: EventBus[BridgeEvent], server: NatsServer, **kwargs: object
) -> NatsBridge[BridgeEvent]:
    kwargs.setdefault("event_type", BridgeEvent)
    return NatsBridge(bus, server.url, jetstream=True, **kwargs)  # type: ignore[arg-type]


async def stream_info(server: NatsServer, stream: str = "KERNEL_EVENTS") -> object:
    nc = await nats.connect(server.url)
    try:
        return await nc.jetstream().stream_info(stream)
    finally:
        await nc.close()


async def test_stream_is_created_on_prefix_and_retried_ids_are_stored_once(
    nats_server: NatsServer,
) -> None:
    with fail_after(10):
        async with (
            EventBus[BridgeEvent]() as bus,
            js_bridge(bus, nats_server, import_=False, stream_config={"max_msgs": 1000}) as b,
        ):
            first = bus.publish(AgentStarted(agent="x"))
            bus.publish(Note(text="n"))
            bus.publish_envelope(first)  # same event_id again, as a retry would send it
            await b.flush()
            assert b.statistics().exported == 3
    info = await stream_info(nats_server)
    assert info.config.subjects == ["kernel.>"]  # type: ignore[attr-defined]
    assert info.config.max_msgs == 1000  # type: ignore[attr-defined]
    assert info.state.messages == 2  # type: ignore[attr-defined]


async def test_existing_stream_without_the_prefix_is_refused(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().add_stream(name="KERNEL_EVENTS", subjects=["elsewhere.>"])
    await nc.close()
    with fail_after(10):
        async with EventBus[BridgeEvent]() as bus:
            with pytest.raises(ValueError, match=r"^stream 'KERNEL_EVENTS' exists with subjects"):
                async with js_bridge(bus, nats_server):
                    pass


async def test_durable_consumer_resumes_after_the_last_acknowledged_message(
    nats_server: NatsServer,
) -> None:
    with fail_after(20):
        async with (
            EventBus[BridgeEvent]() as bus,
            js_bridge(bus, nats_server, import_=False) as pub,
        ):
            for i in range(10):
                bus.publish(AgentStarted(agent="p", n=i))
            await pub.flush()

            async with EventBus[BridgeEvent]() as audit_bus:
                with audit_bus.subscribe() as sub:
                    async with js_bridge(audit_bus, nats_server, export=False, durable="audit"):
                        first_run = await receive(sub, 10)

            for i in range(10, 15):
                bus.publish(AgentStarted(agent="p", n=i))
            await pub.flush()

            async with EventBus[BridgeEvent]() as audit_bus:
                with audit_bus.subscribe() as sub:
                    async with js_bridge(
                        audit_bus, nats_server, export=False, durable="audit"
                    ) as audit:
                        second_run = await receive(sub, 5)
                        pull = audit._pull
                        assert pull is not None
                        info = await pull.consumer_info()
                        # Everything in the stream was delivered; nothing else will come.
                        assert (info.delivered.stream_seq, info.num_pending) == (15, 0)
                        assert audit.statistics().imported == 5

            async with EventBus[BridgeEvent]() as late_bus:
                with late_bus.subscribe() as sub:
                    async with js_bridge(
                        late_bus, nats_server, export=False, durable="from7", start_seq=7
                    ):
                        from_seven = await receive(sub, 9)
    assert [e.event.n for e in first_run] == list(range(10))  # type: ignore[union-attr]
    assert [e.event.n for e in second_run] == list(range(10, 15))  # type: ignore[union-attr]
    assert [e.event.n for e in from_seven] == list(range(6, 15))  # type: ignore[union-attr]


async def test_own_messages_in_the_stream_are_never_imported(nats_server: NatsServer) -> None:
    with fail_after(10):
        async with (
            EventBus[BridgeEvent]() as bus,
            EventBus[BridgeEvent]() as other,
            js_bridge(bus, nats_server, node_id="self") as me,
            js_bridge(other, nats_server, node_id="other", import_=False) as them,
        ):
            with bus.subscribe() as sub:
                for i in range(5):
                    bus.publish(AgentStarted(agent="me", n=i))
                await me.flush()
                theirs = other.publish(Note(text="from other"))
                await them.flush()
                got = await receive(sub, 6)
                assert sub.statistics().buffered == 0
                assert me.statistics().import_echoes == 5
    assert [e.origin for e in got] == [None] * 5 + ["other"]
    assert got[-1].event_id == theirs.event_id


async def test_messages_are_acknowledged_only_after_the_ack_barrier(
    nats_server: NatsServer,
) -> None:
    release = anyio.Event()
    barrier_calls = 0

    async def barrier() -> None:
        nonlocal barrier_calls
        barrier_calls += 1
        await release.wait()

    with fail_after(15):
        async with (
            EventBus[BridgeEvent]() as bus,
            js_bridge(bus, nats_server, import_=False) as pub,
        ):
            for i in range(4):
                bus.publish(AgentStarted(agent="p", n=i))
            await pub.flush()
            async with EventBus[BridgeEvent]() as audit_bus:
                with audit_bus.subscribe() as sub:
                    async with js_bridge(
                        audit_bus, nats_server, export=False, durable="a", ack_barrier=barrier
                    ) as audit:
                        await receive(sub, 4)
                        pull = audit._pull
                        assert pull is not None
                        info = await pull.consumer_info()
                        assert (info.num_ack_pending, info.ack_floor.stream_seq) == (4, 0)
                        release.set()
                        while info.ack_floor.stream_seq < 4:
                            await anyio.wait_all_tasks_blocked()
                            info = await pull.consumer_info()
    assert barrier_calls >= 1


async def test_durable_left_with_unacknowledged_deliveries_resumes_at_once_in_order(
    nats_server: NatsServer,
) -> None:
    with fail_after(10):  # far below ack_wait: nothing may wait for a redelivery
        async with (
            EventBus[BridgeEvent]() as bus,
            js_bridge(bus, nats_server, import_=False) as pub,
        ):
            for i in range(6):
                bus.publish(AgentStarted(agent="p", n=i))
            await pub.flush()
        # A previous audit process fetched three messages and died before acking them.
        nc = await nats.connect(nats_server.url)
        crashed = await nc.jetstream().pull_subscribe("kernel.>", durable="audit")
        assert len(await crashed.fetch(3, timeout=2)) == 3
        await nc.close()
        async with EventBus[BridgeEvent]() as audit_bus:
            with audit_bus.subscribe() as sub:
                async with js_bridge(
                    audit_bus, nats_server, export=False, durable="audit", ack_wait=30.0
                ):
                    got = await receive(sub, 6)
    assert [e.event.n for e in got] == list(range(6))  # type: ignore[union-attr]
