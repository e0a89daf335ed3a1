"""Wire formats for kernel events and envelopes: canonical JSON and MessagePack, on msgspec.

.. code-block:: python

    from eventbus import Envelope
    from eventbus.codec import decode_json, encode_json

    data = encode_json(AgentStarted(id=agent_id))      # b'{"event_type":"agent_started",...}'
    event = decode_json(data)                          # any built-in kernel event
    env = decode_json(raw, type=Envelope[AnyKernelEvent])
    mine = decode_json(raw, type=MyEvent | AnyKernelEvent)

Every function reuses one msgspec encoder, and one decoder per target type, built on first
use and cached (at most 256 types; the oldest is dropped beyond that). Nothing is re-created
per call.

Canonical encoding
------------------
Encoding is canonical: object keys are sorted (struct fields by wire name, dict keys of
``Any`` payloads too), so ``encode(decode(encode(event))) == encode(event)`` byte for byte,
whatever order the input had. The bytes depend on the values and on their types, never on
dict order: two events encode to the same bytes if they compare equal and hold values of
the same types in the same places. Python's equality is looser than that: ``{"n": 1}``,
``{"n": 1.0}`` and ``{"n": True}`` compare equal but encode as ``1``, ``1.0`` and ``true``
(``0.0`` and ``-0.0`` likewise). A decoded event holds its declared type in every typed
field, so between decoded events only ``Any`` payloads can differ this way.

Input limits
------------
Decoding is for untrusted input. Before any event is built, a decode rejects:

* a document larger than ``max_size`` bytes (default :data:`DEFAULT_MAX_SIZE`, 1 MiB;
  ``str`` input is measured in UTF-8 bytes);
* containers (objects, arrays, maps) nested deeper than ``max_depth`` levels (default
  :data:`DEFAULT_MAX_DEPTH`, 64), counting the top-level object as level 1, so an envelope is
  level 1, its event level 2 and the event's ``tool_args`` level 3. A MessagePack map key
  that is an array nests like a value. On ordinary documents the check is one C-level pass
  counting opening brackets (MessagePack: container markers); only a document holding more
  than ``max_depth`` of them is decoded untyped and walked, in time and memory linear in its
  size whatever its shape.

It then validates while decoding: an unknown ``event_type``, a missing required field, a
wrong type, a negative or out-of-range count, a NaN or infinite number (in typed fields, and
in JSON ``Any`` payloads such as ``tool_args``) are all rejected. A decode never returns a
half-built event.

JSON values
-----------
MessagePack can carry what JSON cannot: ext values, timestamps, binary data, and map keys
that are not strings. In ``Any`` payloads (``tool_args``, ``context``, an ``Any`` field of
your own types, or ``type=Any``) :func:`decode_msgpack` rejects them with a
:exc:`msgspec.ValidationError` naming the place, ``Expected a JSON value, got `ext` - at
`$.tool_args.blob``` or ``Expected `str`, got `int` - at `key` in `$.tool_args```. So every
decoded event holds only JSON values there (``None``, bool, int, float, str, list, dict with
str keys) and :func:`encode_json` can write it. Typed fields declared ``bytes`` or
``datetime`` keep such values. The check walks the ``Any`` payloads once per decode, and
nothing else: an event class without ``Any`` fields costs one dict lookup.

Errors
------
Every decode error is a :exc:`msgspec.DecodeError` (the input is not a well-formed document
within the limits) or a :exc:`msgspec.ValidationError` (well-formed, but not a valid value of
the type); both subclass :exc:`msgspec.MsgspecError`, itself a :exc:`ValueError`. Messages
follow msgspec's style and end with the JSON path of the offending value, e.g.
``Expected `int`, got `str` - at `$.event.turn```, ``Invalid value 'nope' - at
`$.event_type```, ``Object missing required field `id```. Malformed JSON names the byte
offset instead, except for the literals ``NaN``, ``Infinity`` and ``-Infinity`` (which JSON
does not allow), reported as ``Non-finite number `NaN` is not valid JSON - at `$.final_score```.
Text that is not valid Unicode is a :exc:`msgspec.DecodeError` too, never a
:exc:`UnicodeError` (chained as its ``__cause__``): ``JSON is malformed: invalid UTF-8 (byte
37)``, ``JSON is malformed: lone surrogate (character 36)`` for ``str`` input, and
``MessagePack data is malformed: invalid UTF-8 in a string``. A ``str`` document is checked
whole; in bytes, only strings the decoder keeps are (the value of an ignored unknown field is
skipped unread). Messages name a position or a path, never the offending text.
Bad arguments raise :exc:`TypeError` or :exc:`ValueError` naming the parameter, before any
input is read: a ``max_size`` or ``max_depth`` that is not an int (a bool is not) or is below
1, ``data`` that is neither bytes-like nor (JSON) ``str``, a ``type`` msgspec cannot decode.

Not guaranteed: MessagePack can carry NaN and infinities inside an ``Any`` payload; they are
kept (they are floats, and round-trip exactly in MessagePack) but encode to JSON as ``null``.
``Envelope`` has no ``Any`` field of its own, so this only concerns event payloads.
"""

from __future__ import annotations

import datetime
import math
import operator
import re
import typing
from collections.abc import Callable, Iterator
from itertools import chain, compress, repeat
from typing import Any, Final, TypeAlias, TypeVar, overload

import msgspec
import msgspec.inspect as mi

from ._bus import _check_positive_int
from .events import AnyKernelEvent, SupervisorEvent
from .events._supervisor import SUPERVISOR_EVENT_TYPES

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "decode_json",
    "decode_msgpack",
    "decode_oxios_json",
    "encode_json",
    "encode_msgpack",
]

T = TypeVar("T")

Buffer: TypeAlias = bytes | bytearray | memoryview | str
"""What the decoders accept: a bytes-like object, or (JSON only) a ``str``."""

DEFAULT_MAX_SIZE: Final = 1 << 20
"""The default ``max_size``: 1 MiB."""

DEFAULT_MAX_DEPTH: Final = 64
"""The default ``max_depth``: 64 levels of nested containers."""

_CACHE_MAX: Final = 256

_json_encoder: Final = msgspec.json.Encoder(order="sorted")
_msgpack_encoder: Final = msgspec.msgpack.Encoder(order="sorted")

_Check: TypeAlias = Callable[[Any], None]
# A MessagePack decoder, and the checks of the JSON values in what it returns, by its class
# (None: the type reaches no Any), with the check for any other class.
_MsgpackEntry: TypeAlias = tuple[
    msgspec.msgpack.Decoder[Any], dict[type, _Check] | None, _Check | None
]

_json_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_msgpack_decoders: dict[Any, _MsgpackEntry] = {}
# id(type) -> (type, decoder): the fast path, one dict lookup and one identity check.
_json_by_id: dict[int, tuple[Any, msgspec.json.Decoder[Any]]] = {}
_msgpack_by_id: dict[int, tuple[Any, _MsgpackEntry]] = {}

# MessagePack bytes that may open a container: fixmap, fixarray, array16/32, map16/32.
_MSGPACK_CONTAINER_BYTES: Final = bytes([*range(0x80, 0xA0), *range(0xDC, 0xE0)])


def _finite_float(text: str) -> float:
    # float_hook: JSON floats inside ``Any`` payloads. Typed float fields are range-checked by
    # msgspec itself; this makes ``1e999`` in ``tool_args`` an error too instead of ``inf``.
    value = float(text)
    if math.isinf(value):
        raise ValueError("Number out of range")
    return value


def _cached(cache: dict[Any, Any], by_id: dict[int, Any], tp: Any, build: Any) -> Any:
    # Slow path of the decoder lookup: equality (a union built anew by each call hashes all
    # its members) with an identity cache in front of it, filled here.
    try:
        decoder = cache[tp]
    except KeyError:
        decoder = build(tp)
        if len(cache) >= _CACHE_MAX:
            cache.pop(next(iter(cache)))
            by_id.clear()
        cache[tp] = decoder
    except TypeError:  # an unhashable type: build a decoder for this call only
        return build(tp)
    if len(by_id) >= _CACHE_MAX:
        by_id.clear()
    by_id[id(tp)] = (tp, decoder)  # holding tp keeps its id from being reused
    return decoder


def _build_json_decoder(tp: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(tp, float_hook=_finite_float)


def _build_msgpack_decoder(tp: Any) -> _MsgpackEntry:
    decoder = msgspec.msgpack.Decoder(tp)
    top = _top_check(mi.type_info(tp))
    return (decoder, None, None) if top is None else (decoder, *top)


# -- limits ---------------------------------------------------------------------------------


def _check_limits(max_size: object, max_depth: object) -> None:
    # The slow path of the decoders' argument check: raises for a bool, a non-int or a value
    # below 1, naming the parameter.
    _check_positive_int("max_size", max_size)
    _check_positive_int("max_depth", max_depth)


def _too_large(size: int, max_size: int) -> msgspec.DecodeError:
    return msgspec.DecodeError(f"Input is {size} bytes, larger than max_size={max_size} - at `$`")


def _render_path(path: list[str | int]) -> str:
    shown = path[:8]
    out = ["$"]
    for seg in shown:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif seg.isidentifier() and len(seg) <= 32:
            out.append(f".{seg}")
        else:
            out.append("[...]")
    if len(path) > len(shown):
        out.append("...")
    return "".join(out)


def _too_deep(max_depth: int, path: list[str | int] | None) -> msgspec.DecodeError:
    where = "$" if path is None else _render_path(path)
    return msgspec.DecodeError(f"Input is nested deeper than max_depth={max_depth} - at `{where}`")


_CONTAINERS: Final[frozenset[type]] = frozenset({dict, list, tuple})  # what untyped decoding nests
_KEY: Final = "?"  # the path segment of a map key that is not a str; renders as [...]


def _walk_depth(tree: Any, max_depth: int, *, keys: bool = False) -> None:
    # Level by level, each step a few C-level passes (map/compress/chain) over the level's
    # children: time and memory linear in the tree, whatever its shape. ``keys``: map keys
    # count as nodes too (untyped MessagePack decodes array keys to tuples; JSON keys are
    # str). The path is only built, by _search, once the limit is known to be exceeded.
    containers = _CONTAINERS
    level: list[Any] = [tree] if tree.__class__ in containers else []
    depth = 1
    while level:
        if depth > max_depth:
            path = _search(tree, lambda node, at: at > max_depth and node.__class__ in containers)
            raise _too_deep(max_depth, path)
        is_dict = list(map(operator.is_, map(type, level), repeat(dict)))
        if any(is_dict):
            dicts = list(compress(level, is_dict))
            arrays = compress(level, map(operator.not_, is_dict))
            children = [
                *chain.from_iterable(arrays),
                *chain.from_iterable(map(dict.values, dicts)),
                *(chain.from_iterable(dicts) if keys else ()),
            ]
        else:
            children = list(chain.from_iterable(level))
        level = list(compress(children, map(containers.__contains__, map(type, children))))
        depth += 1


def _children(node: Any) -> Iterator[tuple[str | int, Any]]:
    if node.__class__ is dict:
        for key, value in node.items():
            if key.__class__ is str:
                yield key, value
            else:
                yield _KEY, key
                yield _KEY, value
    elif node.__class__ is list or node.__class__ is tuple:
        yield from enumerate(node)


def _search(tree: Any, hit: Callable[[Any, int], bool]) -> list[str | int] | None:
    # The path of the first node, depth first, for which hit(node, level) is true (the root
    # is level 1), or None. One shared path list: linear in the tree, whatever its depth.
    if hit(tree, 1):
        return []
    path: list[str | int] = []
    stack = [_children(tree)]
    while stack:
        for seg, child in stack[-1]:
            if hit(child, len(stack) + 1):
                path.append(seg)
                return path
            if child.__class__ in _CONTAINERS:
                path.append(seg)
                stack.append(_children(child))
                break
        else:
            stack.pop()
            if path:
                path.pop()
    return None


def _check_json_limits(data: Buffer, max_size: int, max_depth: int) -> None:
    # The general case; decode_json inlines the same checks for ``bytes``.
    if isinstance(data, str):
        # A lone surrogate fails to encode (UnicodeEncodeError): decode_json reports it.
        size = len(data) if data.isascii() else len(data.encode())
        opening = data.count("{") + data.count("[")
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = data if isinstance(data, bytes) else bytes(data)
        size = len(raw)
        opening = size - len(raw.translate(None, b"{["))
    else:
        raise TypeError(f"data must be bytes-like or str, got {type(data).__name__}")
    if size > max_size:
        raise _too_large(size, max_size)
    if opening > max_depth:
        _check_json_tree(data, max_depth)


def _check_json_tree(data: Buffer, max_depth: int) -> None:
    try:
        tree = msgspec.json.decode(data)
    except RecursionError:
        raise _too_deep(max_depth, None) from None
    _walk_depth(tree, max_depth)


def _bytes_of(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"data must be bytes-like, got {type(data).__name__}")


def _check_msgpack_tree(raw: bytes, max_depth: int) -> None:
    # More container markers than max_depth (some may be bytes of other values): walk it.
    try:
        tree = msgspec.msgpack.decode(raw)
    except RecursionError:
        raise _too_deep(max_depth, None) from None
    _walk_depth(tree, max_depth, keys=True)


def _not_unicode_json(data: Buffer, exc: UnicodeError) -> msgspec.DecodeError:
    # Error path only: name the character or byte, never the text (it may be a secret).
    if isinstance(exc, UnicodeEncodeError):  # str input: msgspec reads it as UTF-8
        return msgspec.DecodeError(f"JSON is malformed: lone surrogate (character {exc.start})")
    where = ""
    if not isinstance(data, str):
        try:
            bytes(data).decode()
        except UnicodeDecodeError as first:
            where = f" (byte {first.start})"
    return msgspec.DecodeError(f"JSON is malformed: invalid UTF-8{where}")


_MALFORMED_AT = re.compile(r"JSON is malformed: invalid character \(byte (\d+)\)")
_NON_FINITE_LITERALS: Final = (b"-Infinity", b"Infinity", b"NaN")
_SENTINEL: Final = "\x00eventbus-non-finite\x00"


def _is_sentinel(node: Any, level: int) -> bool:
    return node.__class__ is str and node == _SENTINEL


def _explain_non_finite(data: Buffer, exc: msgspec.DecodeError) -> msgspec.DecodeError | None:
    # Error path only. msgspec reports NaN/Infinity literals as an "invalid character"; name
    # the literal and find its path by decoding a copy with a sentinel string in its place.
    match = _MALFORMED_AT.fullmatch(str(exc))
    if match is None:
        return None
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    pos = int(match.group(1))
    start = pos - 1 if raw[pos - 1 : pos] == b"-" else pos
    literal = next((lit for lit in _NON_FINITE_LITERALS if raw.startswith(lit, start)), None)
    if literal is None:
        return None
    patched = raw[:start] + msgspec.json.encode(_SENTINEL) + raw[start + len(literal) :]
    where = f"byte {start}"
    try:
        path = _search(msgspec.json.decode(patched), _is_sentinel)
    except (msgspec.DecodeError, RecursionError, UnicodeError):  # more damage: keep the offset
        path = None
    if path is not None:
        where = _render_path(path)
    return msgspec.DecodeError(
        f"Non-finite number `{literal.decode()}` is not valid JSON - at `{where}`"
    )


# -- JSON values in MessagePack ----------------------------------------------------------------
# MessagePack decodes into ``Any`` what JSON cannot hold: ext values, timestamps (as datetime),
# binary (as bytes), and map keys of any hashable type (arrays as tuples). msgspec has no
# option to refuse them, so what a MessagePack decoder returns is checked afterwards, along a
# plan built once per type from msgspec.inspect: only the values of ``Any`` fields are walked,
# and a type that reaches no ``Any`` (most events) costs one dict lookup or nothing.

_JSON_SCALARS: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None)})
_WIRE_NAMES: Final[dict[type, str]] = {
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    bytes: "bytes",
    list: "array",
    tuple: "array",
    dict: "object",
    msgspec.msgpack.Ext: "ext",
    datetime.datetime: "datetime",
}


def _wire_name(value: Any) -> str:
    return _WIRE_NAMES.get(value.__class__, type(value).__name__)


class _NotJson(Exception):
    # Internal: a non-JSON value inside an Any payload. ``inner`` is its path within the
    # payload; the typed levels it propagates through append their segments to ``outer``.
    def __init__(self, message: str, inner: list[str | int], key: bool) -> None:
        super().__init__(message)
        self.message = message
        self.inner = inner
        self.key = key
        self.outer: list[str | int] = []

    def error(self) -> msgspec.ValidationError:
        where = _render_path([*reversed(self.outer), *self.inner])
        if self.key:
            return msgspec.ValidationError(f"{self.message} - at `key` in `{where}`")
        return msgspec.ValidationError(f"{self.message} - at `{where}`")


def _check_json_value(value: Any) -> None:
    # The check of one Any payload: one pass over its nodes, iterative (its depth is bounded
    # by max_depth already, but never by the interpreter's stack), no path kept; a stack only
    # once a container holds another.
    scalars = _JSON_SCALARS
    if value.__class__ in scalars:
        return
    stack: list[Any] | None = None
    node = value
    while node.__class__ is dict or node.__class__ is list:
        if node.__class__ is dict:
            for key in node:
                if key.__class__ is not str:
                    raise _not_json(value)
            node = node.values()
        for item in node:
            cls = item.__class__
            if cls in scalars:
                continue
            if cls is not dict and cls is not list:
                raise _not_json(value)
            if stack is None:
                stack = [item]
            else:
                stack.append(item)
        if not stack:
            return
        node = stack.pop()
    raise _not_json(value)


def _is_not_json(node: Any, level: int) -> bool:
    if node.__class__ is dict:
        return any(key.__class__ is not str for key in node)
    return node.__class__ is not list and node.__class__ not in _JSON_SCALARS


def _not_json(payload: Any) -> _NotJson:
    # Error path: find (depth first, as _search goes) the first offending node and say why.
    found: list[Any] = [payload]

    def hit(node: Any, level: int) -> bool:
        if _is_not_json(node, level):
            found.append(node)
            return True
        return False

    path = _search(payload, hit) or []
    node = found[-1]
    if node.__class__ is dict:
        key = next(key for key in node if key.__class__ is not str)
        return _NotJson(f"Expected `str`, got `{_wire_name(key)}`", path, key=True)
    return _NotJson(f"Expected a JSON value, got `{_wire_name(node)}`", path, key=False)


def _subtypes(t: mi.Type) -> tuple[mi.Type, ...]:
    if isinstance(t, mi.Metadata):
        return (t.type,)
    if isinstance(t, mi.UnionType):
        return t.types
    if isinstance(t, mi.CollectionType):  # list, set, frozenset, variadic tuple
        return (t.item_type,)
    if isinstance(t, mi.TupleType):
        return t.item_types
    if isinstance(t, mi.DictType):
        return (t.key_type, t.value_type)
    if isinstance(t, mi.StructType | mi.DataclassType | mi.NamedTupleType | mi.TypedDictType):
        return tuple(f.type for f in t.fields)
    return ()


def _reaches_any(t: mi.Type, seen: set[int]) -> bool:
    if isinstance(t, mi.AnyType):
        return True
    if id(t) in seen:
        return False
    seen.add(id(t))
    return any(_reaches_any(sub, seen) for sub in _subtypes(t))


_PYTHON_CLASS: Final[dict[type[mi.Type], type]] = {
    mi.ListType: list,
    mi.SetType: set,
    mi.FrozenSetType: frozenset,
    mi.VarTupleType: tuple,
    mi.TupleType: tuple,
    mi.DictType: dict,
    mi.TypedDictType: dict,
}
_MISSING: Final = object()


def _get_key(value: Any, name: Any) -> Any:
    return value.get(name, _MISSING)


def _unwrap(t: mi.Type) -> mi.Type:
    while isinstance(t, mi.Metadata):
        t = t.type
    return t


def _check_one_union(name: str, seg: str | int, by_class: dict[type, _Check]) -> _Check:
    # The check of a struct whose only field to check is a union: one call, not three.
    def check_one(value: Any) -> None:
        item = getattr(value, name)
        run = by_class.get(item.__class__)
        if run is not None:
            try:
                run(item)
            except _NotJson as exc:
                exc.outer.append(seg)
                raise

    return check_one


class _ByClass:
    # The check of a union: by the exact class msgspec decoded (a union has at most one
    # member per class). Struct checks read ``table`` to dispatch without this call.
    __slots__ = ("table",)

    def __init__(self, table: dict[type, _Check]) -> None:
        self.table = table

    def __call__(self, value: Any) -> None:
        check = self.table.get(value.__class__)
        if check is not None:
            check(value)


def _top_check(t: mi.Type) -> tuple[dict[type, _Check], _Check | None] | None:
    """What decode_msgpack runs on its result: ``checks.get(result.__class__, fallback)``."""
    check = _plan(t, {})
    if check is None:
        return None
    if isinstance(check, _ByClass):
        return check.table, None
    return {}, check


def _plan(t: mi.Type, memo: dict[type, _Check]) -> _Check | None:
    """The check of the JSON values in a decoded value of type ``t``, or None if ``t`` reaches
    no ``Any``. ``memo`` holds the checks of the classes being planned, for recursive types."""
    if not _reaches_any(t, set()):
        return None
    if isinstance(t, mi.AnyType):
        return _check_json_value
    if isinstance(t, mi.Metadata):
        return _plan(_unwrap(t), memo)
    if isinstance(t, mi.UnionType):
        if any(isinstance(member, mi.AnyType) for member in t.types):
            return _check_json_value
        table: dict[type, _Check] = {}
        for member in t.types:
            check = _plan(member, memo)
            if check is not None:
                member = _unwrap(member)
                cls = getattr(member, "cls", None) or _PYTHON_CLASS[type(member)]
                table[typing.get_origin(cls) or cls] = check  # Envelope[E] decodes to Envelope
        return _ByClass(table)
    if isinstance(t, mi.CollectionType):
        item_check = _plan(t.item_type, memo)
        assert item_check is not None

        def check_items(value: Any) -> None:
            for i, item in enumerate(value):
                try:
                    item_check(item)
                except _NotJson as exc:
                    exc.outer.append(i)
                    raise

        return check_items
    if isinstance(t, mi.TupleType):
        plans = [(i, c) for i, sub in enumerate(t.item_types) if (c := _plan(sub, memo))]

        def check_tuple(value: Any) -> None:
            for i, check in plans:
                try:
                    check(value[i])
                except _NotJson as exc:
                    exc.outer.append(i)
                    raise

        return check_tuple
    if isinstance(t, mi.DictType):
        str_keys = isinstance(_unwrap(t.key_type), mi.AnyType)
        value_check = _plan(t.value_type, memo)

        def check_dict(value: Any) -> None:
            for key, item in value.items():
                if str_keys and key.__class__ is not str:
                    raise _NotJson(f"Expected `str`, got `{_wire_name(key)}`", [], key=True)
                if value_check is not None:
                    try:
                        value_check(item)
                    except _NotJson as exc:
                        exc.outer.append(key if key.__class__ is str else _KEY)
                        raise

        return check_dict
    if isinstance(t, mi.StructType | mi.DataclassType | mi.NamedTupleType | mi.TypedDictType):
        if t.cls in memo:
            return memo[t.cls]
        # (name or index, path segment, check, the check's table if it dispatches by class)
        fields: list[tuple[Any, str | int, _Check, dict[type, _Check] | None]] = []
        get: Callable[[Any, Any], Any] = getattr
        if isinstance(t, mi.TypedDictType):
            get = _get_key
        elif isinstance(t, mi.NamedTupleType):
            get = operator.getitem

        def check_fields(value: Any) -> None:
            for name, seg, check, by_class in fields:
                item = get(value, name)
                run: _Check | None = check
                if by_class is not None:  # a union: dispatch here rather than in another call
                    run = by_class.get(item.__class__)
                if run is None or item is _MISSING:  # _MISSING: an absent TypedDict key
                    continue
                try:
                    run(item)
                except _NotJson as exc:
                    exc.outer.append(seg)
                    raise

        memo[t.cls] = check_fields
        for i, field in enumerate(t.fields):
            check = _plan(field.type, memo)
            if check is not None:
                by_class = check.table if isinstance(check, _ByClass) else None
                if isinstance(t, mi.NamedTupleType):  # encoded as an array
                    fields.append((i, i, check, by_class))
                else:
                    fields.append((field.name, field.encode_name, check, by_class))
        if isinstance(t, mi.StructType) and len(fields) == 1 and fields[0][3] is not None:
            # Envelope[E]: one union field, its event; the bridge decodes one per message. (A
            # recursive reference keeps check_fields from memo, which is just as right.)
            return _check_one_union(*fields[0][:2], fields[0][3])
        return check_fields
    return None  # pragma: no cover - every type that reaches Any is handled above


# -- encoding -------------------------------------------------------------------------------


def encode_json(obj: Any) -> bytes:
    """Encode an event, an :class:`~eventbus.Envelope` or any msgspec-supported value as JSON.

    :returns: canonical compact JSON (UTF-8, keys sorted, no whitespace), identical for equal
        values and stable across encode/decode round trips.
    :raises TypeError: if ``obj`` holds a value msgspec cannot encode.

    Non-finite floats inside ``Any`` payloads are written as ``null`` (JSON has no NaN); typed
    float fields never hold them after a decode.
    """
    return _json_encoder.encode(obj)


def encode_msgpack(obj: Any) -> bytes:
    """Encode like :func:`encode_json`, as MessagePack: canonical (sorted keys) and stable.

    :raises TypeError: if ``obj`` holds a value msgspec cannot encode.
    """
    return _msgpack_encoder.encode(obj)


# -- decoding -------------------------------------------------------------------------------


@overload
def decode_json(
    data: Buffer, *, max_size: int = DEFAULT_MAX_SIZE, max_depth: int = DEFAULT_MAX_DEPTH
) -> AnyKernelEvent: ...
@overload
def decode_json(
    data: Buffer,
    type: type[T],
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> T: ...
@overload
def decode_json(
    data: Buffer,
    type: Any,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any: ...
def decode_json(
    data: Buffer,
    type: Any = AnyKernelEvent,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Decode and validate JSON as ``type``: by default any built-in kernel event.

    ``type`` is any type msgspec can decode: an event class, a union of event classes
    (``MyEvent | AnyKernelEvent``), ``Envelope[AnyKernelEvent]``, ``list[...]``...

    :returns: a fully validated instance of ``type``.
    :raises msgspec.DecodeError: for malformed JSON, a document over ``max_size`` bytes or
        nested deeper than ``max_depth`` levels (see the module docs).
    :raises msgspec.ValidationError: for well-formed JSON that is not a valid ``type``: an
        unknown ``event_type``, a missing field, a wrong type, a value out of range, NaN or
        infinity. The message ends with the path of the offending value.
    :raises ValueError: if ``max_size`` or ``max_depth`` is below 1.
    :raises TypeError: if ``max_size`` or ``max_depth`` is not an int (a bool is not), ``data``
        is not bytes-like or ``str``, or msgspec cannot decode ``type``.
    """
    if (
        max_size.__class__ is not int
        or max_depth.__class__ is not int
        or max_size < 1
        or max_depth < 1
    ):
        _check_limits(max_size, max_depth)
    entry = _json_by_id.get(id(type))
    if entry is not None and entry[0] is type:
        decoder = entry[1]
    else:
        decoder = _cached(_json_decoders, _json_by_id, type, _build_json_decoder)
    try:
        if data.__class__ is bytes:  # the common case, inlined: one C-level pass, no Python loop
            raw: bytes = data
            if len(raw) > max_size:
                raise _too_large(len(raw), max_size)
            if len(raw) - len(raw.translate(None, b"{[")) > max_depth:
                _check_json_tree(raw, max_depth)
        else:
            _check_json_limits(data, max_size, max_depth)
        return decoder.decode(data)
    except RecursionError:  # deeper than the interpreter allows, yet within max_depth
        raise _too_deep(max_depth, None) from None
    except msgspec.DecodeError as exc:
        better = _explain_non_finite(data, exc)
        if better is None:
            raise
        raise better from exc
    except UnicodeError as exc:  # msgspec lets these through from the strings it builds
        raise _not_unicode_json(data, exc) from exc


@overload
def decode_msgpack(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> AnyKernelEvent: ...
@overload
def decode_msgpack(
    data: bytes | bytearray | memoryview,
    type: type[T],
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> T: ...
@overload
def decode_msgpack(
    data: bytes | bytearray | memoryview,
    type: Any,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any: ...
def decode_msgpack(
    data: bytes | bytearray | memoryview,
    type: Any = AnyKernelEvent,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Decode and validate MessagePack as ``type``; the contract of :func:`decode_json`.

    :raises msgspec.DecodeError: for malformed or truncated MessagePack, a string that is
        not UTF-8, or input over the limits.
    :raises msgspec.ValidationError: for a value that is not a valid ``type``, or an ``Any``
        payload holding something JSON cannot (an ext value, a timestamp, binary data, a map
        key that is not a str; see the module docs).
    :raises ValueError: if ``max_size`` or ``max_depth`` is below 1.
    :raises TypeError: if ``max_size`` or ``max_depth`` is not an int, ``data`` is not
        bytes-like, or msgspec cannot decode ``type``.
    """
    raw = data if data.__class__ is bytes else _bytes_of(data)
    if (
        max_size.__class__ is not int
        or max_depth.__class__ is not int
        or max_size < 1
        or max_depth < 1
    ):
        _check_limits(max_size, max_depth)
    entry = _msgpack_by_id.get(id(type))
    if entry is not None and entry[0] is type:
        decoder, checks, fallback = entry[1]
    else:
        decoder, checks, fallback = _cached(
            _msgpack_decoders, _msgpack_by_id, type, _build_msgpack_decoder
        )
    if len(raw) > max_size:
        raise _too_large(len(raw), max_size)
    try:
        if len(raw) - len(raw.translate(None, _MSGPACK_CONTAINER_BYTES)) > max_depth:
            _check_msgpack_tree(raw, max_depth)
        result = decoder.decode(raw)
        if checks is not None:  # the type reaches an Any field: check what it holds
            check = checks.get(result.__class__, fallback)
            if check is not None:
                check(result)
        return result
    except _NotJson as exc:
        raise exc.error() from None
    except RecursionError:
        raise _too_deep(max_depth, None) from None
    except UnicodeDecodeError as exc:
        raise msgspec.DecodeError(
            "MessagePack data is malformed: invalid UTF-8 in a string"
        ) from exc


# -- the oxios (serde externally tagged) form -------------------------------------------------

# One optional field per supervisor variant, named as serde names the variant: decoding
# {"AgentStarted": {...}} fills exactly one of them, with msgspec's paths ("$.AgentStarted.id").
_OxiosWire: Any = msgspec.defstruct(
    "_OxiosWire",
    [(cls.__name__, cls | None, None) for cls in SUPERVISOR_EVENT_TYPES],
    forbid_unknown_fields=True,
    frozen=True,
)
_OXIOS_VARIANTS: Final = tuple(cls.__name__ for cls in SUPERVISOR_EVENT_TYPES)


def decode_oxios_json(
    data: Buffer, *, max_size: int = DEFAULT_MAX_SIZE, max_depth: int = DEFAULT_MAX_DEPTH
) -> SupervisorEvent:
    """Decode one supervisor event in the oxios wire form, serde's externally tagged enum.

    The input is an object with exactly one key, the oxios variant name, whose value holds
    the fields: ``{"ToolExecutionProgress": {"session_id": "s-old", ...}}``. Fields oxios
    fills by default when absent (``AgentStopped.success``, ``ToolExecutionProgress.tab_id``,
    ...) default here too, so JSON written by older oxios versions decodes.

    :returns: the event, a member of :data:`~eventbus.events.SupervisorEvent`; encode it with
        :func:`encode_json` to get the bus's internally tagged form.
    :raises msgspec.DecodeError: as :func:`decode_json`.
    :raises msgspec.ValidationError: for an unknown variant name
        (``Object contains unknown field `Nope```), an object with zero or several variant
        keys, or invalid fields (``... - at `$.AgentStarted.id```).
    :raises ValueError: if ``max_size`` or ``max_depth`` is below 1.
    :raises TypeError: as :func:`decode_json`.
    """
    wire = decode_json(data, _OxiosWire, max_size=max_size, max_depth=max_depth)
    found = [name for name in _OXIOS_VARIANTS if getattr(wire, name) is not None]
    if len(found) != 1:
        got = ", ".join(f"`{name}`" for name in found) or "none"
        raise msgspec.ValidationError(
            f"Expected an object with exactly one oxios variant key, got {got} - at `$`"
        )
    event: SupervisorEvent = getattr(wire, found[0])
    return event
