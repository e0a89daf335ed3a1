"""Redaction of secret-looking values and bounding of what the audit trail stores.

Three pieces, all cheap on the common path (an event without a secret-looking key):

- :func:`is_secret_key` decides from a dict key (or a field name) whether its value is a secret;
  its answers are cached, for short keys only.
- :func:`scan_plan` decides once per event class where a secret can be at all, so most events
  are stored as one encode; the mapper checks the fields the plan names per event.
- :class:`_Walker` makes the stored form when there is something to redact or to repair: it
  copies the event's builtin form with secrets replaced, non-str keys turned into text, nesting
  deeper than :data:`MAX_DEPTH` replaced, and stops copying once what it made is far past the
  resource's bound (the resource is cut there anyway), so its work is bounded.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import re
import sys
import unicodedata
import uuid
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import msgspec
import msgspec.inspect as mi

from eventbus.events import DeltaKind, ModelDelta

__all__ = [
    "ALWAYS",
    "MAX_DEPTH",
    "REDACTED",
    "TOO_DEEP",
    "Redactor",
    "TextPlan",
    "bound_text",
    "canonical_json",
    "is_secret_key",
    "maybe_secret_text",
    "redact_secrets",
    "scan_plan",
    "walk_json",
]

REDACTED: Final = "[REDACTED]"
"""What a redacted value is replaced with."""

TOO_DEEP: Final = "[TOO DEEP]"
"""What a dict or list nested deeper than :data:`MAX_DEPTH` is replaced with."""

MAX_DEPTH: Final = 64
"""The deepest nesting stored: the event (or the value given) is level 0, its fields' values
level 1; a dict or list at a deeper level is stored as :data:`TOO_DEEP`."""

Redactor: TypeAlias = Callable[[Any], Any]
"""A function from an event's builtin form (``msgspec.to_builtins``: dicts, lists, str,
int, float, bool, None) to the builtin form to store. It must not mutate its argument."""

# Canonical JSON (struct fields and dict keys sorted): equal events encode to equal bytes, and
# a resource reads exactly like the event on the wire, minus what redaction replaced. The same
# configuration as ``eventbus.codec.encode_json`` (a test pins that), as a bound method: one
# call less per entry than going through ``encode_json``.
canonical_json: Final = msgspec.json.Encoder(order="sorted").encode

# -- which keys are secret ---------------------------------------------------------------------

# Words of a key: camelCase humps and runs separated by anything that is not an ASCII
# letter/digit (so a non-ASCII letter separates words too).
_WORDS: Final = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])|[0-9]+")
# A word containing one of these is secret: "passw" covers password(s), passwd, Passwort.
_SECRET_IN_WORD: Final = (
    "passw",
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
# A word equal to one of these is secret.
_SECRET_WORD: Final = frozenset({"pass", "pw", "pwd", "jwt", "bearer"})
# ``key`` (as a word, or ending a word: ``sshkey``) is secret after one of these.
_KEY_QUALIFIERS: Final = frozenset(
    {
        "access",
        "account",
        "api",
        "app",
        "auth",
        "client",
        "consumer",
        "decryption",
        "encryption",
        "function",
        "hmac",
        "license",
        "licence",
        "master",
        "private",
        "secret",
        "session",
        "shared",
        "signing",
        "ssh",
        "subscription",
    }
)
# A key with a ``token`` word and one of these is a count of tokens, not a token:
# input_tokens, max_tokens, token_count, promptTokenCount, cache_read_input_tokens, ...
_COUNTER_WORDS: Final = frozenset(
    {
        "accepted",
        "after",
        "audio",
        "before",
        "billed",
        "budget",
        "cache",
        "cached",
        "candidate",
        "completion",
        "carried",
        "count",
        "est",
        "estimate",
        "estimated",
        "input",
        "left",
        "limit",
        "max",
        "min",
        "num",
        "number",
        "output",
        "per",
        "prediction",
        "prompt",
        "reasoning",
        "rejected",
        "remaining",
        "thought",
        "total",
        "usage",
        "used",
    }
)
# Trailing words that say how a value is held, not what it is: ``token_value`` is a token.
_SUFFIX_WORDS: Final = frozenset({"value", "val"})

# Look-alike letters (Cyrillic, Greek, Armenian, Latin extensions) mapped to the ASCII letter
# they are mistaken for; compatibility forms (fullwidth, mathematical) go through NFKD instead.
_CONFUSABLES: Final = str.maketrans(
    {
        **dict(
            zip(
                "\u0430\u0435\u0456\u0458\u043a\u043e\u0440\u0441\u0443\u0445\u0455\u0501\u051b\u051d\u04bb\u04cf",
                "aeijkopcyxsdqwhl",
                strict=True,
            )
        ),
        **dict(
            zip(
                "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u0406\u0408\u0405\u051a\u051c\u04ba\u04c0",
                "ABEKMHOPCTXYIJSQWHI",
                strict=True,
            )
        ),
        **dict(
            zip(
                "\u03b1\u03b5\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7",
                "aeiknoptux",
                strict=True,
            )
        ),
        **dict(
            zip(
                "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",
                "ABEZHIKMNOPTYX",
                strict=True,
            )
        ),
        **dict(zip("\u0585\u057d\u0570\u0578\u0131\u0237\u0251\u0261", "ouhnijag", strict=True)),
    }
)
# Dropped from non-ASCII keys after NFKD: every format character (Unicode 14 category Cf:
# soft hyphen, zero-width characters, bidi controls, tags, ...) and the combining marks Latin
# text is written with (accents, variation selectors); other marks separate words.
_INVISIBLE: Final = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
    "\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe00-\ufe0f"
    "\ufe20-\ufe2f\U000e0100-\U000e01ef]"
)
# Runs of letters (any script), and an ASCII letter.
_LETTERS: Final = re.compile(r"[^\W\d_]+")
_ASCII_LETTER: Final = re.compile("[A-Za-z]")
#: A word mixing ASCII and other letters longer than this is secret without looking.
_MIXED_WORD_CHARS: Final = 32
# For a word that mixes ASCII and non-ASCII letters after the above: a trigger word with some
# of its letters replaced by non-ASCII letters (at least one, at most a third) is taken as the
# trigger word (fail closed). Stems shorter than 3 letters would match too much.
_WILDCARD_STEMS: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "cookie",
    "credential",
    "bearer",
    "pass",
    "auth",
    "key",
    "pwd",
    "jwt",
)
_WILDCARDS: Final = tuple(
    (re.compile("(?=(" + "".join(f"[{c}\\u0080-\\U0010ffff]" for c in stem) + "))"), len(stem))
    for stem in _WILDCARD_STEMS
)
# For free text (unparsable or string tool arguments): any trigger anywhere.
_LOOSE: Final = re.compile(
    rb"(?i:passw|passphrase|secret|authori[sz]ation|cookie|credential|auth|pwd|jwt|bearer|key"
    rb"|token)"
)

#: Keys longer than this are secret without looking (fail closed; no regex over huge keys).
MAX_KEY_CHARS: Final = 256
#: Only keys at most this long are remembered (by the answer cache and the safe-key set).
_CACHED_KEY_CHARS: Final = 64
#: How many answers the cache of :func:`is_secret_key` keeps (cleared when full).
_CACHE_MAX: Final = 4096
_CACHE: Final[dict[str, bool]] = {}


def maybe_secret_text(raw: bytes) -> bool:
    """Whether free text ``raw`` (UTF-8) contains anything secret-looking at all.

    Case-insensitive, anywhere in the text: passw, passphrase, secret, authorization, cookie,
    credential, auth, pwd, jwt, bearer, key or token. Text with non-ASCII characters is also
    checked with look-alike letters mapped to ASCII and everything else non-ASCII (zero-width
    characters, accents, other scripts) removed, so ``pass\\u200bword`` and ``t\\u043eken`` (a
    Cyrillic o) are found. Linear in the text, in C.
    """
    if _LOOSE.search(raw) is not None:
        return True
    if raw.isascii():
        return False
    text = raw.decode("utf-8", "replace").translate(_CONFUSABLES)
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore")
    return _LOOSE.search(folded) is not None


def is_secret_key(key: str) -> bool:
    """Whether values under ``key`` are treated as secrets by :func:`redact_secrets`.

    The key is split into words (``snake_case``, ``kebab-case``, ``camelCase``, dotted), each
    lowercased, with trailing digits and a plural ``s`` dropped (``api_keys`` and ``token1``
    read as ``api_key`` and ``token``), and a trailing ``value``/``val`` word dropped. It is
    secret when:

    - a word contains passw (password, passwd, Passwort), passphrase, secret, authorization,
      authorisation, cookie, credential, apikey, privatekey or accesskey;
    - a word is pass, pw, pwd, jwt or bearer (``db_pass``; not ``passed``, ``bypass``);
    - ``key`` follows access, account, api, app, auth, client, consumer, decryption,
      encryption, functions, hmac, license, licence, master, private, secret, session, shared,
      signing, ssh or subscription, as a word or in one (``ssh_key``, ``sessionKey``,
      ``Ocp-Apim-Subscription-Key``, ``apikey``; not ``key``, ``query_key``, ``monkey``);
    - a word ends in ``token`` (``token``, ``auth_tokens``, ``csrfToken``, ``token_value``)
      unless another word marks a count: input, output, max, min, prompt, completion, total,
      count, usage, budget, limit, used, remaining, cache(d), reasoning, ... (``input_tokens``,
      ``max_tokens``, ``token_count``, ``promptTokenCount`` are not secrets);
    - the last word ends in ``auth`` (``auth``, ``oauth2``, ``x-auth``; not ``author``).

    Keys with non-ASCII characters are normalised first: compatibility forms folded (NFKD:
    fullwidth ``\\uff30assword``), format characters and accents dropped
    (``pass\\u200bword``). In a word that mixes ASCII and other letters, look-alike
    Cyrillic/Greek/Armenian letters are read as the ASCII letter (``api_k\\u0435y``), a trigger
    word with up to a third of its letters left non-ASCII still counts, and a mixed word over
    32 letters is secret (fail closed); a word of another script reads as ASCII only if every
    letter is a look-alike, otherwise it separates words (``\\u043a\\u043b\\u044e\\u0447``,
    Russian for key, is not secret). Keys longer than :data:`MAX_KEY_CHARS` characters are
    secret without looking.

    Answers for keys up to 64 characters are cached (at most 4096, cleared when full); the
    cache never holds longer keys.
    """
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    if len(key) > MAX_KEY_CHARS:
        return True
    result = _ascii_secret(key) if key.isascii() else _non_ascii_secret(key)
    if len(key) <= _CACHED_KEY_CHARS:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = result
    return result


def _ascii_secret(key: str, tokens: bool = True) -> bool:
    words = []
    for raw in _WORDS.findall(key):
        word = raw.lower().rstrip("0123456789")
        if len(word) > 3 and word[-1] == "s" and word[-2] != "s":
            word = word[:-1]
        if word:
            words.append(word)
    while len(words) > 1 and words[-1] in _SUFFIX_WORDS:
        words.pop()
    token = counter = False
    previous = ""
    for word in words:
        if word in _SECRET_WORD:
            return True
        for part in _SECRET_IN_WORD:
            if part in word:
                return True
        if word.endswith("key") and (
            word[:-3] in _KEY_QUALIFIERS or (word == "key" and previous in _KEY_QUALIFIERS)
        ):
            return True
        if word.endswith("token"):
            token = True
        elif word in _COUNTER_WORDS:
            counter = True
        previous = word
    if token and tokens and not counter:
        return True
    return bool(words) and words[-1].endswith("auth")


def _non_ascii_secret(key: str) -> bool:
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKD", key))
    mixed: list[str] = []

    def skeleton(match: re.Match[str]) -> str:
        word = match.group()
        if word.isascii():
            return word
        if _ASCII_LETTER.search(word) is not None:  # ASCII and other letters in one word
            if len(word) > _MIXED_WORD_CHARS:
                mixed.append(word)  # secret, without a closer look
                return " "
            mapped = word.translate(_CONFUSABLES)
            if not mapped.isascii():
                mixed.append(mapped.casefold())
            return mapped
        if len(word) <= _MIXED_WORD_CHARS:
            mapped = word.translate(_CONFUSABLES)
            if mapped.isascii():  # every letter a look-alike: \u043a\u0435\u0443 reads key
                return mapped
        return " "  # a word of another script separates words, as punctuation does

    if _ascii_secret(_LETTERS.sub(skeleton, text)):
        return True
    for word in mixed:  # fail closed: a trigger spelled with some non-ASCII letters
        if len(word) > _MIXED_WORD_CHARS:
            return True
        for pattern, size in _WILDCARDS:
            most = max(1, size // 3)
            for match in pattern.finditer(word):
                odd = sum(1 for c in match.group(1) if not c.isascii())
                if 1 <= odd <= most:
                    return True
    return False


# -- the fast check ----------------------------------------------------------------------------

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_BUILTIN_TYPES: Final = (dict, list, str, int, float, bool, type(None))
_EMPTY_OK: Final = frozenset({dict, list, tuple})
_PLAIN_LEAVES: Final = (
    enum.Enum,
    uuid.UUID,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    bytes,
    bytearray,
)

# Keys already found not secret-looking, so a dict whose keys are all known is checked with
# one C-level ``issuperset``. Bounded: keys up to 64 characters, cleared when full.
_SAFE_KEYS: Final[set[str]] = set()
_SAFE_KEYS_MAX: Final = 4096


def node_budget(limit: int) -> int:
    """How many dict items and list elements the fast check looks at, and the walk copies
    once its output is past ``limit`` bytes, for a resource bound of ``limit``: the two must
    agree, so both take it from here."""
    return limit // 2 + 64


def _check(value: object, left: int, room: int) -> int:
    """What is left of the node budget ``left`` after checking ``value``, which may nest
    ``room`` more levels of dicts and lists; or -1 if ``value`` needs the redacting walk: a
    secret-looking or non-str key, anything but plain dicts, lists, tuples and scalars,
    nesting deeper than allowed, or more dict items and list elements than ``left``."""
    kind = type(value)
    if kind is dict:
        left -= len(value)  # type: ignore[arg-type]
        if (left | room) < 0:  # either is negative
            return -1
        if not _SAFE_KEYS.issuperset(value) and _unsafe_keys(value):  # type: ignore[arg-type]
            return -1
        for v in value.values():  # type: ignore[attr-defined]
            if type(v) not in _SCALARS:
                left = _check(v, left, room - 1)
                if left < 0:
                    return -1
        return left
    if kind is list or kind is tuple:
        left -= len(value)  # type: ignore[arg-type]
        if (left | room) < 0:
            return -1
        for v in value:  # type: ignore[attr-defined]
            if type(v) not in _SCALARS:
                left = _check(v, left, room - 1)
                if left < 0:
                    return -1
        return left
    return left if kind in _SCALARS else -1


def _unsafe_keys(d: dict[Any, Any]) -> bool:
    """Whether a key of ``d`` is secret-looking or not a ``str``; the others are remembered
    as safe (up to 64 characters)."""
    cached = _CACHE.get
    for k in d:
        if type(k) is not str:
            return True
        secret = cached(k)
        if secret or (secret is None and is_secret_key(k)):
            return True
        if len(k) <= _CACHED_KEY_CHARS:
            if len(_SAFE_KEYS) >= _SAFE_KEYS_MAX:
                _SAFE_KEYS.clear()
            _SAFE_KEYS.add(k)
    return False


def _fits(value: object, left: int, room: int) -> int:
    """What is left of the node budget ``left`` after counting the dict items, list elements
    and struct fields in ``value`` (nesting at most ``room`` more levels), or -1: more nodes
    than ``left``, nested deeper, or an object of unknown size (a set, a dataclass)."""
    kind = type(value)
    if kind in _SCALARS:
        return left
    if kind is dict:
        items: Any = value.values()  # type: ignore[attr-defined]
    elif kind is list or kind is tuple:
        items = value
    elif isinstance(value, msgspec.Struct):
        items = [getattr(value, f) for f in value.__struct_fields__]
    elif isinstance(value, _PLAIN_LEAVES):
        return left - 1
    else:
        return -1
    left -= len(items)
    if left < 0 or room < 0:
        return -1
    for v in items:
        if type(v) not in _SCALARS:
            left = _fits(v, left, room - 1)
            if left < 0:
                return -1
    return left


def _redact_small(value: Any) -> Any:
    """:func:`redact_secrets` for a builtin value :func:`_fits` passed (no deeper than
    :data:`MAX_DEPTH`) with only ``str`` keys: the plain recursion, no budget to keep."""
    kind = type(value)
    if kind is dict:
        out = {}
        cached = _CACHE.get
        for k, v in value.items():
            secret = cached(k)
            if secret is None:
                secret = is_secret_key(k)
            out[k] = REDACTED if secret else v if type(v) in _SCALARS else _redact_small(v)
        return out
    if kind is list:
        return [v if type(v) in _SCALARS else _redact_small(v) for v in value]
    return value


# -- the walk ----------------------------------------------------------------------------------


class _Hole:
    """A struct field value :func:`_shallow` leaves for the walk (``to_builtins`` passes it)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


def _shallow(node: msgspec.Struct) -> Any:
    """``msgspec.to_builtins(node)``, but its fields' values other than scalars, empty
    containers and plain leaves (enums, UUIDs, dates, decimals, bytes) are left as
    :class:`_Hole` for the walk: no deep copy of arguments the walk will stop reading long
    before their end."""
    cls = type(node)
    holes: dict[str, _Hole] = {}
    omit = cls.__struct_config__.omit_defaults
    for name in cls.__struct_fields__:
        v = getattr(node, name)
        t = type(v)
        if t in _SCALARS or (t in _EMPTY_OK and not v) or isinstance(v, _PLAIN_LEAVES):
            continue
        if omit and _is_default(cls, name, v):
            continue  # omitted by to_builtins, as on the wire
        holes[name] = _Hole(v)
    if holes:
        node = msgspec.structs.replace(node, **holes)
    return msgspec.to_builtins(node, builtin_types=(_Hole,), str_keys=True)


def _is_default(cls: type[msgspec.Struct], name: str, value: object) -> bool:
    fields = cls.__struct_fields__
    defaults = cls.__struct_defaults__
    i = fields.index(name) - (len(fields) - len(defaults))
    if i < 0:
        return False
    default = defaults[i]
    return value is default or (type(value) is tuple and value == default)


def _key_text(key: object) -> str:
    """A dict key that is not a ``str``, as text: its JSON key text where msgspec has one
    (numbers, enums' values, UUIDs, dates, ...), else ``str(key)``."""
    if isinstance(key, str):
        return str.__str__(key)
    try:
        (text,) = msgspec.to_builtins({key: None}, str_keys=True)
    except Exception:
        try:
            return str(key)
        except Exception:
            return f"<{type(key).__name__}>"
    return str(text)


def _valid_text(text: str) -> str:
    """``text``, with lone surrogates (which UTF-8 cannot hold) replaced by U+FFFD."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class _Walker:
    """Copies a value into its stored builtin form, in canonical (sorted) order.

    With ``limit``, it keeps an underestimate of the bytes the copy encodes to and stops
    copying once that is past ``limit`` *and* it has copied more than ``node_budget(limit)``
    items: what it leaves out comes after the cut. ``cut`` says it stopped early,
    ``dropped`` is a lower bound on the encoded bytes it left out.
    """

    __slots__ = ("cut", "dropped", "left", "nodes", "redact", "stop_after")

    def __init__(self, redact: bool, limit: int | None) -> None:
        self.redact = redact
        self.left = sys.maxsize if limit is None else limit
        self.stop_after = sys.maxsize if limit is None else node_budget(limit)
        self.nodes = 0
        self.dropped = 0
        self.cut = False

    def value(self, v: Any, depth: int) -> Any:
        t = type(v)
        if t is str:
            self.left -= len(v) + 2
            return v if v.isascii() else _valid_text(v)
        if t is int or t is float or t is bool or v is None:
            self.left -= 1
            return v
        if t is _Hole:
            v = v.value
            t = type(v)
        if t is dict:
            return self.mapping(v, depth)
        if t is list or t is tuple:
            return self.sequence(v, depth)
        if isinstance(v, msgspec.Struct):
            if depth > MAX_DEPTH:
                return self.marker(TOO_DEEP)
            return self.value(_shallow(v), depth)
        # dataclasses, sets, enums, UUIDs, dates, bytes, subclasses of builtins, ...; what
        # msgspec cannot encode raises here, and the whole resource is "<unencodable: ...>"
        plain = msgspec.to_builtins(v, str_keys=True)
        if type(plain) not in _BUILTIN_TYPES:
            raise TypeError(f"Encoding objects of type {type(v).__name__} is unsupported")
        return self.value(plain, depth)

    def marker(self, text: str) -> str:
        self.left -= len(text) + 2
        return text

    def mapping(self, d: dict[Any, Any], depth: int) -> Any:
        if depth > MAX_DEPTH:
            return self.marker(TOO_DEEP)
        self.left -= 2
        keys: list[Any]
        try:
            keys = sorted(d)
            plain = not keys or (type(keys[0]) is str and type(keys[-1]) is str)
        except TypeError:
            plain = False
        if not plain:  # non-str keys: as text; of two keys with one text, the later is kept
            d = {(k if type(k) is str else _key_text(k)): v for k, v in d.items()}
            keys = sorted(d)
        out: dict[str, Any] = {}
        redact = self.redact
        for i, k in enumerate(keys):
            if self.left < 0 and self.nodes > self.stop_after:
                self.cut = True
                self.dropped += 5 * (len(keys) - i) - (i == 0)  # ,"":0 each
                break
            self.nodes += 1
            v = d[k]
            if type(k) is not str:
                k = _key_text(k)
            self.left -= len(k) + 3
            if redact and is_secret_key(k):
                self.left -= len(REDACTED) + 2
                out[k] = REDACTED
            else:
                out[k] = self.value(v, depth + 1)
        return out

    def sequence(self, seq: list[Any] | tuple[Any, ...], depth: int) -> Any:
        if depth > MAX_DEPTH:
            return self.marker(TOO_DEEP)
        self.left -= 2
        out = []
        for i, v in enumerate(seq):
            if self.left < 0 and self.nodes > self.stop_after:
                self.cut = True
                self.dropped += 2 * (len(seq) - i) - (i == 0)  # ,0 each
                break
            self.nodes += 1
            out.append(self.value(v, depth + 1))
        return out


def walk_json(value: object, redact: bool, limit: int) -> bytes:
    """The canonical JSON of ``value``'s stored form (redacted if ``redact``), for a resource
    bounded to ``limit`` bytes.

    :returns: the whole encoding (the caller bounds it, with an exact marker) when the walk
        copied everything; otherwise already bounded, with a ``…[truncated at least N
        bytes]`` marker, N a lower bound of what was cut.
    :raises TypeError: (msgspec's) for an object msgspec cannot convert; also
        :exc:`RecursionError` if the caller's stack is too deep for :data:`MAX_DEPTH` levels.
    """
    walker = _Walker(redact, limit)
    raw = canonical_json(walker.value(value, 0))
    if not walker.cut:
        return raw
    return _bound(raw, limit, walker.dropped, "at least ").encode()


def redact_secrets(value: Any) -> Any:
    """The default :data:`Redactor`: replace values under secret-looking keys, at any depth.

    :returns: a copy of ``value`` in which every dict value whose key passes
        :func:`is_secret_key` is :data:`REDACTED` (whatever its type: a nested dict under
        ``credentials`` goes entirely). The argument is not mutated. The copy is also made
        storable: a dict key that is not a ``str`` becomes its text (its JSON key text where
        msgspec has one: numbers, enums' values, UUIDs, dates; else ``str(key)``; of two keys
        with the same text the later is kept); a dict or list nested deeper than
        :data:`MAX_DEPTH` levels becomes :data:`TOO_DEEP`; lone surrogates in strings become
        U+FFFD; objects that are not builtins are converted as ``msgspec.to_builtins`` does.
    :raises TypeError: (msgspec's) for an object msgspec cannot convert.

    It looks at keys only: a secret inside a free-text string (a shell command, a prompt) is
    not found. Floats are kept as they are: NaN and infinities encode as JSON ``null``.
    """
    return _Walker(True, None).value(value, 0)


# -- bounding ----------------------------------------------------------------------------------


def bound_text(raw: bytes, limit: int) -> str:
    """Decode ``raw`` (UTF-8) and cut it to at most ``limit`` bytes, marker included.

    :returns: the text unchanged if it fits; otherwise its longest prefix that fits on a
        character boundary, followed by ``…[truncated N bytes]`` where N is the number of
        bytes cut.
    """
    if len(raw) <= limit:
        return raw.decode("utf-8", "replace")
    return _bound(raw, limit, 0, "")


def _bound(raw: bytes, limit: int, extra: int, qualifier: str) -> str:
    """``raw`` cut to ``limit`` bytes with ``…[truncated {qualifier}N bytes]``, N the bytes
    cut plus ``extra``."""
    keep = max(0, limit - len(f"…[truncated {qualifier}{len(raw) + extra} bytes]".encode()))
    head = raw[:keep].decode("utf-8", "ignore")
    cut = len(raw) - len(head.encode()) + extra
    return f"{head}…[truncated {qualifier}{cut} bytes]"


# -- scan plans --------------------------------------------------------------------------------


class _Always:
    def __repr__(self) -> str:
        return "ALWAYS"


ALWAYS: Final = _Always()
"""A scan plan: redact every instance (the type has secret-looking field names)."""


class TextPlan:
    """A scan plan for a class with text fields that carry tool arguments.

    ``json_fields``: ``str`` fields holding JSON text (a name ending in ``json``, like
    ``ToolCallPlanned.input_json``): stored as :meth:`~audit.AuditMapper.args_json` makes
    them (parsed, redacted, re-encoded). ``fragment``: ``(field, predicate)``: when
    ``predicate(event)``, the field holds a piece of a tool call's streamed arguments
    (``ModelDelta.text`` of a ``tool_call_arg`` delta), which cannot be redacted by key (a
    key and its value may be in different pieces): it is replaced whole. ``base``: the plan
    for everything else.
    """

    __slots__ = ("base", "fragment", "json_fields")

    def __init__(
        self,
        json_fields: tuple[str, ...],
        fragment: tuple[str, Callable[[Any], bool]] | None,
        base: _Always | tuple[str, ...] | None,
    ) -> None:
        self.json_fields = json_fields
        self.fragment = fragment
        self.base = base

    def __repr__(self) -> str:
        return f"TextPlan({self.json_fields!r}, {self.fragment!r}, {self.base!r})"


ScanPlan: TypeAlias = "_Always | tuple[str, ...] | TextPlan | None"


def _tool_call_arg(event: Any) -> bool:
    return bool(event.kind == DeltaKind.TOOL_CALL_ARG or event.call_id is not None)


# Catalogue fields holding pieces of streamed tool-call arguments.
_FRAGMENTS: Final[dict[type, tuple[str, Callable[[Any], bool]]]] = {
    ModelDelta: ("text", _tool_call_arg),
}


def _needs(t: mi.Type, seen: set[type]) -> str:
    """``"no"``, ``"dynamic"`` (may hold arbitrary keys) or ``"always"`` for one field type."""
    if isinstance(t, mi.Metadata):
        return _needs(t.type, seen)
    if isinstance(t, mi.StructType):
        if t.cls in seen:
            return "no"
        seen.add(t.cls)
        for f in t.fields:
            if _is_secret_field(f.encode_name, f.type) or _needs(f.type, seen) != "no":
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


def _is_secret_field(name: str, t: mi.Type) -> bool:
    """Whether a struct field named ``name`` of type ``t`` holds a secret: as
    :func:`is_secret_key`, except that a number whose name is secret only for a ``token``
    word is a count (``TopicMemoryInjected.tokens``), not a token."""
    if not is_secret_key(name):
        return False
    while isinstance(t, mi.Metadata):
        t = t.type
    numeric = isinstance(t, mi.IntType | mi.FloatType)
    return not (numeric and name.isascii() and not _ascii_secret(name, tokens=False))


def _is_text(t: mi.Type) -> bool:
    if isinstance(t, mi.Metadata):
        return _is_text(t.type)
    if isinstance(t, mi.UnionType):
        return all(isinstance(u, mi.StrType | mi.NoneType) for u in t.types) and any(
            isinstance(u, mi.StrType) for u in t.types
        )
    return isinstance(t, mi.StrType)


def scan_plan(event_type: type) -> ScanPlan:
    """What the default redactor must look at in instances of ``event_type``.

    :returns: ``None`` when no instance can hold a secret-looking key (every field has a fixed
        type and an ordinary name: nothing to redact, ever); a tuple of the fields whose
        values may hold arbitrary dict keys (``Any``, dicts), to check per instance;
        :data:`ALWAYS` when the type has a secret-looking field name or nests dynamic values
        in a structure, so every instance goes through the redacting walk; or a
        :class:`TextPlan` (wrapping one of those) when the type has text fields carrying tool
        arguments: ``str`` fields named ``*json`` (JSON text), and the catalogue's
        ``ModelDelta.text`` of argument deltas.
    """
    try:
        info = mi.type_info(event_type)
    except Exception:
        return ALWAYS
    if not isinstance(info, mi.StructType):
        return ALWAYS
    dynamic = []
    json_fields = []
    always = False
    for f in info.fields:
        secret = _is_secret_field(f.encode_name, f.type)
        need = "always" if secret else _needs(f.type, {event_type})
        if need == "always":
            always = True
        elif need == "dynamic":
            dynamic.append(f.name)
        elif f.encode_name.lower().endswith("json") and _is_text(f.type):
            json_fields.append(f.name)
    base: _Always | tuple[str, ...] | None = ALWAYS if always else tuple(dynamic) or None
    fragment = _FRAGMENTS.get(event_type)
    if json_fields or fragment is not None:
        return TextPlan(tuple(json_fields), fragment, base)
    return base
