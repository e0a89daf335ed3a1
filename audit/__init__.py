"""The audit trail: every event on an :class:`eventbus.EventBus` as an audit entry.

An :class:`AuditEntry` records who acted (``actor``), what they did (``action``, one of the
:data:`AuditAction` classes), to what (``resource``: the event's canonical JSON, redacted and
bounded), when (``ts_ns``, the event's publish time) and in which order (``seq``, trail-wide
and never reused). :func:`attach_audit_trail` runs a consumer that maps every envelope on a
bus through an :class:`AuditMapper` and appends it to an :class:`AuditTrail`, a ring buffer
with O(1) eviction and an optional SHA-256 hash chain.

.. code-block:: python

    trail = AuditTrail(capacity=100_000)
    async with EventBus() as bus, attach_audit_trail(bus, trail) as auditor:
        bus.publish(AgentFailed(id=agent_id, error="boom"))
        await auditor.flush()            # everything published so far is in the trail
        [entry] = trail.query(action=AgentExit)
        assert entry.action.reason == "boom" and trail.verify() is None

Mapping
-------
The built-in mapping covers the whole kernel catalogue (``eventbus.events``): supervisor
events exactly as oxios' ``kernel_event_to_audit_action`` and ``extract_agent_id`` do
(:func:`kernel_event_to_audit_action`, :func:`extract_agent_id`), turn-loop and OS
observation events with the action that fits. Register functions on your own mapper for
your own events (``@mapper.register(MyEvent)``); an event nothing covers is recorded as
``Other(detail=kind)`` with actor ``system`` and counted as ``unmapped``, never dropped.

Redaction and bounding
----------------------
Values under secret-looking keys (``api_key``, ``token``, ``password``, ``authorization``,
``cookie``, ``credentials``, ``private_key``, ...) become ``"[REDACTED]"`` at any depth, and
the JSON is cut to ``max_resource_bytes`` (default 2048) with a ``…[truncated N bytes]``
marker. The redactor is a replaceable function (:data:`Redactor`).

Lagging
-------
The default ``queued`` consumer never slows publishers; when it falls behind, what it loses
becomes one ``EventsDropped(count, first_seq, last_seq)`` entry at the point of the gap, so
the trail never has a silent hole. ``lossless`` makes publishers wait instead (``apublish``);
``inline`` records inside ``publish``.

Tamper evidence
---------------
Each entry's ``hash`` covers every other field and its predecessor's hash;
:meth:`AuditTrail.verify` (or :func:`verify_chain`) names the first ``seq`` where the chain
breaks, also for a window whose head was evicted. Durable stores live in :mod:`audit.sinks`.
"""

from ._actions import (
    AccessDenied,
    AgentExit,
    AgentSpawn,
    AuditAction,
    ConfigChange,
    CronTrigger,
    EventsDropped,
    GitCommit,
    MemoryRead,
    MemoryWrite,
    Other,
    ProgramInstall,
    ToolCall,
    ToolResult,
)
from ._consumer import AuditMode, Auditor, AuditorStatistics, attach_audit_trail
from ._entry import GENESIS_HASH, AuditEntry, entry_hash, entry_schema, verify_chain
from ._kernel import extract_agent_id, kernel_event_to_audit_action, map_kernel_event
from ._mapper import AuditMapper, MapFn
from ._redact import REDACTED, Redactor, is_secret_key, redact_secrets
from ._trail import AuditTrail, TrailStatistics

__all__ = [
    "GENESIS_HASH",
    "REDACTED",
    "AccessDenied",
    "AgentExit",
    "AgentSpawn",
    "AuditAction",
    "AuditEntry",
    "AuditMapper",
    "AuditMode",
    "AuditTrail",
    "Auditor",
    "AuditorStatistics",
    "ConfigChange",
    "CronTrigger",
    "EventsDropped",
    "GitCommit",
    "MapFn",
    "MemoryRead",
    "MemoryWrite",
    "Other",
    "ProgramInstall",
    "Redactor",
    "ToolCall",
    "ToolResult",
    "TrailStatistics",
    "attach_audit_trail",
    "entry_hash",
    "entry_schema",
    "extract_agent_id",
    "is_secret_key",
    "kernel_event_to_audit_action",
    "map_kernel_event",
    "redact_secrets",
    "verify_chain",
]
