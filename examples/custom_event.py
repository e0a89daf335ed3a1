"""A user-defined kernel event, published next to built-in ones and decoded from the wire.

Run it with ``python examples/custom_event.py``. It defines ``DeployFinished`` (its own tag and
category), publishes it on the same bus as a built-in ``AgentStarted``, encodes each envelope
to JSON as a bridge or a log would, and decodes it back with the union of the user's event and
the built-in catalogue.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, TypeAlias

import anyio

from eventbus import AnyKernelEvent, Category, Envelope, EventBus, KernelEvent
from eventbus.codec import decode_json, encode_json
from eventbus.events import AgentStarted


class DeployFinished(KernelEvent, tag="deploy_finished", frozen=True, kw_only=True):
    """A deployment finished: ``service`` now runs ``replicas`` copies of ``version``."""

    category: ClassVar[Category] = Category.PROC
    service: str
    version: str
    replicas: int = 1


MyEvent: TypeAlias = DeployFinished | AnyKernelEvent
"""Everything this application publishes: its own event and any built-in one."""


def describe(event: MyEvent) -> str:
    """One line per event: the user's own event, one built-in by name, the rest by class."""
    match event:
        case DeployFinished(service=service, version=version, replicas=replicas):
            return f"deployed {service} {version} x{replicas}"
        case AgentStarted(id=agent_id):
            return f"agent {agent_id} started"
        case _:
            return f"{type(event).__name__} ({event.category.value})"


async def main() -> list[str]:
    """Publish two events, round-trip each envelope through JSON, and return their lines."""
    lines: list[str] = []
    async with EventBus[MyEvent]() as bus:
        with bus.subscribe(name="wire") as sub:
            bus.publish(AgentStarted(id=uuid.UUID("0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01")))
            bus.publish(DeployFinished(service="api", version="1.4.2", replicas=3))
            bus.close()
            async for envelope in sub:
                data = encode_json(envelope)
                back: Envelope[MyEvent] = decode_json(data, type=Envelope[MyEvent])
                assert back == envelope
                event: MyEvent = back.event
                lines.append(
                    f"{back.seq} {back.kind:<16} {event.category.value:<5} "
                    f"{event.primitive.value:<5} {describe(event)}"
                )
    return lines


if __name__ == "__main__":
    for line in anyio.run(main):
        print(line)
