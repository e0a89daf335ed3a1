"""Workload E: encode + decode the same events with msgspec and with pydantic v2.

The same ``e_events`` events (half the mid-sized tool event, half two small ones) are encoded
to JSON one by one and decoded back through the tagged union, as a log writer and a bridge
would: msgspec with one ``Encoder`` and one ``Decoder(KernelEvent)`` built once; pydantic with
``model_dump_json()`` and a discriminated-union ``TypeAdapter.validate_json`` built once; plus
msgspec's MessagePack for reference. Every codec's output is checked to round-trip to equal
events before it is timed. Per trial: ns per event for encode, decode and both.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import msgspec

from .common import Config, perf_ns, progress
from .events import KernelEvent, mixed_events, pydantic_twins

Codec = tuple[Callable[[Any], bytes], Callable[[bytes], Any]]


def codecs(events: list[Any]) -> dict[str, tuple[list[Any], Codec]]:
    """Each codec with the event objects it encodes (pydantic encodes its twins)."""
    out: dict[str, tuple[list[Any], Codec]] = {}
    enc = msgspec.json.Encoder()
    dec = msgspec.json.Decoder(KernelEvent)
    out["msgspec_json"] = (events, (enc.encode, dec.decode))
    penc = msgspec.msgpack.Encoder()
    pdec = msgspec.msgpack.Decoder(KernelEvent)
    out["msgspec_msgpack"] = (events, (penc.encode, pdec.decode))
    if importlib.util.find_spec("pydantic") is not None:
        to_pydantic, adapter = pydantic_twins()
        twins = [to_pydantic(e) for e in events]
        pcodec: Codec = (lambda m: m.model_dump_json().encode(), adapter.validate_json)
        out["pydantic_json"] = (twins, pcodec)
    return out


def check(events: list[Any], codec: Codec) -> None:
    """Round-trip every event; raise ``AssertionError`` if one comes back different."""
    encode, decode = codec
    for event in events:
        back = decode(encode(event))
        if back != event:
            raise AssertionError(f"round trip changed {event!r} into {back!r}")


def same_wire(events: list[Any], twins: list[Any], codec: Codec, pcodec: Codec) -> None:
    """msgspec and pydantic must write JSON that decodes to the same data."""
    for e, t in zip(events, twins, strict=True):
        a = msgspec.json.decode(codec[0](e))
        b = msgspec.json.decode(pcodec[0](t))
        if a != b:
            raise AssertionError(f"msgspec wrote {a!r}, pydantic wrote {b!r}")


def trial(events: list[Any], codec: Codec) -> dict[str, float]:
    encode, decode = codec
    t0 = perf_ns()
    blobs = [encode(e) for e in events]
    t1 = perf_ns()
    for b in blobs:
        decode(b)
    t2 = perf_ns()
    n = len(events)
    return {"encode_ns": (t1 - t0) / n, "decode_ns": (t2 - t1) / n, "total_ns": (t2 - t0) / n}


def run(cfg: Config) -> dict[str, Any]:
    """Run workload E, interleaved and repeated; returns the JSON-able result."""
    events = mixed_events(cfg.e_events)
    table = codecs(events)
    for objs, codec in table.values():
        check(objs, codec)
        trial(objs, codec)  # warm-up
    if "pydantic_json" in table:
        same_wire(
            events, table["pydantic_json"][0], table["msgspec_json"][1], table["pydantic_json"][1]
        )
    names = list(table)
    result: dict[str, Any] = {
        "events": len(events),
        "missing": [] if "pydantic_json" in table else ["pydantic_json: pydantic not installed"],
        "encode_ns": {n: [] for n in names},
        "decode_ns": {n: [] for n in names},
        "total_ns": {n: [] for n in names},
    }
    for rep in range(cfg.repeats):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            objs, codec = table[name]
            r = trial(objs, codec)
            for key in ("encode_ns", "decode_ns", "total_ns"):
                result[key][name].append(r[key])
    progress("  E done")
    return result
