"""Property tests: encoding is canonical and stable for generated events of every class."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_events_samples import event_strategy

from eventbus import AnyKernelEvent, Envelope, KernelEvent
from eventbus.codec import decode_json, decode_msgpack, encode_json, encode_msgpack
from eventbus.events import ALL_EVENT_TYPES


@pytest.mark.parametrize("cls", ALL_EVENT_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_encode_decode_encode_is_byte_identical(
    cls: type[KernelEvent], data: st.DataObject
) -> None:
    event = data.draw(event_strategy(cls))
    encoded = encode_json(event)
    decoded = decode_json(encoded)
    assert decoded == event
    assert type(decoded) is cls
    assert encode_json(decoded) == encoded
    packed = encode_msgpack(event)
    unpacked = decode_msgpack(packed)
    assert unpacked == event
    assert encode_msgpack(unpacked) == packed


@settings(max_examples=100, deadline=None)
@given(
    event=event_strategy(),
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    ts_ns=st.integers(min_value=0, max_value=2**63 - 1),
    ids=st.tuples(st.text(max_size=8), st.none() | st.text(max_size=8)),
    replayed=st.booleans(),
)
def test_envelopes_of_any_event_are_canonical(
    event: KernelEvent, seq: int, ts_ns: int, ids: tuple[str, str | None], replayed: bool
) -> None:
    env = Envelope(
        seq=seq,
        event_id=ids[0],
        ts_ns=ts_ns,
        kind=str(type(event).__struct_config__.tag),
        event=event,
        correlation_id=ids[1],
        replayed=replayed,
    )
    encoded = encode_json(env)
    decoded = decode_json(encoded, type=Envelope[AnyKernelEvent])
    assert decoded == env
    assert encode_json(decoded) == encoded
    packed = encode_msgpack(env)
    assert encode_msgpack(decode_msgpack(packed, type=Envelope[AnyKernelEvent])) == packed
