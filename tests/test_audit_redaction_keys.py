"""Which keys are secret: spellings, counters, look-alikes, the catalogue's own field names, and
the bounded memory of answers."""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit import REDACTED, AuditMapper, is_secret_key
from audit import _redact as redact_module
from audit._redact import maybe_secret_text, scan_plan
from eventbus.events import (
    OS_EVENT_TYPES,
    SUPERVISOR_EVENT_TYPES,
    TURN_LOOP_EVENT_TYPES,
    PageOut,
    ToolExecutionStarted,
)

CATALOGUE = (*SUPERVISOR_EVENT_TYPES, *TURN_LOOP_EVENT_TYPES, *OS_EVENT_TYPES)


def stored(args: Any) -> str:
    event = ToolExecutionStarted(session_id="s", tool_name="t", tool_call_id="c", tool_args=args)
    return AuditMapper(max_resource_bytes=1 << 16).resource(event)


@pytest.mark.parametrize(
    "key",
    [
        # plurals, digits and value suffixes
        "api_keys",
        "access_keys",
        "private_keys",
        "apiKeys",
        "auth_tokens",
        "tokens",
        "token_value",
        "token_1",
        "token2",
        "api_key_2",
        "oauth2",
        "auth_value",
        "passwords",
        "secrets",
        # short and header spellings
        "pass",
        "db_pass",
        "PASS",
        "pw",
        "user_pw",
        "Passwort",
        "Ocp-Apim-Subscription-Key",
        "x-functions-key",
        "ssh_key",
        "sshKey",
        "session_key",
        "sessionkey",
        "license_key",
        "id_token",
        "token_type",
        "X-Auth-Token",
        "GITHUB_TOKEN",
    ],
)
def test_common_spellings_of_secret_keys_are_recognised(key: str) -> None:
    assert is_secret_key(key)
    assert "<v>" not in stored({key: "<v>"})


@pytest.mark.parametrize(
    "key",
    [
        # counters of tokens, as the big model APIs and the catalogue name them
        "input_tokens",
        "output_tokens",
        "max_tokens",
        "max_output_tokens",
        "max_completion_tokens",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "prompt_tokens_details",
        "promptTokenCount",
        "candidatesTokenCount",
        "maxOutputTokens",
        "token_count",
        "tokens_count",
        "summary_token_count",
        "token_usage",
        "tokens_used",
        "token_budget",
        "token_limit",
        "num_tokens",
        "tokens_before",
        "tokens_after",
        "carried_tokens",
        "block_token_est",
        # look like a trigger, are not one
        "tokenizer",
        "passed",
        "bypass",
        "passenger",
        "key",
        "keys",
        "query_key",
        "primary_key",
        "public_key",
        "sort_key",
        "monkey",
        "author",
        "auth_type",
        "session_id",
        "keyboard",
    ],
)
def test_counters_and_look_alike_words_are_kept(key: str) -> None:
    assert not is_secret_key(key)
    assert "<v>" in stored({key: "<v>"})


@pytest.mark.parametrize(
    "key",
    [
        "pass\u200bword",  # zero-width space (a format character)
        "pass\u00adword",  # soft hyphen
        "\uff30assword",  # fullwidth P
        "\uff41\uff50\uff49\uff3f\uff4b\uff45\uff59",  # fullwidth api_key
        "\U0001d429\U0001d41a\U0001d42c\U0001d42c",  # mathematical bold "pass"
        "api_k\u0435y",  # Cyrillic e
        "t\u043ek\u0435n",  # Cyrillic o and e
        "\u0440assword",  # Cyrillic er
        "p\u00e1ssword",  # an accent
        "pa\u0301ssword",  # a combining accent
        "secr\u0575t",  # an Armenian letter no table maps: fail closed
        "\u0432\u0445\u043e\u0434_token",  # Cyrillic word, then token
        "api\u0436key",  # a non-ASCII letter between trigger words
        "api_\u043a\u0435\u0443",  # every letter of "key" a Cyrillic look-alike
        "x\u0436" * 20,  # a word mixing scripts, too long to look at: fail closed
    ],
)
def test_look_alike_spellings_are_recognised(key: str) -> None:
    assert is_secret_key(key)
    assert "<v>" not in stored({key: "<v>"})


@pytest.mark.parametrize(
    "key",
    [
        "\u043f\u0430\u0440\u043e\u043b\u044c\u043d\u044b\u0439_\u0441\u0447\u0451\u0442",
        "\u540d\u524d",  # CJK
        "caf\u00e9",
        "na\u00efve_count",
        "\u0438\u043c\u044f",  # a 3-letter Cyrillic word is not a wildcard "pwd"
        "\u0438\u043c\u044f_\u043f\u043e\u043b\u044c\u0437\u043e\u0432\u0430\u0442\u0435\u043b\u044f",
        "\u043a\u043b\u044e\u0447",  # Russian "key": a word, not a look-alike
        "\u043a\u0435\u0443",  # look-alikes reading "key": a key alone is no secret
        "\u03ba\u03c9\u03b4\u03b9\u03ba\u03cc\u03c2",  # Greek
        "\u30e6\u30fc\u30b6\u30fc\u540d",  # Japanese
        "Gr\u00f6\u00dfe",
        "n\u00famero_de_tel\u00e9fono",
        "\u4e00" * 200,  # long (under MAX_KEY_CHARS), one script: not secret
        "monkey\u0436",  # mixed, but no letter of a trigger replaced
    ],
)
def test_non_ascii_keys_without_a_trigger_are_kept(key: str) -> None:
    assert not is_secret_key(key)


def test_very_long_keys_are_secret_without_being_read() -> None:
    long_key = "harmless_" * 100
    assert len(long_key) > redact_module.MAX_KEY_CHARS
    assert is_secret_key(long_key)
    assert not is_secret_key(long_key[: redact_module.MAX_KEY_CHARS])
    assert "<v>" not in stored({long_key: "<v>"})


TRIGGERS = st.sampled_from(
    ["password", "api_key", "accessToken", "client_secret", "Authorization", "ssh_key"]
)
FORMAT_CHARS = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"])


@given(key=TRIGGERS, where=st.integers(1, 20), mark=FORMAT_CHARS)
def test_format_characters_inside_a_secret_key_do_not_hide_it(
    key: str, where: int, mark: str
) -> None:
    where %= len(key)
    assert is_secret_key(key[:where] + mark + key[where:])


@given(key=TRIGGERS)
def test_fullwidth_forms_of_a_secret_key_are_secret(key: str) -> None:
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in key)
    assert not wide.isascii()
    assert is_secret_key(wide)


CYRILLIC_FOR = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441"}


@given(key=TRIGGERS, which=st.integers(0, 50))
def test_one_cyrillic_look_alike_letter_does_not_hide_a_secret_key(key: str, which: int) -> None:
    places = [i for i, c in enumerate(key) if c in CYRILLIC_FOR]
    if not places:
        return
    i = places[which % len(places)]
    assert is_secret_key(key[:i] + CYRILLIC_FOR[key[i]] + key[i + 1 :])


def test_free_text_look_alikes_are_found_too() -> None:
    assert maybe_secret_text("pass\u200bword=hunter2".encode())
    assert maybe_secret_text("t\u043eken: abc".encode())
    assert maybe_secret_text("\uff30ASSWORD=x".encode())
    assert not maybe_secret_text("caf\u00e9 au lait".encode())
    assert not maybe_secret_text(b"ls -la /tmp")


# -- the catalogue's own field names -------------------------------------------------------------


def _field_names() -> dict[str, mi.Type]:
    names: dict[str, mi.Type] = {}
    seen: set[type] = set()

    def visit(t: mi.Type) -> None:
        if isinstance(t, mi.Metadata):
            visit(t.type)
        elif isinstance(t, mi.StructType):
            if t.cls in seen:
                return
            seen.add(t.cls)
            for f in t.fields:
                names[f.encode_name] = f.type
                visit(f.type)
        elif isinstance(t, mi.UnionType):
            for u in t.types:
                visit(u)
        elif isinstance(t, mi.ListType | mi.VarTupleType):
            visit(t.item_type)

    for cls in CATALOGUE:
        visit(mi.type_info(cls))
    return names


def test_the_catalogue_field_names_that_read_as_secret_are_pinned() -> None:
    names = _field_names()
    assert len(names) > 100
    # ``tokens`` (a count in TopicMemoryInjected, Compressed, PageOut, ...) reads as a secret
    # key in tool arguments; as a typed number of a struct it is a count (next test).
    assert {n for n in names if is_secret_key(n)} == {"tokens"}


def test_no_catalogue_class_redacts_its_own_fields() -> None:
    for cls in CATALOGUE:
        plan = scan_plan(cls)
        assert plan is not redact_module.ALWAYS, cls.__name__
    event = PageOut(turn=1, handle="h", tokens=1234, reason="r")
    assert '"tokens":1234' in AuditMapper().resource(event)


def test_a_typed_count_named_tokens_in_a_custom_event_is_kept_but_a_token_string_is_not() -> None:
    class Usage(msgspec.Struct, tag="usage"):
        tokens: int

    class Login(msgspec.Struct, tag="login"):
        tokens: str

    assert scan_plan(Usage) is None
    assert scan_plan(Login) is redact_module.ALWAYS
    assert '"tokens":7' in AuditMapper().resource(Usage(tokens=7))
    assert msgspec.json.decode(AuditMapper().resource(Login(tokens="t-1")))["tokens"] == REDACTED


# -- bounded memory --------------------------------------------------------------------------


def test_long_keys_are_never_remembered() -> None:
    mapper = AuditMapper()
    for i in range(50):
        key = f"{i:04d}" + "x" * 1000  # over MAX_KEY_CHARS
        mid = f"{i:04d}" + "y" * 100  # under MAX_KEY_CHARS, over the cached length
        for k in (key, mid):
            event = ToolExecutionStarted(
                session_id="s", tool_name="t", tool_call_id="c", tool_args={k: 1}
            )
            mapper.resource(event)
        assert is_secret_key(key)
        assert not is_secret_key(mid)
    remembered = [*redact_module._CACHE, *redact_module._SAFE_KEYS]
    assert remembered  # short keys are
    assert max(len(k) for k in remembered) <= redact_module._CACHED_KEY_CHARS


def test_the_answer_cache_is_bounded_by_count() -> None:
    for i in range(redact_module._CACHE_MAX + 100):
        is_secret_key(f"field_{i}")
    assert 0 < len(redact_module._CACHE) <= redact_module._CACHE_MAX
    assert is_secret_key("field_password")  # answers stay right past a clear
    assert not is_secret_key("field_1")
