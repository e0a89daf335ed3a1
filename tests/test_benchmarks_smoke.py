"""Every benchmark workload runs once at tiny sizes and measures what it claims to.

Correctness only, no timing assertions. The floors and this bus always run; a peer runs when
its package is installed (the ``bench`` extra) and is skipped with the reason otherwise.
"""

from __future__ import annotations

import msgspec
import pytest

from benchmarks import audit, codecs, latency, scale, stall, throughput
from benchmarks.common import TINY, run_fresh
from benchmarks.report import render, targets
from benchmarks.systems import SYSTEMS, System

SYSTEM_PARAMS = [pytest.param(s, id=s.name) for s in SYSTEMS]


def _available(system: type[System]) -> type[System]:
    reason = system.missing()
    if reason:
        pytest.skip(reason)
    return system


@pytest.mark.parametrize("system", SYSTEM_PARAMS)
def test_throughput_trial_delivers_every_event_to_every_subscriber(system: type[System]) -> None:
    system = _available(system)
    result = run_fresh(TINY.trial_timeout, throughput.trial, system, 3, 120)
    assert result["lost"] == 0
    assert result["deliveries_per_s"] > 0
    assert result["publish_ns"] > 0


@pytest.mark.parametrize("system", SYSTEM_PARAMS)
def test_latency_trial_records_one_sample_per_event_and_subscriber(system: type[System]) -> None:
    system = _available(system)
    result = run_fresh(TINY.trial_timeout, latency.trial, system, 2, 15, 3)
    assert result["samples"] == 2 * 15
    assert 0 < result["p50_ns"] <= result["p99_ns"]


def test_stall_trial_finds_the_floors_and_this_bus_flat_and_counts_loss_exactly() -> None:
    events = 3000
    for name in ("floor_i", "floor_ii", "eventbus", "eventbus_kinds"):
        r = stall.child(name, events, 64 * 2**20, 1.0, 20.0)
        assert r["status"] == "flat", (name, r)
        assert r["published"] == events
        assert r["healthy_delivered"] == [events, events]
        assert r["stalled_lagged"] == r["exact_lag"] == events - 256
        assert r["retained_per_event"] is not None
        assert r["retained_per_event"] <= stall.GROWTH_BYTES_PER_EVENT


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("asyncio_queue", "blocked"),
        ("anyio_streams", "blocked"),
        ("blinker", "blocked"),
        ("bubus", "blocked"),
        ("pyee", "grows"),
        ("aiopubsub", "grows"),
    ],
)
def test_stall_trial_classifies_each_peer(name: str, expected: str) -> None:
    system = _available(next(s for s in SYSTEMS if s.name == name))
    r = stall.child(system.name, 3000, 64 * 2**20, 0.2, 20.0)
    assert r["status"] == expected, r
    if expected == "blocked":
        assert r["published"] < 3000
    else:
        assert r["retained_per_event"] > stall.GROWTH_BYTES_PER_EVENT
        assert r["stalled_lagged"] is None  # these peers do not count loss


def test_stall_trial_stops_a_growing_system_at_the_memory_guard() -> None:
    system = _available(next(s for s in SYSTEMS if s.name == "aiopubsub"))
    r = stall.child(system.name, 200_000, 2**20, 1.0, 20.0)
    assert r["status"] == "grows"
    assert r["published"] < 200_000


@pytest.mark.parametrize("system", SYSTEM_PARAMS)
def test_scale_trial_measures_memory_per_idle_subscription(system: type[System]) -> None:
    system = _available(system)
    r = run_fresh(TINY.trial_timeout, scale.trial, system, 20, 3)
    assert r["bytes_per_sub"] > 0
    assert r["publish_ns"] > 0


@pytest.mark.parametrize("variant", [pytest.param(v, id=v.name) for v in audit.VARIANTS])
def test_audit_trial_records_every_event_as_one_entry(variant: audit.Variant) -> None:
    pool = audit.audit_events(64)
    r = run_fresh(TINY.trial_timeout, audit.trial, variant, pool, 300)
    assert r["entries_per_s"] > 0
    assert r["publish_ns"] > 0


def test_audit_events_mix_four_catalogue_kinds_and_carry_the_secret() -> None:
    events = audit.audit_events(64)
    assert {type(e).__name__ for e in events} == {
        "ToolExecutionStarted",
        "ToolExecutionFinished",
        "TokenUsageUpdate",
        "AgentStarted",
    }
    assert audit.SECRET.encode() in b"".join(msgspec.json.encode(e) for e in events)


def test_audit_floor_records_one_entry_per_event_in_order() -> None:
    recorder = audit.FloorRecorder(3)
    events = audit.audit_events(4)
    for event in events:
        recorder.record(event)
    assert recorder.seq == 4
    assert [e.seq for e in recorder.entries] == [2, 3, 4]
    assert [e.kind for e in recorder.entries] == ["finished", "tokens", "agent_started"]
    assert recorder.entries[-1].actor == str(events[3].id)


class _Stats(msgspec.Struct):
    seen: int = 5
    appended: int = 5
    lagged: int = 0
    gaps: int = 0
    failed: int = 0
    unmapped: int = 0
    sink_written: int = 0
    sink_errors: int = 0
    sink_lost: int = 0


def test_audit_check_rejects_a_lossy_or_leaky_trail() -> None:
    from audit import AuditTrail, Other

    variant = audit.BY_NAME["queued_chain"]
    trail = AuditTrail(10)
    for i in range(5):
        trail.append("system", Other(detail="x"), f"r{i}")
    audit.check_audit(variant, 5, 5, _Stats(), trail)  # a correct run passes
    with pytest.raises(AssertionError, match="seen 4"):
        audit.check_audit(variant, 5, 5, _Stats(seen=4), trail)
    with pytest.raises(AssertionError, match="lagged 2"):
        audit.check_audit(variant, 5, 5, _Stats(lagged=2), trail)
    trail.append("system", Other(detail="x"), audit.SECRET)
    with pytest.raises(AssertionError, match="a secret reached the trail"):
        audit.check_audit(variant, 6, 6, _Stats(seen=6, appended=6), trail)


def test_audit_run_reports_every_variant_at_tiny_sizes() -> None:
    result = audit.run(TINY)
    assert result["errors"] == {}
    for name in audit.BY_NAME:
        assert len(result["entries_per_s"][name]) == TINY.repeats
        assert all(v is not None and v > 0 for v in result["entries_per_s"][name])


def test_codecs_round_trip_and_agree_on_the_wire() -> None:
    result = codecs.run(TINY)
    assert {"msgspec_json", "msgspec_msgpack"} <= set(result["total_ns"])
    for values in result["total_ns"].values():
        assert len(values) == TINY.repeats
        assert all(v > 0 for v in values)


def test_codecs_check_rejects_a_codec_that_changes_events() -> None:
    events = codecs.mixed_events(4)
    encode, decode = codecs.codecs(events)["msgspec_json"][1]

    def lossy_decode(blob: bytes) -> object:
        return msgspec.structs.replace(decode(blob), agent_id="someone else")

    with pytest.raises(AssertionError, match="round trip changed"):
        codecs.check(events, (encode, lossy_decode))


def test_whole_harness_writes_a_report_with_targets_at_tiny_sizes() -> None:
    systems = [
        s for s in SYSTEMS if s.name in ("floor_i", "floor_ii", "eventbus", "eventbus_kinds")
    ]
    results = {
        "A": throughput.run(TINY, systems),
        "B": latency.run(TINY, systems),
        "C": stall.run(TINY, systems),
        "D": audit.run(TINY),
        "E": codecs.run(TINY),
        "F": scale.run(TINY, systems),
    }
    results["meta"] = {
        "date": "today",
        "mode": "tiny",
        "command": "test",
        "repeats": TINY.repeats,
        "seconds": 0.0,
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "python": "py",
            "platform": "p",
            "loop": "asyncio",
            "packages": {},
        },
        "skipped": {},
    }
    rows = {(r["workload"], r["target"].split(" ")[0]) for r in targets(results)}
    assert ("A S=1", "deliveries/s") in rows
    assert ("C", "memory") in rows
    assert ("D queued", "queued,") in rows
    assert ("D inline", "inline:") in rows
    assert ("D sqlite", "queued,") in rows
    assert ("F", "publish") in rows
    # The filtered variant is reported against floor (i), without a verdict, and never
    # counted as a peer the bus must beat.
    variant = [r for r in targets(results) if r["target"].startswith("eventbus_kinds")]
    assert {r["workload"] for r in variant} >= {"A S=1", "B S=1"}
    assert all(r["met"] is None and r["ratios"] for r in variant)
    assert not any("eventbus_kinds (" in r["note"] for r in targets(results))
    text = render(results)
    assert "eventbus.EventBus, kinds= filtered" in text
    assert "## Targets of issue 7" in text
    assert "## D: audit entries/s" in text
    assert "not in this harness yet" not in text


@pytest.mark.parametrize("stamp", ["envelope", "no_id", "no_id_no_time", "tuple", "bare"])
def test_the_minimal_stamping_buses_of_the_profile_deliver_every_event(stamp: str) -> None:
    from benchmarks.profiling.stamping_limit import _system

    system = _system(stamp)
    result = run_fresh(TINY.trial_timeout, throughput.trial, system, 3, 300)
    assert result["lost"] == 0
    result = run_fresh(TINY.trial_timeout, latency.trial, system, 2, 15, 3)
    assert result["samples"] == 2 * 15


@pytest.mark.parametrize("name", ["trio_channels", "eventbus", "eventbus_kinds"])
def test_the_trio_profile_delivers_every_event_and_samples_every_receipt(name: str) -> None:
    trio = pytest.importorskip("trio")
    from benchmarks.profiling.trio_backend import SYSTEMS, latency, throughput

    # 310 events: six whole bursts of 50, more than a channel's 256 slots (its publisher
    # must wait for room), and the ten left over are not published.
    rate = trio.run(throughput, SYSTEMS[name], 3, 310)  # asserts 300 deliveries each
    assert rate > 0
    p50, p99 = trio.run(latency, SYSTEMS[name], 2, 15)
    assert 0 < p50 <= p99


@pytest.mark.parametrize("index", range(4), ids=["lean", "guard", "route", "attention"])
def test_the_publish_path_variants_of_the_profile_deliver_every_event(index: int) -> None:
    from benchmarks.profiling.publish_path import VARIANTS

    result = run_fresh(TINY.trial_timeout, latency.trial, VARIANTS[index], 1, 15, 3)
    assert result["samples"] == 15
    assert 0 < result["p50_ns"] <= result["p99_ns"]
