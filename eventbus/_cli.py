"""The ``eventbus`` command line. A minimal ``demo`` until the full CLI lands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import anyio
import msgspec

from ._bus import EventBus

__all__ = ["main"]


class _DemoEvent(msgspec.Struct, tag="demo_event", frozen=True):
    agent: str
    step: int


async def _demo(events: int) -> None:
    async with EventBus[_DemoEvent]() as bus:
        with bus.subscribe(name="printer") as sub:
            for step in range(events):
                bus.publish(_DemoEvent(agent="agent-1", step=step))
            bus.close()
            async for envelope in sub:
                print(f"{envelope.seq:>4}  {envelope.kind:<12} {envelope.event}")
        print(sub.statistics())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = argparse.ArgumentParser(prog="eventbus")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a small supervisor simulation")
    demo.add_argument("--events", type=int, default=5)
    args = parser.parse_args(argv)
    if args.command == "demo":
        anyio.run(_demo, args.events)
    return 0
