"""ns per entry of each piece of the audit path, on workload D's event mix.

``python -m benchmarks.profiling.micro_audit``: each piece is timed alone over the same 1,024
events (best of 7 passes), calling the audit package's own (private) functions, then the whole
``Auditor._record`` with and without the hash chain, and the floor's record, for comparison.
Nothing in ``audit/`` is changed; the candidate rewrites at the end are measured here only.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from typing import Any

import msgspec

from audit import AuditTrail
from audit._consumer import _ACTION_SET, Auditor
from audit._entry import _DOMAIN, AuditEntry, _digest
from audit._mapper import AuditMapper, _any_secret
from audit._redact import bound_text, canonical_json
from benchmarks.audit import FloorEntry, FloorRecorder, audit_events
from eventbus import EventBus

perf = time.perf_counter_ns
PASSES = 7


def best(fn: Any, items: list[Any]) -> float:
    """Best-of-``PASSES`` ns per item of ``fn(item)``."""
    out = []
    for _ in range(PASSES):
        t0 = perf()
        for x in items:
            fn(x)
        out.append((perf() - t0) / len(items))
    return min(out)


async def main() -> None:
    events = audit_events(1024)
    mapper = AuditMapper()
    infos = [mapper._resolved.get(type(e)) or mapper._resolve(type(e)) for e in events]
    for e in events:
        mapper._resource(e, mapper._resolved[type(e)].scan)
    bus: EventBus[Any] = EventBus()
    await bus.__aenter__()
    envelopes = [bus.publish(e) for e in events]
    rows: list[tuple[str, float]] = []

    def row(label: str, fn: Any, items: list[Any] = events) -> float:
        ns = best(fn, items)
        rows.append((label, ns))
        return ns

    row("empty loop (subtract from the rows below)", lambda e: None)
    # -- the floor's per-event work --
    rec = FloorRecorder(10_000)
    row("floor: match + FloorEntry + deque append (FloorRecorder.record)", rec.record)
    dq: deque[Any] = deque(maxlen=10_000)
    fe = FloorEntry(1, "a", "b", "c")
    row("floor: deque(maxlen) append alone", lambda e: dq.append(fe))
    # -- the audit's per-event work, piece by piece --
    pairs = list(zip(events, infos, strict=True))
    row(
        "map: info lookup (mapper._resolved.get(type(event)))",
        lambda e: mapper._resolved.get(type(e)),
    )
    row(
        "map: the mapping function (_map_supervisor: match + f-strings + action)",
        lambda p: p[1].fn(p[0]),
        pairs,
    )  # type: ignore[misc]
    acts = [p[1].fn(p[0]) for p in pairs]
    row(
        "map: the return check (type(action) in _ACTION_SET, type(actor) is str)",
        lambda a: type(a[1]) not in _ACTION_SET or type(a[0]) is not str,
        acts,
    )
    row(
        "resource: whole _resource (encode + redaction check + bound)",
        lambda p: mapper._resource(p[0], p[1].scan),
        pairs,
    )  # type: ignore[misc]
    row("resource: canonical JSON alone (msgspec, order=sorted)", canonical_json)
    plain = msgspec.json.Encoder()
    row("resource: msgspec JSON unsorted, for comparison", plain.encode)
    scans = [(e, i.scan) for e, i in pairs if isinstance(i.scan, tuple)]
    row(
        f"resource: redaction check _any_secret (only {len(scans)} of 1024 events: tool_args)",
        lambda p: _any_secret(p[0], p[1], mapper._check_nodes),
        scans,
    )
    raws = [canonical_json(e) for e in events]
    row("resource: bound_text (len check + utf-8 decode)", lambda r: bound_text(r, 2048), raws)
    # hashing
    args = []
    for env, (actor, action) in zip(envelopes, acts, strict=True):
        res = mapper._resource(env.event, mapper._resolved[type(env.event)].scan)
        args.append(
            (
                1,
                env.ts_ns,
                time.time_ns(),
                actor,
                action,
                res,
                env.seq,
                env.event_id,
                env.kind,
                "syscall",
                "io",
                None,
                None,
                "0" * 64,
            )
        )
    row("hash: _digest (JSON of 13 fields + SHA-256 + hexdigest)", lambda a: _digest(*a), args)
    enc = msgspec.json.Encoder().encode
    row("hash: its JSON array of 13 fields alone", lambda a: enc((*a[:5], *a[6:])), args)
    row(
        "hash: its sha256(domain) + 2 updates + hexdigest alone (resource encoded inside)",
        lambda a: _sha(a[5]),
        args,
    )
    row("entry: AuditEntry(15 fields) construction", lambda a: AuditEntry(*a, ""), args)
    row("entry: time.time_ns() (recorded_ns)", lambda a: time.time_ns(), args)
    # the whole append and record
    trail = AuditTrail(10_000, hash_chain=False)
    row(
        "trail._append, no chain (entry + deque + counters)",
        lambda a: trail._append(
            a[1], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]
        ),
        args,
    )
    ctrail = AuditTrail(10_000, hash_chain=True)
    row(
        "trail._append, chain",
        lambda a: ctrail._append(
            a[1], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]
        ),
        args,
    )
    for chain in (False, True):
        aud = Auditor(
            bus,
            AuditTrail(10_000, hash_chain=chain),
            mapper=mapper,
            mode="inline",
            max_buffer_size=256,
            name="m",
            sink=None,
            resume=False,
            on_sink_error="raise",
            sink_batch_size=512,
            sink_buffer_size=16384,
        )
        row(
            f"Auditor._record, {'chain' if chain else 'no chain'} (everything per entry)",
            aud._record,
            envelopes,
        )
    # bus side, for the publish column
    bus2: EventBus[Any] = EventBus()
    await bus2.__aenter__()
    row("bus.publish with no subscriber (stamping)", bus2.publish)

    width = max(len(label) for label, _ in rows)
    for label, ns in rows:
        print(f"{label:<{width}}  {ns:8.0f} ns")


def _sha(resource: str) -> str:
    h = hashlib.sha256(_DOMAIN)
    h.update(b"x" * 180)
    h.update(resource.encode())
    return h.hexdigest()


if __name__ == "__main__":
    asyncio.run(main())
