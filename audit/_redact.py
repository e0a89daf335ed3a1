"""Redaction of secret-looking values and bounding of what the audit trail stores."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from eventbus.codec import encode_json

__all__ = [
    "REDACTED",
    "Redactor",
    "bound_text",
    "canonical_json",
    "is_secret_key",
    "maybe_secret",
    "redact_secrets",
]

REDACTED: Final = "[REDACTED]"
"""What a redacted value is replaced with."""

Redactor: TypeAlias = Callable[[Any], Any]
"""A function from an event's builtin form (``msgspec.to_builtins``: dicts, lists, str,
int, float, bool, None) to the builtin form to store. It must not mutate its argument."""

# Canonical JSON (struct fields and dict keys sorted): equal events encode to equal bytes, and
# a resource reads exactly like the event on the wire, minus what redaction replaced.
canonical_json: Final = encode_json

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
# A cheap superset of every key is_secret_key accepts, searched in the encoded bytes first: an
# event without any of these substrings needs no redaction pass at all. Every rule below needs
# one of them verbatim in the key (JSON escapes only quotes, backslashes and control chars).
maybe_secret: Final = re.compile(
    rb"(?i:passw|passphrase|secret|authori[sz]ation|cookie|credential|auth|pwd|jwt|bearer|key)"
    rb"|(?i:token)(?!s)"
).search


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
