"""Every benchmark workload runs once at tiny sizes and measures what it claims to.

Correctness only, no timing assertions. The floors and this bus always run; a peer runs when
its package is installed (the ``bench`` extra) and is skipped with the reason otherwise.
"""

from __future__ import annotations

import msgspec
import pytest

from benchmarks import codecs, latency, scale, stall, throughput
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
    for name in ("floor_i", "floor_ii", "eventbus"):
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
    systems = [s for s in SYSTEMS if s.name in ("floor_i", "floor_ii", "eventbus")]
    results = {
        "A": throughput.run(TINY, systems),
        "B": latency.run(TINY, systems),
        "C": stall.run(TINY, systems),
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
    assert ("F", "publish") in rows
    text = render(results)
    assert "## Targets of issue 7" in text
    assert "Workload D (audit) is not in this harness yet" in text
