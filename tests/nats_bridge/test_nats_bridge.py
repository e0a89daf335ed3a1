"""The NATS bridge against a real nats-server: export, import, echo, JetStream, durability."""

from __future__ import annotations

import contextlib
import inspect
import pydoc
import uuid

import msgspec
import nats
import pytest
from anyio import fail_after
from bridge_events import AgentStarted, BridgeEvent, MessageSent, Note
from conftest import NatsServer

from eventbus import Envelope, EventBus, KernelEvent, Subscription, events
from eventbus.bridges.nats import (
    MSG_ID_HEADER,
    ORIGIN_HEADER,
    NatsBridge,
    json_codec,
    subject_for,
)

pytestmark = pytest.mark.anyio


async def receive(sub: Subscription[BridgeEvent], n: int) -> list[Envelope[BridgeEvent]]:
    """Receive exactly ``n`` envelopes (the caller bounds the wait with fail_after)."""
    return [await sub.receive() for _ in range(n)]


def bridge(
    bus: EventBus[BridgeEvent], server: NatsServer, **kwargs: object
) -> NatsBridge[BridgeEvent]:
    kwargs.setdefault("event_type", BridgeEvent)
    return NatsBridge(bus, server.url, **kwargs)  # type: ignore[arg-type]


def test_subject_is_prefix_category_kind() -> None:
    assert subject_for(AgentStarted) == "kernel.proc.agent_started"
    assert subject_for(MessageSent, "org.kernel") == "org.kernel.ipc.message_sent"
    assert subject_for(Note) == "kernel.other.note"


async def test_import_keeps_the_remote_envelope_fields_and_origin(nats_server: NatsServer) -> None:
    with fail_after(10):
        async with (
            EventBus[BridgeEvent]() as bus_a,
            EventBus[BridgeEvent]() as bus_b,
            bridge(bus_a, nats_server, node_id="a", import_=False) as a,
            bridge(bus_b, nats_server, node_id="b", export=False),
        ):
            with bus_b.subscribe() as sub:
                sent = [
                    bus_a.publish(AgentStarted(agent="x", n=1), correlation_id="c-1"),
                    bus_a.publish(MessageSent(text="hi"), causation_id="e-0"),
                    bus_a.publish(Note(text="plain")),
                ]
                got = await receive(sub, 3)
                assert a.statistics().exported == 3
        for s, g in zip(sent, got, strict=True):
            assert (g.event_id, g.ts_ns, g.kind, g.event) == (s.event_id, s.ts_ns, s.kind, s.event)
            assert (g.correlation_id, g.causation_id) == (s.correlation_id, s.causation_id)
            assert g.origin == "a"
            assert s.origin is None
        assert [g.seq for g in got] == [1, 2, 3]  # renumbered by the local bus


async def test_messages_carry_subject_msg_id_and_origin_headers(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    seen = nc.subscribe("kernel.>")
    sub = await seen
    try:
        with fail_after(10):
            async with (
                EventBus[BridgeEvent]() as bus,
                bridge(bus, nats_server, node_id="n1", import_=False) as b,
            ):
                e1 = bus.publish(AgentStarted(agent="x"))
                e2 = bus.publish(Note(text="t"))
                await b.flush()
                m1 = await sub.next_msg(timeout=5)
                m2 = await sub.next_msg(timeout=5)
    finally:
        await nc.close()
    assert (m1.subject, m2.subject) == ("kernel.proc.agent_started", "kernel.other.note")
    assert m1.headers == {MSG_ID_HEADER: e1.event_id, ORIGIN_HEADER: "n1"}
    assert m2.headers is not None
    assert m2.headers[MSG_ID_HEADER] == e2.event_id
    decoded = msgspec.msgpack.decode(m1.data, type=Envelope[BridgeEvent])
    assert decoded == msgspec.structs.replace(e1, origin="n1")


async def test_json_codec_puts_readable_json_on_the_wire(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    sub = await nc.subscribe("kernel.>")
    try:
        with fail_after(10):
            async with (
                EventBus[BridgeEvent]() as bus,
                EventBus[BridgeEvent]() as other,
                bridge(bus, nats_server, codec="json", import_=False) as b,
                bridge(other, nats_server, codec="json", export=False),
            ):
                with other.subscribe() as received:
                    sent = bus.publish(MessageSent(text="héllo"))
                    await b.flush()
                    msg = await sub.next_msg(timeout=5)
                    (got,) = await receive(received, 1)
    finally:
        await nc.close()
    wire = msgspec.json.decode(msg.data)
    assert wire["event"] == {"type": "message_sent", "text": "héllo"}
    assert wire["event_id"] == sent.event_id
    assert got.event == sent.event
    assert json_codec(BridgeEvent).decode(msg.data).event_id == sent.event_id


async def test_three_nodes_see_each_event_once_and_never_echo(nats_server: NatsServer) -> None:
    names = ["a", "b", "c"]
    per_node = 20
    with fail_after(20):
        async with contextlib.AsyncExitStack() as stack:
            buses = [await stack.enter_async_context(EventBus[BridgeEvent]()) for _ in names]
            bridges = [
                await stack.enter_async_context(bridge(bus, nats_server, node_id=name))
                for bus, name in zip(buses, names, strict=True)
            ]
            subs = [stack.enter_context(bus.subscribe(max_buffer_size=1000)) for bus in buses]
            # Round 1: every node publishes its events; each node must see all 3 * per_node.
            for bus, name in zip(buses, names, strict=True):
                for i in range(per_node):
                    bus.publish(AgentStarted(agent=name, n=i))
            got = [await receive(sub, 3 * per_node) for sub in subs]
            # Round 2: a marker per node. NATS keeps each connection's order, so once every
            # marker has arrived, any re-export of a round-1 event would have arrived too.
            for bus, name in zip(buses, names, strict=True):
                bus.publish(Note(text=f"marker-{name}"))
            for sub in subs:
                got_markers = await receive(sub, 3)
                assert sorted(e.event.text for e in got_markers) == [
                    "marker-a",
                    "marker-b",
                    "marker-c",
                ]
                assert sub.statistics().buffered == 0
            stats = [b.statistics() for b in bridges]
    for name, envelopes, stat in zip(names, got, stats, strict=True):
        by_origin: dict[str | None, list[int]] = {}
        for env in envelopes:
            assert isinstance(env.event, AgentStarted)
            by_origin.setdefault(env.origin, []).append(env.event.n)
            assert (env.origin is None) == (env.event.agent == name)
        # Each remote node's events once, in its publish order; the local ones once.
        assert by_origin == {o: list(range(per_node)) for o in by_origin}
        assert len(by_origin) == 3
        assert stat.exported == per_node + 1  # only its own events: nothing re-exported
        assert stat.imported == 2 * (per_node + 1)


async def test_kinds_restrict_what_crosses_the_bridge(nats_server: NatsServer) -> None:
    with fail_after(10):
        async with (
            EventBus[BridgeEvent]() as bus_a,
            EventBus[BridgeEvent]() as bus_b,
            bridge(bus_a, nats_server, import_=False) as a,
            bridge(bus_b, nats_server, export=False, kinds=[MessageSent, "note"]),
        ):
            with bus_b.subscribe() as sub:
                bus_a.publish(AgentStarted(agent="skip"))
                bus_a.publish(MessageSent(text="m"))
                bus_a.publish(AgentStarted(agent="skip"))
                bus_a.publish(Note(text="n"))
                got = await receive(sub, 2)
                await a.flush()
                assert sub.statistics().buffered == 0
    assert [e.kind for e in got] == ["message_sent", "note"]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_is_refused_with_a_clear_error(anyio_backend: str) -> None:
    async with EventBus[BridgeEvent]() as bus:
        with pytest.raises(RuntimeError, match=r"^NatsBridge runs only on the asyncio backend"):
            async with NatsBridge(bus, "nats://127.0.0.1:1", event_type=BridgeEvent):
                pass


async def test_unreachable_server_fails_at_once_with_connection_error() -> None:
    with fail_after(5):
        async with EventBus[BridgeEvent]() as bus:
            with pytest.raises(ConnectionError, match=r"^cannot connect to NATS at nats://127"):
                async with NatsBridge(bus, "nats://127.0.0.1:1", event_type=BridgeEvent):
                    pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject_prefix": "a.*"}, r"^each subject_prefix token must be a non-empty NATS"),
        ({"subject_prefix": ""}, r"^subject_prefix must be a non-empty str"),
        ({"export": False, "import_": False}, r"^export and import_ must not both be false$"),
        ({"durable": "d"}, r"^durable and start_seq need jetstream=True$"),
        ({"jetstream": True, "start_seq": 0}, r"^start_seq must be >= 1, got 0$"),
        ({"max_buffer_size": 0}, r"^max_buffer_size must be >= 1, got 0$"),
        ({"fetch_batch": 0}, r"^fetch_batch must be >= 1, got 0$"),
        ({"codec": "yaml"}, r"^codec must be 'msgpack', 'json' or a Codec object"),
        ({"ack_timeout": 0}, r"^ack_timeout must be > 0, got 0$"),
        # nats-py strips header values: "n1 " would go out as "n1", another node's id (its
        # importer would drop the messages as its own echoes) and a shorter header than the
        # size check counted.
        ({"node_id": "n1 "}, r"^node_id must be a non-empty printable str without leading or "),
        ({"node_id": " n1"}, r"^node_id must be .*, got ' n1'$"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NatsBridge(EventBus[BridgeEvent](), event_type=BridgeEvent, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["max_buffer_size", "max_message_bytes", "fetch_batch"])
def test_sizes_of_the_wrong_type_are_a_type_error(name: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name} must be an int, got float$"):
        NatsBridge(EventBus[BridgeEvent](), event_type=BridgeEvent, **{name: 8.0})  # type: ignore[arg-type]


@pytest.mark.parametrize("export", [True, False])
def test_kinds_are_checked_as_the_bus_checks_them(export: bool) -> None:
    bus = EventBus[BridgeEvent]()
    with pytest.raises(
        ValueError, match=r"^kinds must not be empty \(pass None for every kind\)$"
    ):
        NatsBridge(bus, event_type=BridgeEvent, export=export, import_=True, kinds=[])
    with pytest.raises(TypeError, match=r"^kinds must hold event classes or tag strings, got 3$"):
        NatsBridge(bus, event_type=BridgeEvent, export=export, import_=True, kinds=[3])  # type: ignore[list-item]


async def test_a_single_tag_string_is_one_kind(nats_server: NatsServer) -> None:
    with fail_after(10):
        async with (
            EventBus[BridgeEvent]() as bus_a,
            EventBus[BridgeEvent]() as bus_b,
            bridge(bus_a, nats_server, import_=False) as a,
            bridge(bus_b, nats_server, export=False, kinds="note"),
        ):
            with bus_b.subscribe() as sub:
                bus_a.publish(Note(text="n"))
                bus_a.publish(MessageSent(text="skip"))
                bus_a.publish(Note(text="m"))
                got = await receive(sub, 2)
                await a.flush()
                assert sub.statistics().buffered == 0
    assert [e.event for e in got] == [Note(text="n"), Note(text="m")]


def test_help_names_the_default_event_type_instead_of_listing_the_union() -> None:
    # The union as the default printed its ~85 member classes in help() and the signature.
    signature = str(inspect.signature(NatsBridge))
    assert "event_type: 'Any' = AnyKernelEvent," in signature
    assert len(signature) < 1200
    assert "eventbus.events._" not in pydoc.render_doc(NatsBridge)


async def test_the_default_event_type_carries_kernel_events(nats_server: NatsServer) -> None:
    with fail_after(10):
        async with (
            EventBus[KernelEvent]() as bus_a,
            EventBus[KernelEvent]() as bus_b,
            NatsBridge(bus_a, nats_server.url, import_=False) as a,
            NatsBridge(bus_b, nats_server.url, export=False),
        ):
            with bus_b.subscribe() as sub:
                sent = bus_a.publish(events.AgentStarted(id=uuid.uuid4()))
                await a.flush()
                got = await sub.receive()
    assert (got.event_id, got.event) == (sent.event_id, sent.event)
