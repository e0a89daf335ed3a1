"""The consumer: attach_audit_trail in its three modes, flush, gaps, failures, lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
import msgspec
import pytest
from structlog.testing import capture_logs
from test_events_samples import sample_events

from audit import (
    AgentSpawn,
    AuditEntry,
    AuditMapper,
    AuditTrail,
    EventsDropped,
    Other,
    attach_audit_trail,
    map_kernel_event,
)
from eventbus import EventBus
from eventbus.events import AgentStarted, Category, KernelEvent, ToolExecutionStarted

pytestmark = pytest.mark.anyio

AGENT = "11111111-2222-4333-8444-555555555555"


class Ping(KernelEvent, tag="ping", frozen=True, kw_only=True):
    category: ClassVar[Category] = Category.IPC
    n: int
    api_key: str = "sk-secret"


def pinger() -> AuditMapper:
    mapper = AuditMapper()
    mapper.register(Ping, lambda e: (f"pinger-{e.n % 2}", Other(detail=f"ping:{e.n}")))
    return mapper


def ping_numbers(entries: list[AuditEntry]) -> list[int]:
    return [
        int(e.action.detail.split(":")[1])
        for e in entries
        if isinstance(e.action, Other) and e.action.detail.startswith("ping:")
    ]


# -- what an entry holds ------------------------------------------------------------------------


async def test_an_entry_carries_the_envelope_and_the_mapping() -> None:
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=pinger()) as auditor:
        envelope = bus.publish(Ping(n=3), correlation_id="corr", causation_id="cause")
        await auditor.flush()
    [entry] = trail.entries()
    assert entry.seq == 1
    assert entry.ts_ns == envelope.ts_ns
    assert entry.recorded_ns >= envelope.ts_ns
    assert (entry.event_seq, entry.event_id, entry.kind) == (
        envelope.seq,
        envelope.event_id,
        "ping",
    )
    assert (entry.correlation_id, entry.causation_id) == ("corr", "cause")
    assert (entry.category, entry.primitive) == ("ipc", "sched")
    assert (entry.actor, entry.action) == ("pinger-1", Other(detail="ping:3"))
    assert msgspec.json.decode(entry.resource) == {
        "api_key": "[REDACTED]",
        "event_type": "ping",
        "n": 3,
    }
    assert trail.verify() is None


async def test_every_catalogue_event_is_recorded_and_mapped() -> None:
    events = sample_events()
    trail = AuditTrail()
    mapper = AuditMapper()
    async with EventBus() as bus, attach_audit_trail(bus, trail) as auditor:
        envelopes = [bus.publish(event) for event in events]
        await auditor.flush()
    entries = trail.entries()
    assert len(entries) == len(events)
    for entry, envelope, event in zip(entries, envelopes, events, strict=True):
        assert (entry.actor, entry.action) == map_kernel_event(event)  # type: ignore[arg-type]
        assert entry.event_seq == envelope.seq
        assert entry.kind == envelope.kind == type(event).__struct_config__.tag
        assert entry.category == type(event).category.value
        assert entry.primitive == type(event).category.primitive.value
        assert entry.resource == mapper.resource(event)
        assert not entry.resource.startswith("<")
    assert auditor.statistics().unmapped == 0
    assert auditor.statistics().failed == 0
    assert trail.verify() is None


async def test_unknown_events_are_recorded_and_counted() -> None:
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail) as auditor:
        bus.publish(Ping(n=1))
        bus.publish(AgentStarted(id=AGENT))  # type: ignore[arg-type]
        await auditor.flush()
    assert [(e.actor, e.action) for e in trail] == [
        ("system", Other(detail="ping")),
        (AGENT, AgentSpawn(task_type="started")),
    ]
    assert auditor.statistics().unmapped == 1
    assert trail.statistics().unmapped == 1


# -- flush and lifecycle ------------------------------------------------------------------------


async def test_flush_returns_once_everything_published_before_is_in_the_trail() -> None:
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=pinger()) as auditor:
        for i in range(1000):
            bus.publish(Ping(n=i))
        assert len(trail) == 0  # the consumer has not run yet
        await auditor.flush()
        assert ping_numbers(trail.entries()) == list(range(1000))
        await auditor.flush()  # nothing new: returns at once
    assert auditor.statistics().seen == 1000


async def test_it_subscribes_before_it_returns() -> None:
    trail = AuditTrail()
    async with EventBus() as bus:
        bus.publish(Ping(n=0))  # before: not audited
        async with attach_audit_trail(bus, trail, mapper=pinger()) as auditor:
            bus.publish(Ping(n=1))  # no checkpoint in between
            await auditor.flush()
    assert ping_numbers(trail.entries()) == [1]


async def test_leaving_the_block_drains_what_was_published() -> None:
    trail = AuditTrail()
    async with EventBus() as bus:
        async with attach_audit_trail(bus, trail, mapper=pinger()):
            for i in range(300):
                bus.publish(Ping(n=i))
        assert bus.statistics().open_subscriptions == 0
    assert ping_numbers(trail.entries()) == list(range(300))


async def test_leaving_the_block_while_the_consumer_yields_between_batches_loses_nothing() -> None:
    # 600 envelopes are more than one batch: the consumer records a batch, then yields, and
    # the stop request reaches it there; what it had not taken yet is still recorded.
    trail = AuditTrail()
    async with EventBus() as bus:
        async with attach_audit_trail(bus, trail, mapper=pinger()) as auditor:
            for i in range(600):
                bus.publish(Ping(n=i))
            await anyio.lowlevel.checkpoint()  # the consumer takes a batch and yields
        stats = auditor.statistics()
    assert ping_numbers(trail.entries()) == list(range(600))
    assert (stats.seen, stats.lagged, stats.gaps) == (600, 0, 0)


async def test_it_runs_in_a_task_group_with_start() -> None:
    trail = AuditTrail()
    async with EventBus() as bus, anyio.create_task_group() as tg:
        auditor = await tg.start(attach_audit_trail(bus, trail, mapper=pinger()))
        for i in range(5):
            bus.publish(Ping(n=i))
        await auditor.flush()
        assert ping_numbers(trail.entries()) == [0, 1, 2, 3, 4]
        bus.publish(Ping(n=5))
        tg.cancel_scope.cancel()  # cancelling still records what was published
    assert ping_numbers(trail.entries()) == [0, 1, 2, 3, 4, 5]
    assert bus.statistics().open_subscriptions == 0


async def test_it_ends_when_the_bus_closes() -> None:
    trail = AuditTrail()
    bus: EventBus[Any] = EventBus()
    async with anyio.create_task_group() as tg:
        auditor = await tg.start(attach_audit_trail(bus, trail, mapper=pinger()))
        bus.publish(Ping(n=1))
        bus.close()
    assert ping_numbers(trail.entries()) == [1]
    with anyio.fail_after(5):
        await auditor.flush()  # stopped: returns at once


async def test_an_auditor_runs_once() -> None:
    trail = AuditTrail()
    async with EventBus() as bus:
        auditor = attach_audit_trail(bus, trail)
        async with auditor:
            pass
        with pytest.raises(RuntimeError, match=r"^an Auditor runs once"):
            await auditor.__aenter__()


async def test_flush_before_start_is_an_error() -> None:
    async with EventBus() as bus:
        auditor = attach_audit_trail(bus, AuditTrail())
        with pytest.raises(RuntimeError, match=r"^the auditor has not been started$"):
            await auditor.flush()


def test_arguments_are_validated() -> None:
    bus: EventBus[Any] = EventBus()
    trail = AuditTrail()
    with pytest.raises(
        ValueError, match=r"^mode must be one of 'queued', 'lossless', 'inline', got 'x'$"
    ):
        attach_audit_trail(bus, trail, mode="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^max_buffer_size must be >= 1, got 0$"):
        attach_audit_trail(bus, trail, max_buffer_size=0)
    with pytest.raises(ValueError, match=r"^on_sink_error must be 'raise' or 'count', got 'x'$"):
        attach_audit_trail(bus, trail, on_sink_error="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^resume=True needs a sink to resume from$"):
        attach_audit_trail(bus, trail, resume=True)
    with pytest.raises(TypeError, match=r"^trail must be an AuditTrail, got list$"):
        attach_audit_trail(bus, [])  # type: ignore[arg-type]
    # A sink is checked at once, not at the first flush inside the consumer's task group.
    with pytest.raises(
        TypeError, match=r"^sink must be an AuditSink \(write, load_tail and close\), got object$"
    ):
        attach_audit_trail(bus, trail, sink=object())  # type: ignore[arg-type]


class _DuckSink:
    """A user's sink that inherits nothing: it only has the protocol's three methods."""

    def __init__(self) -> None:
        self.written: list[AuditEntry] = []

    def write(self, entries: Sequence[AuditEntry]) -> None:
        self.written.extend(entries)

    def load_tail(self, n: int) -> list[AuditEntry]:
        return self.written[-n:] if n else []

    def close(self) -> None:
        pass


async def test_a_duck_typed_sink_is_accepted_and_a_sink_class_is_refused_at_once() -> None:
    trail = AuditTrail()
    sink = _DuckSink()
    async with EventBus() as bus, attach_audit_trail(bus, trail, sink=sink) as auditor:
        bus.publish(Ping(n=1))
        await auditor.flush()
    assert sink.written == trail.entries()
    # The class has the three methods too, but is no sink: refused now, not at the first write.
    with pytest.raises(
        TypeError,
        match=r"^sink must be an AuditSink \(write, load_tail and close\), "
        r"got the class _DuckSink$",
    ):
        attach_audit_trail(EventBus(), AuditTrail(), sink=_DuckSink)  # type: ignore[arg-type]


# -- queued: gaps become EventsDropped ----------------------------------------------------------


async def test_a_lagging_consumer_records_the_gap_where_it_happened() -> None:
    trail = AuditTrail()
    mapper = pinger()
    async with (
        EventBus() as bus,
        attach_audit_trail(bus, trail, mapper=mapper, max_buffer_size=4) as auditor,
    ):
        bus.publish(Ping(n=0))
        bus.publish(Ping(n=1))
        await auditor.flush()
        with capture_logs() as logs:
            for i in range(2, 12):  # ten envelopes into a queue of four: six lost
                bus.publish(Ping(n=i))
            await auditor.flush()
    entries = trail.entries()
    assert [e.event_seq for e in entries] == [1, 2, None, 9, 10, 11, 12]
    gap = entries[2]
    assert gap.action == EventsDropped(count=6, first_seq=3, last_seq=8)
    assert (gap.actor, gap.kind, gap.resource) == ("system", "audit:events_dropped", "")
    assert gap.ts_ns == entries[3].ts_ns
    stats = auditor.statistics()
    assert (stats.seen, stats.lagged, stats.gaps, stats.appended) == (6, 6, 1, 7)
    assert trail.statistics().dropped == 6
    lagged = [log for log in logs if log["event"] == "audit_lagged"]
    assert lagged == [
        {
            "event": "audit_lagged",
            "log_level": "warning",
            "name": "audit",
            "dropped": 6,
            "first_seq": 3,
            "last_seq": 8,
            "max_buffer_size": 4,
        }
    ]
    assert trail.verify() is None


async def test_a_rate_limited_lag_record_spans_every_gap_it_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # audit_lagged is logged at most once a second; an operator saw dropped=31672 next to a
    # first_seq..last_seq of the last gap alone (854 seqs). The range now starts at the first
    # gap the record counts.
    import audit._consumer as consumer_module

    now = [10_000_000_000]
    monkeypatch.setattr(consumer_module.time, "monotonic_ns", lambda: now[0])
    trail = AuditTrail()
    async with (
        EventBus() as bus,
        attach_audit_trail(bus, trail, mapper=pinger(), max_buffer_size=2) as auditor,
    ):
        with capture_logs() as logs:
            for second in (0.0, 0.1, 0.2, 2.0):  # a record, two silent gaps, a record
                now[0] += int(second * 1e9)
                for i in range(5):  # five into a queue of two: three lost each time
                    bus.publish(Ping(n=i))
                await auditor.flush()
    gaps = [e.action for e in trail if isinstance(e.action, EventsDropped)]
    assert [g.count for g in gaps] == [3, 3, 3, 3]
    lagged = [
        (e["dropped"], e["first_seq"], e["last_seq"]) for e in logs if e["event"] == "audit_lagged"
    ]
    assert lagged == [
        (3, gaps[0].first_seq, gaps[0].last_seq),
        (9, gaps[1].first_seq, gaps[3].last_seq),
    ]


async def test_a_replayed_seq_jump_is_not_a_gap() -> None:
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=pinger()) as auditor:
        first = bus.publish(Ping(n=0))
        bus.publish_envelope(msgspec.structs.replace(first, seq=50), keep_seq=True)
        bus.publish(Ping(n=1))
        await auditor.flush()
    assert [e.event_seq for e in trail] == [1, 50, 51]
    assert trail.statistics().dropped == 0


async def test_soak_every_published_event_is_an_entry_or_counted_as_dropped() -> None:
    published = 200_000
    trail = AuditTrail(capacity=5_000)
    with anyio.fail_after(60):
        async with (
            EventBus() as bus,
            attach_audit_trail(bus, trail, mapper=pinger(), max_buffer_size=256) as auditor,
        ):
            for i in range(published):
                bus.publish(Ping(n=i))
                if i % 1000 == 999:
                    await anyio.lowlevel.checkpoint()  # the consumer gets a turn, briefly
            await auditor.flush()
    stats = auditor.statistics()
    trail_stats = trail.statistics()
    assert stats.seen + trail_stats.dropped == published
    assert stats.lagged == trail_stats.dropped > 0
    assert stats.seen > 0
    assert trail_stats.appended == stats.seen + stats.gaps
    assert trail.last_seq == trail_stats.appended
    entries = trail.entries()
    for before, gap, after in zip(entries, entries[1:], entries[2:], strict=False):
        if isinstance(gap.action, EventsDropped):
            assert before.event_seq == gap.action.first_seq - 1
            assert after.event_seq == gap.action.last_seq + 1
            assert gap.action.count == gap.action.last_seq - gap.action.first_seq + 1
    assert trail.verify() is None


# -- lossless and inline ------------------------------------------------------------------------


async def test_lossless_makes_publish_raise_and_apublish_wait() -> None:
    trail = AuditTrail()
    async with (
        EventBus() as bus,
        attach_audit_trail(
            bus, trail, mapper=pinger(), mode="lossless", max_buffer_size=2
        ) as auditor,
    ):
        bus.publish(Ping(n=0))
        bus.publish(Ping(n=1))
        with pytest.raises(anyio.WouldBlock):
            bus.publish(Ping(n=2))
        for i in range(2, 500):
            await bus.apublish(Ping(n=i))
        await auditor.flush()
    assert ping_numbers(trail.entries()) == list(range(500))
    assert auditor.statistics().lagged == 0
    assert trail.statistics().dropped == 0


async def test_inline_appends_during_publish() -> None:
    trail = AuditTrail()
    async with EventBus() as bus:
        async with attach_audit_trail(bus, trail, mapper=pinger(), mode="inline") as auditor:
            envelope = bus.publish(Ping(n=7))
            [entry] = trail.entries()  # no await since publish
            assert entry.event_seq == envelope.seq
            for i in range(10_000):
                bus.publish(Ping(n=i))
            assert len(trail) == 10_001
            await auditor.flush()
        bus.publish(Ping(n=99))  # detached on exit
    assert len(trail) == 10_001
    assert auditor.statistics().lagged == 0
    assert bus.statistics().open_subscriptions == 0


# -- failures -----------------------------------------------------------------------------------


async def test_a_raising_mapper_is_recorded_and_does_not_stop_the_consumer() -> None:
    mapper = pinger()

    class Boom(KernelEvent, tag="boom", frozen=True, kw_only=True):
        category: ClassVar[Category] = Category.SCHED

    def explode(event: Boom) -> tuple[str, Other]:
        raise ValueError("bad mapping")

    mapper.register(Boom, explode)
    trail = AuditTrail()
    with capture_logs() as logs:
        async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=mapper) as auditor:
            bus.publish(Boom())
            bus.publish(Boom())
            bus.publish(Ping(n=1))
            await auditor.flush()
    entries = trail.entries()
    assert [(e.actor, e.action) for e in entries[:2]] == [
        ("system", Other(detail="mapping_failed:boom:ValueError: bad mapping")),
    ] * 2
    assert entries[0].resource == '{"event_type":"boom"}'
    assert entries[2].action == Other(detail="ping:1")
    assert auditor.statistics().failed == 2
    failures = [log for log in logs if log["event"] == "audit_mapping_failed"]
    assert len(failures) == 1  # once per kind
    assert failures[0]["kind"] == "boom"


async def test_a_raising_redactor_never_stores_the_unredacted_event() -> None:
    def broken(value: Any) -> Any:
        raise KeyError("nope")

    trail = AuditTrail()
    mapper = AuditMapper(redact=broken)
    async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=mapper) as auditor:
        bus.publish(
            ToolExecutionStarted(
                session_id="s", tool_name="t", tool_call_id="c", tool_args={"password": "pw1"}
            )
        )
        await auditor.flush()
    [entry] = trail.entries()
    assert entry.action == Other(detail="mapping_failed:tool_execution_started:KeyError: 'nope'")
    assert "pw1" not in entry.resource
    assert auditor.statistics().failed == 1


async def test_a_mapping_function_must_return_an_actor_and_an_action() -> None:
    mapper = AuditMapper()
    mapper.register(Ping, lambda e: ("actor", "not an action"))
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=mapper) as auditor:
        bus.publish(Ping(n=1))
        await auditor.flush()
    [entry] = trail.entries()
    assert isinstance(entry.action, Other)
    assert entry.action.detail == (
        "mapping_failed:ping:TypeError: a mapping function must return (str, AuditAction), "
        "got (str, str)"
    )


@pytest.mark.parametrize(
    ("detail", "error"),
    [
        (object(), "TypeError: Encoding objects of type object is unsupported"),
        (123, "ValidationError: Expected `str`, got `int` - at `$.detail`"),
    ],
)
@pytest.mark.parametrize("mode", ["queued", "inline"])
async def test_an_action_that_would_not_survive_json_is_a_mapping_failure(
    mode: str, detail: object, error: str
) -> None:
    # msgspec does not validate a Struct built in Python: without the check, the chain's hash
    # (or the sink's encode) would raise out of the consumer, or a sink would write JSON that
    # no longer decodes as an entry.
    mapper = AuditMapper()
    mapper.register(Ping, lambda e: ("actor", Other(detail=detail)))  # type: ignore[arg-type]
    mapper.register(AgentStarted, lambda e: ("agent", Other(detail="fine")))
    trail = AuditTrail(hash_chain=True)
    async with (
        EventBus() as bus,
        attach_audit_trail(bus, trail, mapper=mapper, mode=mode) as auditor,  # type: ignore[arg-type]
    ):
        bus.publish(Ping(n=1))
        bus.publish(AgentStarted(id=AGENT))  # type: ignore[arg-type]
        await auditor.flush()
    first, second = trail.entries()
    assert first.actor == "system"
    assert first.action == Other(detail=f"mapping_failed:ping:{error}")
    assert second.action == Other(detail="fine")
    assert auditor.statistics().failed == 1
    assert trail.verify() is None
    assert msgspec.json.decode(msgspec.json.encode(first), type=AuditEntry) == first


async def test_an_unencodable_event_is_recorded_with_a_marker() -> None:
    class Opaque(KernelEvent, tag="opaque", frozen=True, kw_only=True):
        category: ClassVar[Category] = Category.SCHED
        handle: object

    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail) as auditor:
        bus.publish(Opaque(handle=object()))
        await auditor.flush()
    [entry] = trail.entries()
    assert entry.resource.startswith("<unencodable: ")
    assert entry.action == Other(detail="opaque")
    assert auditor.statistics().failed == 0


# -- the inlined append --------------------------------------------------------------------------


async def test_recorded_entries_equal_what_the_trail_would_append_and_chain() -> None:
    # The consumer appends without going through AuditTrail._append; every entry must be the
    # one it would have built, hashes included, also for cut resources, failed mappings and
    # unmapped events; and its inlined eviction must keep the anchor as _append does.
    class Boom(KernelEvent, tag="boom", frozen=True, kw_only=True):
        category: ClassVar[Category] = Category.SCHED

    def explode(event: Boom) -> tuple[str, Other]:
        raise ValueError("bad mapping")

    mapper = pinger()
    mapper_small = AuditMapper(max_resource_bytes=64)  # Ping unmapped, resources cut
    for m in (mapper, mapper_small):
        m.register(Boom, explode)
        trail = AuditTrail()
        small = AuditTrail(capacity=5)
        async with (
            EventBus() as bus,
            attach_audit_trail(bus, trail, mapper=m) as auditor,
            attach_audit_trail(bus, small, mapper=m, name="small") as small_auditor,
        ):
            bus.publish(
                ToolExecutionStarted(
                    session_id="s", tool_name="t", tool_call_id="c", tool_args={"x": "é" * 100}
                )
            )
            for event in sample_events():
                bus.publish(event)
            bus.publish(Ping(n=3))
            bus.publish(Boom())
            await auditor.flush()
            await small_auditor.flush()
        entries = trail.entries()
        assert len(entries) == auditor.statistics().appended == len(sample_events()) + 3
        assert auditor.statistics().failed == 1
        assert trail.verify() is None
        twin = AuditTrail(capacity=len(entries))
        for e in entries:
            twin._seq = e.seq - 1
            twin._prev = e.prev_hash
            again = twin._append(
                e.ts_ns,
                e.actor,
                e.action,
                e.resource,
                e.event_seq,
                e.event_id,
                e.kind,
                e.category,
                e.primitive,
                e.correlation_id,
                e.causation_id,
                e.recorded_ns,
            )
            assert again == e
        assert any("…[truncated" in e.resource for e in entries) == (m is mapper_small)
        assert small.statistics().evicted == len(entries) - 5
        assert small.anchor == (len(entries) - 5, small.entries()[0].prev_hash)
        assert small.verify() is None


async def test_a_mapping_failure_keeps_only_the_start_of_a_long_error() -> None:
    def explode(event: Ping) -> tuple[str, Other]:
        raise ValueError("x" * 1000)

    mapper = AuditMapper()
    mapper.register(Ping, explode)
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=mapper) as auditor:
        bus.publish(Ping(n=1))
        await auditor.flush()
    [entry] = trail.entries()
    text = ("ValueError: " + "x" * 1000)[:200]
    assert entry.action == Other(detail=f"mapping_failed:ping:{text}…")


async def test_a_mapping_function_may_write_events_dropped_and_it_is_counted() -> None:
    mapper = AuditMapper()
    mapper.register(
        Ping, lambda e: ("system", EventsDropped(count=e.n, first_seq=1, last_seq=e.n))
    )
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail, mapper=mapper) as auditor:
        bus.publish(Ping(n=4))
        bus.publish(AgentStarted(id=AGENT))  # type: ignore[arg-type]
        await auditor.flush()
    assert trail.statistics().dropped == 4


async def test_an_unencodable_value_in_a_plain_field_gets_the_marker_too() -> None:
    # A class whose fields can never hold a secret takes the no-redaction path; an encoding
    # failure there is still recorded as unencodable, not as a failed mapping.
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail) as auditor:
        bus.publish(AgentStarted(id=object()))  # type: ignore[arg-type]
        await auditor.flush()
    [entry] = trail.entries()
    assert entry.resource.startswith("<unencodable: ")
    assert entry.action == AgentSpawn(task_type="started")
    assert auditor.statistics().failed == 0
