"""Across processes: two publishers and a restarted audit process, through JetStream."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from anyio import fail_after
from conftest import NatsServer

from audit.sinks import verify_sink

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nats_audit"
PER_PUBLISHER = 500


async def run(*args: str) -> str:
    """Run an example script to completion; return its last line of output."""
    result = await anyio.run_process(
        [sys.executable, str(EXAMPLE / args[0]), *args[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output
    return output.strip().splitlines()[-1]


async def test_audit_store_holds_every_event_once_in_per_origin_order(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    db = tmp_path / "audit.sqlite3"
    url = nats_server.url
    total = 2 * PER_PUBLISHER
    with fail_after(45):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "publisher.py", "--servers", url, "--node-id", "w1",
                          "--count", str(PER_PUBLISHER))  # fmt: skip
            tg.start_soon(run, "publisher.py", "--servers", url, "--node-id", "w2",
                          "--count", str(PER_PUBLISHER))  # fmt: skip
            # The audit process stops part-way, then a new one resumes from the durable
            # consumer and the store, while the publishers may still be running.
            first = await run("audit_service.py", "--servers", url, "--db", str(db),
                              "--until", str(total // 3))  # fmt: skip
            second = await run("audit_service.py", "--servers", url, "--db", str(db),
                               "--until", str(total))  # fmt: skip
    assert first.startswith("audit: imported=")
    assert second.endswith(f"last_seq={total}")

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, event_id FROM audit_entries ORDER BY seq").fetchall()
    assert [seq for seq, _ in rows] == list(range(1, total + 1))
    event_ids = [event_id for _, event_id in rows]
    assert len(set(event_ids)) == total  # every event exactly once
    by_origin: dict[str, list[str]] = {}
    for event_id in event_ids:
        by_origin.setdefault(event_id.split("-")[0], []).append(event_id)
    assert sorted(len(ids) for ids in by_origin.values()) == [PER_PUBLISHER, PER_PUBLISHER]
    for ids in by_origin.values():
        # A bus's event ids sort in publish order: each publisher's order is kept.
        assert ids == sorted(ids)
    assert verify_sink(db) is None  # one unbroken hash chain across both audit runs
