"""eventbus.codec: round trips for every class, canonical bytes, envelopes, custom unions."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import msgspec
import pytest
from test_events_samples import sample_event

import eventbus.codec as codec
import eventbus.events as ev
from eventbus import AnyKernelEvent, Category, Envelope, KernelEvent
from eventbus.codec import decode_json, decode_msgpack, encode_json, encode_msgpack

CLASSES = ev.ALL_EVENT_TYPES


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_event_round_trips_through_json(cls: type[KernelEvent]) -> None:
    event = sample_event(cls)
    data = encode_json(event)
    back = decode_json(data)
    assert back == event
    assert type(back) is cls
    assert encode_json(back) == data
    assert decode_json(data, type=cls) == event


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_event_round_trips_through_msgpack(cls: type[KernelEvent]) -> None:
    event = sample_event(cls)
    data = encode_msgpack(event)
    back = decode_msgpack(data)
    assert back == event
    assert type(back) is cls
    assert encode_msgpack(back) == data
    assert decode_msgpack(data, type=cls) == event


@pytest.mark.parametrize(
    "variant",
    [
        *[v() for v in (ev.TurnOutcomeCompleted, ev.TurnOutcomeInterrupted)],
        ev.TurnOutcomeBudget(),
        ev.TurnOutcomeMaxSteps(),
        ev.TurnOutcomeFailed("boom"),
        ev.TurnOutcomeLoopGuard("identical call"),
        ev.TurnOutcomeCycleHandoff(3),
    ],
    ids=repr,
)
def test_every_turn_outcome_round_trips(variant: Any) -> None:
    event = ev.TurnEnded(turn_id="t", outcome=variant, total_steps=7)
    assert decode_json(encode_json(event)) == event
    assert decode_msgpack(encode_msgpack(event)) == event


@pytest.mark.parametrize(
    ("outcome", "wire"),
    [
        (ev.ToolOutcomeSuccess(), b'{"type":"success"}'),
        (ev.ToolOutcomeBlocked("policy"), b'{"reason":"policy","type":"blocked"}'),
        (ev.ToolOutcomeGuardHalt("loop"), b'{"reason":"loop","type":"guard_halt"}'),
        (ev.ToolOutcomeTimeout(), b'{"type":"timeout"}'),
        (ev.ToolOutcomeToolError("ENOENT"), b'{"message":"ENOENT","type":"tool_error"}'),
    ],
)
def test_tool_outcomes_are_internally_tagged_by_type(outcome: Any, wire: bytes) -> None:
    assert encode_json(outcome) == wire
    assert decode_json(wire, type=ev.ToolOutcome) == outcome


@pytest.mark.parametrize(
    "action",
    [
        ev.CapacityActionContinue(),
        ev.CapacityActionTrim(),
        ev.CapacityActionHandoff(),
        ev.CapacityActionAbort("over budget"),
    ],
    ids=repr,
)
def test_every_capacity_action_round_trips(action: Any) -> None:
    assert decode_json(encode_json(action), type=ev.CapacityAction) == action


def test_encoding_is_canonical_whatever_the_input_key_order() -> None:
    shuffled = (
        b'{"tool_args":{"z":1,"a":{"y":2,"b":3}},"tool_name":"read_file",'
        b'"tool_call_id":"c1","session_id":"s1","event_type":"tool_execution_started"}'
    )
    canonical = (
        b'{"event_type":"tool_execution_started","session_id":"s1",'
        b'"tool_args":{"a":{"b":3,"y":2},"z":1},"tool_call_id":"c1","tool_name":"read_file"}'
    )
    assert encode_json(decode_json(shuffled)) == canonical
    assert encode_json(decode_json(canonical)) == canonical


def test_equal_events_encode_to_equal_bytes() -> None:
    a = ev.ToolExecutionStarted(
        session_id="s", tool_name="t", tool_call_id="c", tool_args={"x": 1, "y": 2}
    )
    b = ev.ToolExecutionStarted(
        session_id="s", tool_name="t", tool_call_id="c", tool_args={"y": 2, "x": 1}
    )
    assert a == b
    assert encode_json(a) == encode_json(b)
    assert encode_msgpack(a) == encode_msgpack(b)


def test_equal_values_of_different_types_encode_differently_as_documented() -> None:
    # The module docs: bytes depend on values and their types; Python's == is looser.
    events = [
        ev.ToolExecutionStarted(session_id="s", tool_name="t", tool_call_id="c", tool_args=n)
        for n in ({"n": 1}, {"n": 1.0}, {"n": True}, {"n": -0.0}, {"n": 0.0})
    ]
    assert events[0] == events[1] == events[2]
    assert events[3] == events[4]
    assert [decode_json(encode_json(e), ev.ToolExecutionStarted).tool_args for e in events] == [
        {"n": 1},
        {"n": 1.0},
        {"n": True},
        {"n": -0.0},
        {"n": 0.0},
    ]
    assert len({encode_json(e) for e in events}) == 5
    assert len({encode_msgpack(e) for e in events}) == 5
    # Typed fields hold their declared type once decoded, so there equal means equal bytes.
    score = '{"event_type":"evolution_max_reached","seed_id":"%s","final_score":%s,"iterations":1}'
    seed = "0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01"
    from_int, from_float = (decode_json(score % (seed, n)) for n in ("1", "1.0"))
    assert from_int == from_float
    assert encode_json(from_int) == encode_json(from_float)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_envelopes_round_trip_with_their_event(cls: type[KernelEvent]) -> None:
    event = sample_event(cls)
    env = Envelope(
        seq=42,
        event_id="018f-abc-0000000000000042",
        ts_ns=1_700_000_000_000_000_000,
        kind=str(cls.__struct_config__.tag),
        event=event,
        correlation_id="corr",
        causation_id=None,
        origin="node-a",
        replayed=True,
    )
    for encode, decode in ((encode_json, decode_json), (encode_msgpack, decode_msgpack)):
        data = encode(env)
        back = decode(data, type=Envelope[AnyKernelEvent])
        assert back == env
        assert type(back.event) is cls
        assert encode(back) == data


class DeployFinished(KernelEvent, tag="deploy_finished", frozen=True, kw_only=True):
    """A user-defined event, outside the built-in catalogue."""

    category: ClassVar[Category] = Category.PROC
    service: str
    replicas: int


def test_custom_events_decode_with_the_users_union() -> None:
    mine = DeployFinished(service="api", replicas=3)
    data = encode_json(mine)
    assert data == b'{"event_type":"deploy_finished","replicas":3,"service":"api"}'
    assert decode_json(data, type=DeployFinished | AnyKernelEvent) == mine
    builtin = ev.AgentStarted(id=uuid.uuid4())
    assert decode_json(encode_json(builtin), type=DeployFinished | AnyKernelEvent) == builtin
    with pytest.raises(msgspec.ValidationError, match=r"^Invalid value 'deploy_finished'"):
        decode_json(data)  # not part of the built-in union


def test_custom_events_travel_in_envelopes() -> None:
    env = Envelope(
        seq=1,
        event_id="e",
        ts_ns=1,
        kind="deploy_finished",
        event=DeployFinished(service="api", replicas=2),
    )
    data = encode_msgpack(env)
    assert decode_msgpack(data, type=Envelope[DeployFinished | AnyKernelEvent]) == env


def test_str_bytearray_and_memoryview_inputs_decode_alike() -> None:
    event = sample_event(ev.ToolExecutionProgress)
    data = encode_json(event)
    assert decode_json(data.decode()) == event
    assert decode_json(bytearray(data)) == event
    assert decode_json(memoryview(data)) == event
    packed = encode_msgpack(event)
    assert decode_msgpack(bytearray(packed)) == event
    assert decode_msgpack(memoryview(packed)) == event


def test_one_decoder_per_type_is_built_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    real_json, real_msgpack = msgspec.json.Decoder, msgspec.msgpack.Decoder

    def counting_json(tp: Any, **kw: Any) -> Any:
        built.append(("json", tp))
        return real_json(tp, **kw)

    def counting_msgpack(tp: Any, **kw: Any) -> Any:
        built.append(("msgpack", tp))
        return real_msgpack(tp, **kw)

    monkeypatch.setattr(msgspec.json, "Decoder", counting_json)
    monkeypatch.setattr(msgspec.msgpack, "Decoder", counting_msgpack)

    class Probe(KernelEvent, tag="probe_event", frozen=True, kw_only=True):
        category: ClassVar[Category] = Category.SCHED
        n: int

    data, packed = encode_json(Probe(n=1)), encode_msgpack(Probe(n=1))
    for _ in range(3):
        assert decode_json(data, type=Probe) == Probe(n=1)
        assert decode_msgpack(packed, type=Probe) == Probe(n=1)
        # A union rebuilt on every call is equal, not identical: still one decoder.
        assert decode_json(data, type=Probe | DeployFinished) == Probe(n=1)
    assert built == [("json", Probe), ("msgpack", Probe), ("json", Probe | DeployFinished)]


def test_decoder_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_CACHE_MAX", 4)
    monkeypatch.setattr(codec, "_json_decoders", {})
    monkeypatch.setattr(codec, "_json_by_id", {})
    types = [list[int], list[str], list[bool], list[float], list[bytes], list[None]]
    for tp in types:
        decode_json(b"[]", type=tp)
    assert len(codec._json_decoders) == 4
    assert list(codec._json_decoders) == types[2:]
    assert len(codec._json_by_id) <= 4
