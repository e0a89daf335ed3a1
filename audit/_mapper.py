"""Turning an event into ``(actor, action, resource)``: the :class:`AuditMapper`."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final, TypeAlias, TypeVar, overload

import msgspec

from eventbus._bus import _check_positive_int

from ._actions import AuditAction, Other
from ._kernel import is_catalogue_class, kernel_fn
from ._redact import (
    _SAFE_KEYS,
    _SCALARS,
    ALWAYS,
    MAX_DEPTH,
    REDACTED,
    Redactor,
    ScanPlan,
    TextPlan,
    _check,
    _fits,
    _redact_small,
    _unsafe_keys,
    _Walker,
    bound_text,
    canonical_json,
    maybe_secret_text,
    node_budget,
    redact_secrets,
    scan_plan,
    walk_json,
)

__all__ = ["AuditMapper", "MapFn"]

E = TypeVar("E")

MapFn: TypeAlias = Callable[[Any], tuple[str, AuditAction]]
"""A mapping function: ``fn(event) -> (actor, action)``."""

#: The smallest ``max_resource_bytes`` accepted: room for a marker and a little text.
MIN_RESOURCE_BYTES: Final = 64

# What encoding an event's builtin form can raise: unsupported types and non-str keys
# (TypeError), lone surrogates (UnicodeEncodeError), nesting past the stack (RecursionError).
_ENCODE_ERRORS: Final = (
    msgspec.EncodeError,
    TypeError,
    ValueError,
    OverflowError,
    RecursionError,
)

#: Tool arguments longer than this (bytes) are not parsed: treated as unparsable text.
MAX_PARSED_ARGS_BYTES: Final = 1 << 20
# args_json remembers its last answer for a text up to this long (the resource of the same
# ToolCallPlanned asks for it again, right after the mapping function).
_ARGS_MEMO_CHARS: Final = 1 << 16


class _TypeInfo:
    """What the mapper resolved for one event class (cached per class).

    ``trusted`` marks the built-in mapping, whose functions always return ``(str,
    AuditAction)`` and never an ``EventsDropped``: the audit consumer skips checking what they
    return. A built-in class's ``fn`` starts as a stub that looks up the class's own function
    (one ``match``) on the first event and puts it in its place.
    """

    __slots__ = ("category", "fn", "plain", "primitive", "scan", "trusted")

    def __init__(
        self,
        fn: MapFn | None,
        category: str | None,
        primitive: str | None,
        scan: ScanPlan,
    ) -> None:
        self.fn = fn
        self.category = category
        self.primitive = primitive
        self.scan = scan
        self.trusted = False  # set by the mapper for a catalogue class
        # Stored as its canonical JSON, unredacted: set by the mapper (default redactor and a
        # class none of whose instances can hold a secret-looking key, or no redactor).
        self.plain = False


def _label(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _category_of(event_type: type) -> tuple[str | None, str | None]:
    category = getattr(event_type, "category", None)
    if category is None or (callable(category) and not isinstance(category, enum.Enum)):
        return None, None
    primitive = getattr(category, "primitive", None)
    if callable(primitive):
        primitive = primitive()
    return _label(category), _label(primitive)


class AuditMapper:
    """Maps events to audit actors, actions and resources; extensible per instance.

    :param redact: the :data:`~audit.Redactor` applied to every event's builtin form before it
        is stored as ``resource`` (default :func:`~audit.redact_secrets`; ``None`` stores
        events unredacted).
    :param max_resource_bytes: the most bytes a ``resource`` (and a ``ToolCall.args_json``)
        may take, marker included (default 2048, the minimum 64). The audit consumer cuts
        an entry's actor, the action's other texts and its ids to it too.
    :param builtin: map the kernel catalogue (``eventbus.events``) with the built-in mapping,
        a port of oxios' ``kernel_event_to_audit_action`` and ``extract_agent_id``
        (default ``True``).
    :raises ValueError: if ``max_resource_bytes`` is below 64.
    :raises TypeError: if ``redact`` is neither callable nor ``None``.

    Resolution, per event class (cached): a function registered for the class or its nearest
    registered base class; then the built-in mapping; otherwise the event is *unmapped*:
    ``Other(detail=kind)`` with actor ``"system"``, recorded and counted, never dropped.
    There is no global registry: each mapper holds its own registrations.
    """

    def __init__(
        self,
        *,
        redact: Redactor | None = redact_secrets,
        max_resource_bytes: int = 2048,
        builtin: bool = True,
    ) -> None:
        _check_positive_int("max_resource_bytes", max_resource_bytes, MIN_RESOURCE_BYTES)
        if redact is not None and not callable(redact):
            raise TypeError(f"redact must be callable or None, got {type(redact).__name__}")
        self._redact = redact
        self._limit = max_resource_bytes
        self._check_nodes = node_budget(max_resource_bytes)
        self._args_memo: tuple[str, str] | None = None
        self._builtin = builtin
        self._registered: dict[type, MapFn] = {}
        self._resolved: dict[type, _TypeInfo] = {}

    @property
    def max_resource_bytes(self) -> int:
        """The most bytes a stored resource may take, marker included."""
        return self._limit

    @overload
    def register(
        self, event_type: type[E], fn: Callable[[E], tuple[str, AuditAction]]
    ) -> Callable[[E], tuple[str, AuditAction]]: ...

    @overload
    def register(
        self, event_type: type[E], fn: None = None
    ) -> Callable[
        [Callable[[E], tuple[str, AuditAction]]], Callable[[E], tuple[str, AuditAction]]
    ]: ...

    def register(self, event_type: type[E], fn: Callable[[E], Any] | None = None) -> Any:
        """Map events of ``event_type`` (and its subclasses) with ``fn(event) -> (actor, action)``.

        Used directly (``mapper.register(MyEvent, fn)``) or as a decorator
        (``@mapper.register(MyEvent)``); either way it returns ``fn`` unchanged. A
        registration takes precedence over the built-in mapping, so it may also override how a
        catalogue event is audited.

        :raises TypeError: if ``event_type`` is not a class or ``fn`` is not callable.
        :raises ValueError: if ``event_type`` is already registered on this mapper.
        """
        if not isinstance(event_type, type):
            raise TypeError(f"event_type must be a class, got {event_type!r}")
        if event_type in self._registered:
            raise ValueError(f"event_type {event_type.__name__} is already registered")

        def decorate(
            fn: Callable[[E], tuple[str, AuditAction]],
        ) -> Callable[[E], tuple[str, AuditAction]]:
            if not callable(fn):
                raise TypeError(f"fn must be callable, got {type(fn).__name__}")
            if event_type in self._registered:
                raise ValueError(f"event_type {event_type.__name__} is already registered")
            self._registered[event_type] = fn
            self._resolved.clear()
            return fn

        if fn is None:
            return decorate
        return decorate(fn)

    def _resolve(self, event_type: type) -> _TypeInfo:
        fn: MapFn | None = None
        for base in event_type.__mro__:
            fn = self._registered.get(base)
            if fn is not None:
                break
        category, primitive = _category_of(event_type)
        info = _TypeInfo(fn, category, primitive, scan_plan(event_type))
        info.plain = self._redact is None or (self._redact is redact_secrets and info.scan is None)
        if fn is None and self._builtin and is_catalogue_class(event_type):
            info.fn = self._first_event(info)
            info.trusted = True
        self._resolved[event_type] = info
        return info

    def _first_event(self, info: _TypeInfo) -> MapFn:
        """A catalogue class's stub ``fn``: on the first event, find the class's function."""
        args_json = self.args_json

        def first(event: Any) -> tuple[str, AuditAction]:
            fn = kernel_fn(event, args_json)
            assert fn is not None  # only catalogue classes get this stub
            info.fn = fn
            return fn(event)

        return first

    def map(self, event: object, kind: str) -> tuple[str, AuditAction, bool]:
        """Map one event.

        :param kind: the envelope's ``kind``, used as the ``detail`` of an unmapped event.
        :returns: ``(actor, action, mapped)``; ``mapped`` is false for an event no function
            covers, which is returned as ``("system", Other(detail=kind))``.
        :raises: whatever the mapping function raises (the audit consumer records that as
            ``Other(detail="mapping_failed:...")``).
        """
        info = self._resolved.get(type(event))
        if info is None:
            info = self._resolve(type(event))
        if info.fn is None:
            return "system", Other(detail=kind), False
        actor, action = info.fn(event)
        return actor, action, True

    def resource(self, value: object) -> str:
        """The stored form of ``value`` (an event, or any part of one such as tool arguments).

        :returns: its canonical JSON (sorted keys), redacted, cut to ``max_resource_bytes``
            with a ``…[truncated N bytes]`` marker (``…[truncated at least N bytes]`` when
            the redacting walk stopped reading a large value early: N is then a lower bound);
            ``"<unencodable: reason>"`` (also bounded) if it holds an object msgspec cannot
            encode.
        :raises: whatever a custom redactor raises, or :exc:`TypeError` if it returns
            something that cannot be encoded.

        The default redactor looks only where a secret can be: it knows per event class which
        fields may hold arbitrary keys (``tool_args``, ``context``), checks those, and walks
        the whole event only when one holds a secret-looking key. Events without such fields
        cost one encode. Text fields carrying tool arguments are stored redacted whenever a
        redactor is set: JSON text (``ToolCallPlanned.input_json``) as :meth:`args_json`
        makes it, a streamed piece of arguments (``ModelDelta.text`` of a ``tool_call_arg``
        delta) replaced whole by ``"[REDACTED] (tool-call argument fragment, N bytes)"``.

        What the walk does to what cannot be stored as is (with the default redactor; with
        none, or a custom one, the walk runs only for what msgspec cannot encode):
        dict keys that are not ``str`` become their text (see :func:`~audit.redact_secrets`);
        a dict or list nested more than 64 levels below the event becomes ``"[TOO DEEP]"``;
        lone surrogates become U+FFFD; the rest of the event is kept. NaN and infinities are
        stored as ``null``, as JSON (and ``eventbus.codec.encode_json``) writes them; a
        mapping function's text keeps them (``score=NaN``).
        """
        if isinstance(value, msgspec.Struct):
            info = self._resolved.get(type(value))
            if info is None:
                info = self._resolve(type(value))
            return self._resource(value, info.scan)
        return self._resource(value, ALWAYS)

    def _resource(self, value: object, scan: ScanPlan) -> str:
        return bound_text(self._resource_raw(value, scan), self._limit)

    def _resource_raw(self, value: object, scan: ScanPlan) -> bytes:
        """The UTF-8 of ``value``'s resource before bounding (already bounded when it is an
        ``<unencodable: ...>`` marker or the walk stopped early).

        Always valid UTF-8 (msgspec's output, or ``str.encode``), so decoding it and encoding
        the text again gives these bytes back. Raises only what a custom redactor raises.
        """
        redact = self._redact
        if redact is redact_secrets:
            if scan is None:  # no instance of the class can hold a secret-looking key
                try:
                    return canonical_json(value)
                except _ENCODE_ERRORS:
                    return self._walk(value, True)
            nodes = self._check_nodes
            if type(scan) is tuple:
                if not _any_secret(value, scan, nodes):
                    try:
                        return canonical_json(value)
                    except _ENCODE_ERRORS:
                        return self._walk(value, True)
                small = _fields_fit(value, scan, nodes)
            elif scan is ALWAYS:
                if _check(value, nodes, MAX_DEPTH) >= 0:  # plain data without secrets
                    try:
                        return canonical_json(value)
                    except _ENCODE_ERRORS:
                        return self._walk(value, True)
                small = _fits(value, nodes, MAX_DEPTH) >= 0
            else:
                assert type(scan) is TextPlan
                return self._resource_raw(self._rewrite_text(value, scan), scan.base)
            if small:  # a few nodes: copy, redact and encode in one go, as exactly as the walk
                try:
                    return canonical_json(_redact_small(msgspec.to_builtins(value)))
                except _ENCODE_ERRORS:
                    pass  # non-str keys, lone surrogates, ...: the walk copes
            return self._walk(value, True)
        if type(scan) is TextPlan and redact is not None:
            value = self._rewrite_text(value, scan)
        if redact is None:
            try:
                return canonical_json(value)
            except _ENCODE_ERRORS:
                return self._walk(value, False)
        try:
            plain = msgspec.to_builtins(value)
        except _ENCODE_ERRORS:
            try:
                plain = _Walker(False, None).value(value, 0)
            except _ENCODE_ERRORS as exc:
                return self._unencodable(exc)
        redacted = redact(plain)  # a custom redactor: what it raises propagates
        try:
            return canonical_json(redacted)
        except _ENCODE_ERRORS:
            return self._walk(redacted, False)

    def _walk(self, value: object, redact: bool) -> bytes:
        """The bounded walk's encoding of ``value``, or ``<unencodable: ...>``."""
        try:
            return walk_json(value, redact, self._limit)
        except _ENCODE_ERRORS as exc:
            return self._unencodable(exc)

    def _unencodable(self, exc: BaseException) -> bytes:
        text = f"<unencodable: {exc}>".encode("utf-8", "replace")
        return bound_text(text, self._limit).encode()

    def _rewrite_text(self, value: Any, plan: TextPlan) -> Any:
        """``value`` with its argument-carrying text fields replaced by their stored form."""
        changes: dict[str, str] = {}
        for name in plan.json_fields:
            text = getattr(value, name)
            if type(text) is str:
                changes[name] = self.args_json(text)
        if plan.fragment is not None:
            name, is_arguments = plan.fragment
            text = getattr(value, name)
            if type(text) is str and text and is_arguments(value):
                size = len(text.encode("utf-8", "surrogatepass"))
                changes[name] = f"{REDACTED} (tool-call argument fragment, {size} bytes)"
        return msgspec.structs.replace(value, **changes) if changes else value

    def args_json(self, raw: str) -> str:
        """What ``ToolCall.args_json`` stores for a tool call's raw JSON arguments.

        :returns: the arguments parsed, redacted and re-encoded like :meth:`resource`
            (bounded to ``max_resource_bytes``). With a redactor set:

            - text that is not JSON (or longer than 1 MiB, which is not parsed) is stored
              bounded as it is, unless it contains anything secret-looking
              (:func:`maybe_secret_text`: password, token, key, auth, ... anywhere), in which
              case it is replaced by ``"[REDACTED] (unparsable arguments, N bytes)"`` (keys
              cannot be told from values in it);
            - a JSON string is parsed once more: if it holds JSON other than a string
              (double-encoded arguments, as OpenAI-style ``arguments`` strings often are),
              that is stored, redacted; otherwise the string is free text, stored as the
              JSON string unless it contains anything secret-looking, in which case it is
              replaced by ``"[REDACTED] (text arguments, N bytes)"``.

            Lone surrogates in ``raw`` are read as ``?``.
        :raises: whatever a custom redactor raises.
        """
        memo = self._args_memo
        if memo is not None and memo[0] is raw:
            return memo[1]
        stored = self._args_json(raw)
        if len(raw) <= _ARGS_MEMO_CHARS:
            self._args_memo = (raw, stored)
        return stored

    def _args_json(self, raw: str) -> str:
        data = raw.encode("utf-8", "replace")
        value = _parse(data)
        redact = self._redact
        if value is _UNPARSABLE:
            if redact is not None and maybe_secret_text(data):
                return f"{REDACTED} (unparsable arguments, {len(data)} bytes)"
            return bound_text(data, self._limit)
        if type(value) is str and redact is not None:
            text = value.encode("utf-8", "replace")
            inner = _parse(text)
            if inner is _UNPARSABLE or type(inner) is str:
                if maybe_secret_text(text) or (
                    type(inner) is str and maybe_secret_text(inner.encode("utf-8", "replace"))
                ):
                    return f"{REDACTED} (text arguments, {len(data)} bytes)"
            else:
                value = inner
        return self.resource(value)

    def category_of(self, event_type: type) -> tuple[str | None, str | None]:
        """``(category, primitive)`` labels of an event class, or ``(None, None)``."""
        info = self._resolved.get(event_type)
        if info is None:
            info = self._resolve(event_type)
        return info.category, info.primitive


_UNPARSABLE: Final = object()


def _parse(data: bytes) -> Any:
    """``data`` parsed as JSON, or ``_UNPARSABLE`` (not JSON, or over 1 MiB)."""
    if len(data) > MAX_PARSED_ARGS_BYTES:
        return _UNPARSABLE
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return _UNPARSABLE


_FIELD_ROOM: Final = MAX_DEPTH - 1  # a field's value is level 1 below the event


def _any_secret(
    value: object,
    fields: ScanPlan,
    nodes: int,
    _room: int = _FIELD_ROOM,  # bound here: the hot path of every tool call
    _check: Callable[[object, int, int], int] = _check,
) -> bool:
    """Whether ``value`` needs the redacting walk: one of ``fields`` holds a secret-looking
    key or a non-str one, anything but plain dicts, lists, tuples and scalars, nesting deeper
    than :data:`~audit._redact.MAX_DEPTH`, or more than ``nodes`` dict items and list
    elements (the walk bounds its work; this check gives up rather than look at everything).

    :func:`~audit._redact._check`, with its first level inlined for a dict (tool arguments
    almost always are one): one call less per tool call, and no budget arithmetic for it
    when all its keys are known safe (then it has at most 4096 keys, a bounded loop).
    """
    assert isinstance(fields, tuple)
    for name in fields:
        field = getattr(value, name)
        kind = type(field)
        if kind is dict:
            if not _SAFE_KEYS.issuperset(field) and (len(field) > nodes or _unsafe_keys(field)):
                return True
            for v in field.values():
                if type(v) not in _SCALARS:
                    nodes = _check(v, nodes, _room - 1)
                    if nodes < 0:
                        return True
        elif kind not in _SCALARS:
            nodes = _check(field, nodes, _room)
            if nodes < 0:
                return True
    return False


def _fields_fit(value: object, fields: tuple[str, ...], nodes: int) -> bool:
    """Whether ``fields`` of ``value`` hold at most ``nodes`` nodes, nested no deeper than the
    walk keeps (the other fields have fixed, small types)."""
    for name in fields:
        field = getattr(value, name)
        if type(field) not in _SCALARS:
            nodes = _fits(field, nodes, _FIELD_ROOM)
            if nodes < 0:
                return False
    return True
