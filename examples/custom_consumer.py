"""Your own event types and your own consumers, each with a filter and an overflow policy.

Run it with ``python examples/custom_consumer.py``.

Any tagged ``msgspec.Struct`` can travel on the bus. Each consumer is a task reading its own
subscription, and each subscription chooses what it receives (``kinds``, ``where``), how much
it buffers (``max_buffer_size``) and what happens when it is full (``overflow``):

* a *dashboard* that only wants the latest progress of one agent: a small buffer that drops
  the oldest updates when it falls behind (``drop_oldest``), and reports how many it missed;
* an *alerts* consumer that wants failures only, and must never lose one: ``overflow="block"``,
  so the supervisor publishes with ``await bus.apublish(...)`` and waits when it is full.

Lag is never silent: ``statistics().lagged`` counts every envelope a subscription lost, at
the moment it was lost, and ``delivered + lagged + buffered`` always equals what matched.
"""

from __future__ import annotations

import anyio
import msgspec

from eventbus import EventBus, Subscription


# -- your events: tagged structs (the tag is the wire name, keep it stable) -----------------
class ToolProgress(msgspec.Struct, frozen=True, tag="tool_progress"):
    """An agent's tool reports how far it got."""

    agent: str
    tool: str
    percent: int


class ToolFailed(msgspec.Struct, frozen=True, tag="tool_failed"):
    """A tool call failed."""

    agent: str
    tool: str
    error: str


Event = ToolProgress | ToolFailed


async def dashboard(sub: Subscription[Event]) -> None:
    """Show progress; notice when updates were dropped because this consumer was slow."""
    seen_lag = 0
    async for envelope in sub:
        lagged = sub.statistics().lagged
        if lagged > seen_lag:  # the policy dropped older updates since our last receive
            print(f"dashboard: skipped {lagged - seen_lag} stale update(s)")
            seen_lag = lagged
        assert isinstance(envelope.event, ToolProgress)
        print(f"dashboard: seq={envelope.seq:<3} {envelope.event.tool} {envelope.event.percent}%")


async def alerts(sub: Subscription[Event]) -> None:
    """Print every failure; this subscription is lossless."""
    async for envelope in sub:
        assert isinstance(envelope.event, ToolFailed)
        print(f"alerts:    seq={envelope.seq:<3} {envelope.event.tool}: {envelope.event.error}")


async def main() -> None:
    async with EventBus[Event]() as bus:
        board = bus.subscribe(
            name="dashboard",
            kinds=[ToolProgress],
            where=lambda e: e.event.agent == "agent-1",  # runs in publish: keep it cheap
            max_buffer_size=3,
            overflow="drop_oldest",
        )
        alarm = bus.subscribe(
            name="alerts", kinds=[ToolFailed], max_buffer_size=2, overflow="block"
        )

        async with anyio.create_task_group() as tg:
            tg.start_soon(dashboard, board)
            tg.start_soon(alerts, alarm)

            # A burst: publish() never waits, so the dashboard cannot keep up and keeps only
            # the newest 3 of agent-1's 10 updates (agent-2's are filtered out: not lag).
            for percent in range(10, 101, 10):
                bus.publish(ToolProgress(agent="agent-1", tool="crawl", percent=percent))
                bus.publish(ToolProgress(agent="agent-2", tool="index", percent=percent))

            # Failures must not be lost: apublish waits while the alerts queue is full.
            for n in range(5):
                await bus.apublish(ToolFailed(agent="agent-2", tool="index", error=f"E{n}"))

            bus.close()  # consumers drain what they hold, then their loops end

        for sub in (board, alarm):
            s = sub.statistics()
            print(
                f"{s.name:<9} delivered={s.delivered} lagged={s.lagged} "
                f"high_water_mark={s.high_water_mark}/{s.max_buffer_size} overflow={s.overflow}"
            )


if __name__ == "__main__":
    anyio.run(main)
