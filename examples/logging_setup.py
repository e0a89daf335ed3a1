"""Configuring structlog for an application that uses the bus.

Run it with ``python examples/logging_setup.py`` (JSON lines) or
``python examples/logging_setup.py --console`` (human-readable).

This is the only file in the repository that calls ``structlog.configure``: a library must
never configure logging, the application does, once, at startup. The bus logs through
``structlog.get_logger("eventbus")`` with snake_case event names and key/value context, and
never once per event on its hot path. What it logs:

* ``subscription_lagged`` (warning): a subscription's queue was full and its overflow policy
  dropped an envelope; logged at the *first* loss of a burst, not for every loss;
* ``subscription_lag_recovered`` (info): the consumer received again; ``lagged`` is the
  number lost in that burst;
* ``bus_tap_failed`` (error, with the traceback): an inline tap raised.

Whatever you configure here applies to those records too, including the level filter.
"""

from __future__ import annotations

import logging
import sys

import anyio
import msgspec
import structlog

from eventbus import EventBus


def configure_logging(*, console: bool = False, level: int = logging.INFO) -> None:
    """Configure structlog once, at application startup."""
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if console
        else structlog.processors.JSONRenderer(sort_keys=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,  # context bound with bind_contextvars
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        # Drops records below ``level`` cheaply, before any processor runs.
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


class Heartbeat(msgspec.Struct, frozen=True, tag="heartbeat"):
    """An agent says it is alive."""

    agent: str
    n: int


async def main() -> None:
    log = structlog.get_logger("supervisor")
    structlog.contextvars.bind_contextvars(run="demo-1")  # appears on every record below
    async with EventBus[Heartbeat]() as bus:
        slow = bus.subscribe(name="slow_consumer", max_buffer_size=10)
        log.info("supervisor_started", subscriptions=bus.statistics().open_subscriptions)

        # A burst of 1000 events into a 10-slot queue: 990 are dropped, yet the bus writes
        # a single ``subscription_lagged`` record for the burst.
        for n in range(1000):
            bus.publish(Heartbeat(agent="agent-1", n=n))

        # The consumer catches up: one ``subscription_lag_recovered`` record, lagged=990.
        first = await slow.receive()
        log.info("consumer_resumed", first_seq=first.seq, lagged=slow.statistics().lagged)


if __name__ == "__main__":
    configure_logging(console="--console" in sys.argv[1:])
    anyio.run(main)
