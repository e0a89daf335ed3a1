"""The audit process: one durable JetStream consumer feeding an audit trail in SQLite.

    python examples/nats_audit/audit_service.py --servers nats://127.0.0.1:4222 \\
        --db audit.sqlite3 --until 2000

It imports every envelope of the stream into a local bus, where a lossless audit consumer
records it in ``--db``. A message is acknowledged only after ``auditor.flush()`` returned,
that is once its entry is committed to SQLite; so a restarted process resumes right after the
last stored entry (durable consumer ``--durable``, ``resume=True`` continues the trail's seq
and hash chain). It stops once the store holds ``--until`` entries, or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from audit import AuditTrail, attach_audit_trail
from audit.sinks import SqliteSink
from eventbus import Envelope, EventBus, KernelEvent
from eventbus.bridges.nats import NatsBridge


async def main(servers: str, db: str, durable: str, until: int | None) -> None:
    trail = AuditTrail()
    with SqliteSink(db) as sink:
        async with (
            EventBus[KernelEvent]() as bus,
            attach_audit_trail(bus, trail, mode="lossless", sink=sink, resume=True) as auditor,
            NatsBridge(
                bus,
                servers,
                node_id=f"audit-{durable}",
                jetstream=True,
                export=False,
                durable=durable,
                ack_barrier=auditor.flush,
            ) as bridge,
        ):
            restored = trail.last_seq  # entries already in the store from earlier runs
            # Woken by a tap on each import: a tap never lags (a one-slot subscription as a
            # doorbell would, and log every loss).
            arrived = anyio.Event()

            def ring(_: Envelope[KernelEvent]) -> None:
                arrived.set()

            remove_tap = bus.add_tap(ring)
            try:
                while until is None or restored + bridge.statistics().imported < until:
                    await arrived.wait()
                    arrived = anyio.Event()
            finally:
                remove_tap()
            await auditor.flush()
            stats = bridge.statistics()
    print(
        f"audit: imported={stats.imported} appended={trail.statistics().appended} "
        f"last_seq={trail.last_seq}",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="nats://127.0.0.1:4222")
    parser.add_argument("--db", default="audit.sqlite3")
    parser.add_argument("--durable", default="audit")
    parser.add_argument("--until", type=int, default=None, help="stop after this many entries")
    args = parser.parse_args()
    try:
        anyio.run(main, args.servers, args.db, args.durable, args.until)
    except KeyboardInterrupt:  # what was imported was recorded and written before this
        print("audit: stopped (Ctrl-C); the store holds every acknowledged entry", flush=True)
        sys.exit(130)
