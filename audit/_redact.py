"""Redaction of secret-looking values and bounding of what the audit trail stores."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import msgspec
import msgspec.inspect as mi

__all__ = [
    "REDACTED",
    "Redactor",
    "bound_text",
    "canonical_json",
    "is_secret_key",
    "ALWAYS",
    "contains_secret_key",
    "maybe_secret_text",
    "scan_plan",
    "redact_secrets",
]

REDACTED: Final = "[REDACTED]"
"""What a redacted value is replaced with."""

Redactor: TypeAlias = Callable[[Any], Any]
"""A function from an event's builtin form (``msgspec.to_builtins``: dicts, lists, str,
int, float, bool, None) to the builtin form to store. It must not mutate its argument."""

# Canonical JSON (struct fields and dict keys sorted): equal events encode to equal bytes, and
# a resource reads exactly like the event on the wire, minus what redaction replaced. The same
# configuration as ``eventbus.codec.encode_json`` (a test pins that), as a bound method: one
# call less per entry than going through ``encode_json``.
canonical_json: Final = msgspec.json.Encoder(order="sorted").encode

# Words of a key: camelCase humps and runs separated by anything that is not a letter/digit.
_WORDS: Final = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])|[0-9]+")
_SECRET_IN_WORD: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "authorization",
    "authorisation",
    "cookie",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
)
_SECRET_WORD: Final = frozenset({"pwd", "jwt", "bearer"})
_KEY_QUALIFIERS: Final = frozenset(
    {"api", "private", "access", "secret", "signing", "encryption", "client", "master", "auth"}
)
# For text that is not JSON (unparsable tool arguments): any trigger anywhere.
_LOOSE: Final = re.compile(
    rb"(?i:passw|passphrase|secret|authori[sz]ation|cookie|credential|auth|pwd|jwt|bearer|key"
    rb"|token)"
)


def maybe_secret_text(raw: bytes) -> bool:
    """Whether free text ``raw`` contains anything secret-looking at all."""
    return _LOOSE.search(raw) is not None


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether values under ``key`` are treated as secrets by :func:`redact_secrets`.

    Case-insensitive, by words (``snake_case``, ``kebab-case``, ``camelCase`` and dotted keys
    are split): a word containing password, passwd, passphrase, secret, authorization, cookie,
    credential, apikey, privatekey or accesskey; a last word ending in ``token`` or ``auth``
    (``token``, ``access_token``, ``csrfToken``, ``oauth``, but not ``input_tokens`` nor
    ``token_count``); the
    words ``pwd``, ``jwt``, ``bearer``; ``key`` preceded by api, private, access, secret,
    signing, encryption, client, master or auth (``api_key``, ``private-key``).
    """
    words = [w.lower() for w in _WORDS.findall(key)]
    if words and words[-1].endswith(("token", "auth")):
        return True
    previous = ""
    for word in words:
        if word in _SECRET_WORD:
            return True
        if any(s in word for s in _SECRET_IN_WORD):
            return True
        if word == "key" and previous in _KEY_QUALIFIERS:
            return True
        previous = word
    return False


def redact_secrets(value: Any) -> Any:
    """The default :data:`Redactor`: replace values under secret-looking keys, at any depth.

    :returns: a copy of ``value`` in which every dict value whose key passes
        :func:`is_secret_key` is :data:`REDACTED` (whatever its type: a nested dict under
        ``credentials`` goes entirely). Lists and dicts are walked to any depth; the argument
        is not mutated.

    It looks at keys only: a secret inside a free-text string (a shell command, a prompt) is
    not found.
    """
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    return value


def bound_text(raw: bytes, limit: int) -> str:
    """Decode ``raw`` (UTF-8) and cut it to at most ``limit`` bytes, marker included.

    :returns: the text unchanged if it fits; otherwise its longest prefix that fits on a
        character boundary, followed by ``…[truncated N bytes]`` where N is the number of
        bytes cut.
    """
    if len(raw) <= limit:
        return raw.decode("utf-8", "replace")
    keep = max(0, limit - len(f"…[truncated {len(raw)} bytes]".encode()))
    head = raw[:keep].decode("utf-8", "ignore")
    cut = len(raw) - len(head.encode())
    return f"{head}…[truncated {cut} bytes]"


class _Always:
    def __repr__(self) -> str:
        return "ALWAYS"


ALWAYS: Final = _Always()
"""A scan plan: redact every instance (the type has secret-looking field names)."""

ScanPlan: TypeAlias = "_Always | tuple[str, ...] | None"

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


# Keys already found not secret-looking, so a dict whose keys are all known is checked with
# one C-level ``issuperset``. Bounded: cleared when full (arbitrary keys cannot grow it).
_SAFE_KEYS: Final[set[str]] = set()
_SAFE_KEYS_MAX: Final = 4096


def contains_secret_key(value: object) -> bool:
    """Whether a JSON-like ``value`` holds a dict key :func:`is_secret_key` accepts.

    Anything other than plain dicts, lists, tuples and scalars (a Struct, a dataclass, a dict
    subclass inside an ``Any`` field) counts as holding one, so the caller takes the full
    redaction path.
    """
    kind = type(value)
    if kind is dict:
        if not _SAFE_KEYS.issuperset(value):  # type: ignore[arg-type]
            for k in value:  # type: ignore[attr-defined]
                if type(k) is not str or is_secret_key(k):
                    return True
                if len(_SAFE_KEYS) >= _SAFE_KEYS_MAX:
                    _SAFE_KEYS.clear()
                _SAFE_KEYS.add(k)
        for v in value.values():  # type: ignore[attr-defined]  # noqa: SIM110 (see below)
            if type(v) not in _SCALARS and contains_secret_key(v):
                return True
        return False
    if kind is list or kind is tuple:
        for v in value:  # type: ignore[attr-defined]  # noqa: SIM110 (a loop beats any(genexpr))
            if type(v) not in _SCALARS and contains_secret_key(v):
                return True
        return False
    return kind not in _SCALARS


def _needs(t: mi.Type, seen: set[type]) -> str:
    """``"no"``, ``"dynamic"`` (may hold arbitrary keys) or ``"always"`` for one field type."""
    if isinstance(t, mi.Metadata):
        return _needs(t.type, seen)
    if isinstance(t, mi.StructType):
        if t.cls in seen:
            return "no"
        seen.add(t.cls)
        for f in t.fields:
            if is_secret_key(f.encode_name) or _needs(f.type, seen) != "no":
                return "always"
        return "no"
    if isinstance(t, mi.UnionType):
        kinds = {_needs(u, seen) for u in t.types}
        return "always" if "always" in kinds else "dynamic" if "dynamic" in kinds else "no"
    if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        return _needs(t.item_type, seen)
    if isinstance(t, mi.TupleType):
        kinds = {_needs(u, seen) for u in t.item_types}
        return "always" if "always" in kinds else "dynamic" if "dynamic" in kinds else "no"
    if isinstance(
        t,
        mi.StrType
        | mi.IntType
        | mi.FloatType
        | mi.BoolType
        | mi.NoneType
        | mi.EnumType
        | mi.LiteralType
        | mi.UUIDType
        | mi.DateTimeType
        | mi.DateType
        | mi.TimeType
        | mi.TimeDeltaType
        | mi.DecimalType
        | mi.BytesType
        | mi.ByteArrayType
        | mi.MemoryViewType,
    ):
        return "no"
    return "dynamic"  # Any, dicts, dataclasses, ...: keys known only at run time


def scan_plan(event_type: type) -> ScanPlan:
    """What the default redactor must look at in instances of ``event_type``.

    :returns: ``None`` when no instance can hold a secret-looking key (every field has a fixed
        type and an ordinary name: nothing to redact, ever); a tuple of the fields whose
        values may hold arbitrary dict keys (``Any``, dicts), to check per instance; or
        :data:`ALWAYS` when the type has a secret-looking field name or nests dynamic values
        in a structure, so every instance goes through :func:`redact_secrets`.
    """
    try:
        info = mi.type_info(event_type)
    except Exception:
        return ALWAYS
    if not isinstance(info, mi.StructType):
        return ALWAYS
    dynamic = []
    for f in info.fields:
        if is_secret_key(f.encode_name):
            return ALWAYS
        need = _needs(f.type, {event_type})
        if need == "always":
            return ALWAYS
        if need == "dynamic":
            dynamic.append(f.name)
    return tuple(dynamic) or None
