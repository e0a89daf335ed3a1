"""A worker process: publishes kernel events on its own bus, exported to NATS JetStream.

    python examples/nats_audit/publisher.py --servers nats://127.0.0.1:4222 --node-id w1 \\
        --count 1000

Each event is stored once in the stream ``KERNEL_EVENTS`` (``Nats-Msg-Id`` = ``event_id``),
in publish order. The process exits once every event has been acknowledged by the stream.
"""

from __future__ import annotations

import argparse
import uuid

import anyio

from eventbus import EventBus, KernelEvent
from eventbus.bridges.nats import NatsBridge
from eventbus.events import AgentStarted, AgentStopped, ToolExecutionStarted


async def main(servers: str, node_id: str, count: int) -> None:
    async with (
        EventBus[KernelEvent]() as bus,
        NatsBridge(bus, servers, node_id=node_id, jetstream=True, import_=False) as bridge,
    ):
        agent = uuid.uuid4()
        for i in range(count):
            event: KernelEvent
            if i % 3 == 0:
                event = AgentStarted(id=agent)
            elif i % 3 == 1:
                event = ToolExecutionStarted(
                    session_id=f"{node_id}-s",
                    tool_name="shell",
                    tool_call_id=f"{node_id}-{i}",
                    tool_args={"cmd": f"step {i}", "api_key": "never stored"},
                )
            else:
                event = AgentStopped(id=agent, success=True)
            await bus.apublish(event)
            if i % 256 == 255:
                await bridge.flush()  # keep the export queue far from its bound
        await bridge.flush()
        stats = bridge.statistics()
    print(f"{node_id}: exported={stats.exported} lagged={stats.export_lagged}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="nats://127.0.0.1:4222")
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    anyio.run(main, args.servers, args.node_id, args.count)
