"""Quickstart: publish events to two subscribers with different overflow policies.

Run it with ``python examples/quickstart.py``.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import msgspec

from eventbus import EventBus


class ToolCalled(msgspec.Struct, frozen=True, tag="tool_called"):
    """A user-defined event: any tagged msgspec Struct can travel on the bus."""

    tool: str
    step: int


async def main() -> None:
    async with EventBus[ToolCalled](max_buffer_size=8) as bus:
        # A consumer that reads everything, and a tiny one that keeps only the newest events.
        everything = bus.subscribe(name="everything")
        newest = bus.subscribe(name="newest", max_buffer_size=2, overflow="drop_oldest")

        async def consume() -> None:
            async for envelope in everything:
                print(f"everything got seq={envelope.seq} {envelope.event.tool}")

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for step in range(5):
                bus.publish(ToolCalled(tool="grep", step=step))  # never blocks
                await (
                    anyio.lowlevel.checkpoint()
                )  # let the consumer run; real supervisors await I/O here
            bus.close()  # consumers drain what they hold, then their loops end

        print("newest holds", [e.seq for e in [newest.receive_nowait(), newest.receive_nowait()]])
        print(newest.statistics())  # lagged=3: the losses are counted, not silent


if __name__ == "__main__":
    anyio.run(main)
