"""Events/s through the NATS bridge between two processes, core NATS and JetStream.

    python examples/nats_audit/bench_bridge.py            # starts its own nats-server
    python examples/nats_audit/bench_bridge.py --servers nats://127.0.0.1:4222 -n 50000

A sender process publishes ``-n`` mid-sized events (``ToolExecutionStarted``) on its bus,
exported by a bridge; a receiver process imports them into its bus through another bridge.
The figure is ``n / (last arrival - first publish)``, wall clock, on one machine. In core mode
the sender waits for its export queue to drain every 1024 events, so nothing is lagged;
events the receiver could not keep up with would show as ``lost``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import anyio

from eventbus import EventBus, KernelEvent
from eventbus.bridges.nats import NatsBridge
from eventbus.events import ToolExecutionStarted

# The child processes report on stdout, where the library's log lines may land too (this
# script does not configure structlog: examples/logging_setup.py shows how an application
# does); the parent reads only the lines that start with this mark.
_MARK = "@bench"


def _marked(lines: Iterable[str]) -> list[str]:
    """The fields of the first line that starts with the mark."""
    for line in lines:
        fields = line.split()
        if fields and fields[0] == _MARK:
            return fields[1:]
    raise RuntimeError("the child process ended without reporting")


def _event(i: int) -> ToolExecutionStarted:
    return ToolExecutionStarted(
        session_id="bench-session",
        tool_name="shell",
        tool_call_id=f"call-{i}",
        tool_args={"cmd": "ls -la /tmp", "cwd": "/work", "timeout_s": 30, "env": {"A": "1"}},
    )


async def receive(servers: str, n: int, jetstream: bool, stream: str) -> None:
    async with (
        EventBus[KernelEvent](max_buffer_size=n) as bus,
        NatsBridge(bus, servers, export=False, jetstream=jetstream, stream=stream) as bridge,
    ):
        with bus.subscribe(max_buffer_size=n) as sub:
            print(_MARK, "ready", flush=True)
            got = 0
            with anyio.move_on_after(60):
                while got < n:
                    await sub.receive()
                    got += 1
            print(_MARK, "done", time.time(), got, bridge.statistics().import_dropped, flush=True)


async def send(servers: str, n: int, jetstream: bool, stream: str) -> None:
    events = [_event(i) for i in range(n)]
    async with (
        EventBus[KernelEvent]() as bus,
        NatsBridge(
            bus, servers, import_=False, jetstream=jetstream, stream=stream, max_buffer_size=4096
        ) as bridge,
    ):
        print(_MARK, "start", time.time(), flush=True)
        for i, event in enumerate(events):
            bus.publish(event)
            if i % 1024 == 1023:
                await bridge.flush()
        await bridge.flush()
        assert bridge.statistics().export_lagged == 0


def run_pair(servers: str, n: int, jetstream: bool, stream: str) -> tuple[float, int]:
    mode = ["--jetstream"] if jetstream else []
    common = [sys.executable, __file__, "--servers", servers, "-n", str(n), "--stream", stream]
    receiver = subprocess.Popen(
        [*common, "--role", "recv", *mode], stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None
    assert _marked(receiver.stdout) == ["ready"]  # subscribed before the sender starts
    sender = subprocess.run(
        [*common, "--role", "send", *mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=True,
    )
    start = float(_marked(sender.stdout.splitlines(keepends=True))[1])
    _, end, got, _dropped = _marked(receiver.stdout)
    receiver.wait()
    return n / (float(end) - start), int(got)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=None, help="default: start a local nats-server")
    parser.add_argument("-n", type=int, default=50_000)
    parser.add_argument("--role", choices=["send", "recv"], default=None)
    parser.add_argument("--jetstream", action="store_true")
    parser.add_argument("--stream", default="BENCH_EVENTS")
    args = parser.parse_args()
    if args.role == "recv":
        anyio.run(receive, args.servers, args.n, args.jetstream, args.stream)
        return
    if args.role == "send":
        anyio.run(send, args.servers, args.n, args.jetstream, args.stream)
        return
    server = None
    servers = args.servers
    if servers is None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        store = tempfile.mkdtemp()
        server = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", "14999", "-sd", store],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert server.stderr is not None
        while "Server is ready" not in server.stderr.readline():
            pass
        servers = "nats://127.0.0.1:14999"
    try:
        for jetstream in (False, True):
            rate, got = run_pair(servers, args.n, jetstream, f"{args.stream}{int(jetstream)}")
            label = "jetstream" if jetstream else "core NATS"
            print(
                f"{label:10} {rate:10,.0f} events/s  received {got}/{args.n}  lost {args.n - got}"
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait()
            shutil.rmtree(Path(store), ignore_errors=True)


if __name__ == "__main__":
    main()
