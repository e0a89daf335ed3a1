"""Bridges that carry bus envelopes beyond one process.

Each bridge is an optional module with its own extra, so importing :mod:`eventbus` or this
package never imports a network client:

* :mod:`eventbus.bridges.nats` — NATS and NATS JetStream (``pip install
  'kernel-eventbus[nats]'``): :class:`~eventbus.bridges.nats.NatsBridge` exports local
  envelopes to subjects ``{prefix}.{category}.{kind}`` and imports remote ones into the local
  bus, keeping their ids, timestamps and origin.

A bridge is never needed inside one process: the bus itself is the fast path. Use one when
several processes or machines must see each other's events or feed one audit trail.
"""

__all__: list[str] = []
