"""Rebuilding an audit trail from a session log, without a bus."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eventbus import Envelope, EventBus

from ._consumer import Auditor
from ._mapper import AuditMapper
from ._trail import DEFAULT_CAPACITY, AuditTrail

__all__ = ["rebuild_audit_trail"]


def rebuild_audit_trail(
    log: Iterable[Envelope[Any]],
    *,
    trail: AuditTrail | None = None,
    mapper: AuditMapper | None = None,
    capacity: int = DEFAULT_CAPACITY,
    hash_chain: bool = True,
) -> AuditTrail:
    """Map a session log's envelopes into an audit trail, as the live consumer would have.

    Each envelope becomes one entry through exactly the code path of
    :func:`attach_audit_trail`'s consumer (mapping, redaction, bounding, a failing mapping
    recorded as ``Other(detail="mapping_failed:...")``), so for the envelopes a lossless live
    consumer recorded, the rebuilt entries are equal to the live ones in every field except
    ``recorded_ns`` (the time of *this* append) and therefore ``hash``/``prev_hash``.
    Mapping the same log twice gives the same actors, actions, resources and ids.

    :param log: a :class:`eventbus.replay.SessionLog` from :func:`eventbus.replay.read_log`,
        or any iterable of envelopes in log order.
    :param trail: the trail to append to (default: a new one with ``capacity`` and
        ``hash_chain``).
    :param mapper: how events become entries (default: a fresh :class:`AuditMapper`; pass
        the live consumer's mapper to reproduce its custom mappings and redaction).
    :param capacity: the new trail's capacity, when ``trail`` is not given.
    :param hash_chain: whether the new trail chains hashes, when ``trail`` is not given.
    :returns: the trail.
    :raises ValueError, TypeError: for a bad ``capacity``.

    Gap markers of a lossy recording (``SessionLog.gaps``) become
    ``EventsDropped(count, first_seq, last_seq)`` entries (actor ``"system"``) just before the
    first envelope after the gap, as the live ``queued`` consumer writes its own losses, so
    the rebuilt trail has no silent hole either. A plain iterable of envelopes carries no gap
    markers: a jump in ``seq`` there is not reported. It does no I/O and needs no event loop.
    """
    if trail is None:
        trail = AuditTrail(capacity, hash_chain=hash_chain)
    # The consumer's recording path, driven by hand: no subscription, no task, no bus traffic.
    auditor = Auditor(
        EventBus(),
        trail,
        mapper=mapper,
        mode="inline",
        max_buffer_size=1,
        name="rebuild_audit_trail",
        sink=None,
        resume=False,
        on_sink_error="raise",
        sink_batch_size=1,
        sink_buffer_size=1,
    )
    gaps = sorted(getattr(log, "gaps", ()), key=lambda gap: gap.first_seq)
    pending = 0
    for envelope in log:
        while pending < len(gaps) and gaps[pending].last_seq < envelope.seq:
            gap = gaps[pending]
            pending += 1
            trail._append_gap(envelope.ts_ns, gap.lost, gap.first_seq, gap.last_seq)
        auditor._record(envelope)
    return trail
