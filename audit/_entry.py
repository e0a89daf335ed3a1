"""The audit entry, its hash and the check of a hash chain."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from ._actions import AuditAction

__all__ = ["GENESIS_HASH", "AuditEntry", "entry_hash", "entry_schema", "verify_chain"]

#: ``prev_hash`` of the first entry of a trail: 64 zeros.
GENESIS_HASH: Final = "0" * 64

# Hash input = _DOMAIN + JSON array of every field but ``resource`` and ``hash`` + UTF-8 of
# ``resource``. The domain tag keeps these digests from ever colliding with SHA-256 digests of
# anything else; the JSON array is self-delimiting, so the resource that follows is unambiguous.
_DOMAIN: Final = b"kernel-eventbus/audit-entry/v1\x00"
_encode = msgspec.json.Encoder().encode
# SHA-256 with the domain tag already absorbed: ``copy()`` is cheaper than a new hash object
# plus an update (about 85 ns per entry). Only ever copied, never updated itself.
_DOMAIN_HASH: Final = hashlib.sha256(_DOMAIN)


class AuditEntry(msgspec.Struct, frozen=True, gc=False):
    """One record of the audit trail: who did what, to what, when, and in which order.

    Fields:

    ``seq``
        Trail-wide sequence number: from 1, strictly increasing, never reused, also after
        eviction and across a restore from a sink. It is *not* the bus's ``seq``.
    ``ts_ns``
        When the event happened: the envelope's publish time (``time.time_ns()`` at publish),
        not the time the entry was appended. For an :class:`~audit.EventsDropped` entry, the
        publish time of the first envelope seen after the gap.
    ``recorded_ns``
        When the entry was appended to the trail.
    ``actor``
        Who acted: an agent id, ``project:<id>``, ``session:<id>``, ``turn:<id>`` or
        ``system``.
    ``action``
        What was done (:data:`~audit.AuditAction`).
    ``resource``
        To what: the event's canonical JSON after redaction, cut to the mapper's
        ``max_resource_bytes`` with a ``…[truncated N bytes]`` marker; ``"<unencodable: ...>"``
        if the event could not be encoded; empty for synthetic entries.
    ``event_seq``, ``event_id``, ``kind``, ``correlation_id``, ``causation_id``
        Copied from the envelope (``event_seq`` is the envelope's bus ``seq``); ``None`` (and
        ``kind`` ``"audit:events_dropped"``) for entries that stand for no single event.
    ``category``, ``primitive``
        The event class's OS category and the primitive it rolls up to (the values of
        ``type(event).category`` and ``.primitive``), or ``None`` when the event has none.
    ``prev_hash``, ``hash``
        The tamper-evident chain: ``hash`` is the SHA-256 (hex) of a domain-separated
        canonical encoding of every other field (see :func:`entry_hash`), and ``prev_hash`` is
        the previous entry's ``hash`` (:data:`GENESIS_HASH` for the first). Both are ``""``
        when the trail was created with ``hash_chain=False``.
    """

    seq: int
    ts_ns: int
    recorded_ns: int
    actor: str
    action: AuditAction
    resource: str
    event_seq: int | None
    event_id: str | None
    kind: str
    category: str | None
    primitive: str | None
    correlation_id: str | None
    causation_id: str | None
    prev_hash: str
    hash: str


def _digest(
    seq: int,
    ts_ns: int,
    recorded_ns: int,
    actor: str,
    action: AuditAction,
    resource: str,
    event_seq: int | None,
    event_id: str | None,
    kind: str,
    category: str | None,
    primitive: str | None,
    correlation_id: str | None,
    causation_id: str | None,
    prev_hash: str,
) -> str:
    h = _DOMAIN_HASH.copy()
    h.update(
        _encode(
            (
                seq,
                ts_ns,
                recorded_ns,
                actor,
                action,
                event_seq,
                event_id,
                kind,
                category,
                primitive,
                correlation_id,
                causation_id,
                prev_hash,
            )
        )
    )
    h.update(resource.encode())
    return h.hexdigest()


def entry_hash(entry: AuditEntry) -> str:
    """Compute the hash ``entry`` should carry, from every field but ``hash`` itself.

    :returns: the SHA-256 hex digest of ``b"kernel-eventbus/audit-entry/v1\\x00"``, then the
        compact JSON array ``[seq, ts_ns, recorded_ns, actor, action, event_seq, event_id,
        kind, category, primitive, correlation_id, causation_id, prev_hash]`` (the action as
        its tagged JSON object, fields in declaration order), then the UTF-8 bytes of
        ``resource``.
    """
    return _digest(
        entry.seq,
        entry.ts_ns,
        entry.recorded_ns,
        entry.actor,
        entry.action,
        entry.resource,
        entry.event_seq,
        entry.event_id,
        entry.kind,
        entry.category,
        entry.primitive,
        entry.correlation_id,
        entry.causation_id,
        entry.prev_hash,
    )


def verify_chain(
    entries: Iterable[AuditEntry],
    *,
    anchor: tuple[int, str] | None = None,
    chained: bool = True,
) -> int | None:
    """Check that ``entries`` form an unbroken, untampered run of a trail.

    :param entries: entries oldest first.
    :param anchor: ``(seq, hash)`` of the entry just before the first one (``(0,
        GENESIS_HASH)`` for a trail's start). Without it the first entry's ``seq`` and
        ``prev_hash`` are taken on trust, and only the rest of the run is checked against them.
    :param chained: check hashes; with ``False`` only the ``seq`` order is checked (for trails
        built with ``hash_chain=False``).
    :returns: ``None`` if every entry has the next ``seq``, links to its predecessor's hash and
        carries its own correct hash; otherwise the first ``seq`` at which that fails: the seq
        of a tampered entry, the missing seq where an entry was dropped, the expected seq
        where two were reordered.

    It does not detect entries cut from the *end* of a run: compare the last ``seq`` with a
    record kept elsewhere (a sink's anchor) for that.
    """
    return check_chain(entries, anchor, chained)[0]


def check_chain(
    entries: Iterable[AuditEntry], anchor: tuple[int, str] | None, chained: bool | None
) -> tuple[int | None, AuditEntry | None]:
    """:func:`verify_chain`, also returning the last entry checked (the newest if intact).

    ``chained=None`` decides by the first entry: chained if it carries a hash.
    """
    expected: int | None = None
    prev: str | None = None
    last: AuditEntry | None = None
    if anchor is not None:
        expected = anchor[0] + 1
        prev = anchor[1]
    for entry in entries:
        if expected is None:
            expected = entry.seq
        if chained is None:
            chained = bool(entry.hash)
        if entry.seq != expected:
            return expected, last
        if chained:
            if (prev is not None and entry.prev_hash != prev) or entry.hash != entry_hash(entry):
                return expected, last
            prev = entry.hash
        last = entry
        expected += 1
    return None, last


def entry_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one :class:`AuditEntry` as the sinks write it.

    :returns: the schema of the generated file ``schemas/audit_entry.json``, built by
        :func:`eventbus.schema.schema_for` (``"audit_entry"``): ``msgspec.json.schema`` of
        the class with ``$schema``, ``title`` and ``description``, and the class docstrings
        as descriptions. The ``action`` is a ``oneOf`` of the action classes, told apart by
        their ``type`` tag.
    """
    from eventbus.schema import schema_for  # the generator: not needed to import audit

    return schema_for("audit_entry")
