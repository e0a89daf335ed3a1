"""Redaction of secret-looking keys at any depth, bounding, and unencodable events."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import REDACTED, AuditMapper, is_secret_key, redact_secrets
from audit._redact import bound_text, canonical_json
from eventbus.events import TokenUsageUpdate, ToolExecutionStarted


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API_KEY",
        "apiKey",
        "x-api-key",
        "apikey",
        "token",
        "access_token",
        "refreshToken",
        "csrf-token",
        "secret",
        "client_secret",
        "password",
        "db.password",
        "Passwd",
        "passphrase",
        "Authorization",
        "proxy-authorization",
        "cookie",
        "Set-Cookie",
        "credentials",
        "aws_credential",
        "private_key",
        "privateKey",
        "signing-key",
        "auth",
        "oauth",
        "pwd",
        "jwt",
        "bearer",
    ],
)
def test_secret_looking_keys_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "input_tokens",
        "output_tokens",
        "token_count",
        "max_tokens",
        "key",
        "query_key",
        "monkey",
        "author",
        "passed",
        "session_id",
        "path",
        "keyboard",
    ],
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)


def test_redaction_reaches_any_depth_and_any_value_type() -> None:
    value = {
        "tool_args": {
            "url": "https://x",
            "headers": [{"Authorization": "Bearer sk-live"}, {"Accept": "*/*"}],
            "auth": {"user": "u", "password": "p"},
        },
        "context": {"nested": {"deeper": {"api_key": 12345}}},
        "credentials": {"user": "u", "pass": "p"},
    }
    assert redact_secrets(value) == {
        "tool_args": {
            "url": "https://x",
            "headers": [{"Authorization": REDACTED}, {"Accept": "*/*"}],
            "auth": REDACTED,
        },
        "context": {"nested": {"deeper": {"api_key": REDACTED}}},
        "credentials": REDACTED,
    }
    assert value["context"]["nested"]["deeper"]["api_key"] == 12345  # not mutated


def test_the_resource_is_redacted_canonical_json() -> None:
    event = ToolExecutionStarted(
        session_id="s1",
        tool_name="http",
        tool_call_id="c1",
        tool_args={"url": "https://x", "headers": {"X-Api-Key": "sk-123"}},
        context={"cookie": "sid=abc", "kind": "fetch"},
    )
    resource = AuditMapper().resource(event)
    assert "sk-123" not in resource
    assert "sid=abc" not in resource
    assert msgspec.json.decode(resource) == {
        "context": {"cookie": REDACTED, "kind": "fetch"},
        "event_type": "tool_execution_started",
        "session_id": "s1",
        "tool_args": {"headers": {"X-Api-Key": REDACTED}, "url": "https://x"},
        "tool_call_id": "c1",
        "tool_name": "http",
    }
    assert list(msgspec.json.decode(resource)) == sorted(msgspec.json.decode(resource))


def test_token_counts_are_not_mistaken_for_tokens() -> None:
    event = TokenUsageUpdate(session_id="s", input_tokens=12, output_tokens=34)
    assert '"input_tokens":12' in AuditMapper().resource(event)


def test_the_redactor_is_replaceable() -> None:
    def drop_urls(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("<url>" if k == "url" else drop_urls(v)) for k, v in value.items()}
        return value

    event = ToolExecutionStarted(
        session_id="s", tool_name="t", tool_call_id="c", tool_args={"url": "u", "token": "x"}
    )
    resource = msgspec.json.decode(AuditMapper(redact=drop_urls).resource(event))
    assert resource["tool_args"] == {"token": "x", "url": "<url>"}
    unredacted = msgspec.json.decode(AuditMapper(redact=None).resource(event))
    assert unredacted["tool_args"] == {"token": "x", "url": "u"}


def test_long_resources_are_cut_with_a_marker_saying_how_much() -> None:
    event = ToolExecutionStarted(
        session_id="s", tool_name="t", tool_call_id="c", tool_args={"blob": "x" * 10_000}
    )
    full = len(canonical_json(event))
    resource = AuditMapper(max_resource_bytes=200).resource(event)
    assert len(resource.encode()) <= 200
    head, marker = resource.split("…[truncated ")
    assert marker.endswith(" bytes]")
    assert int(marker.removesuffix(" bytes]")) == full - len(head.encode())


def test_the_default_bound_is_2048_bytes() -> None:
    event = ToolExecutionStarted(
        session_id="s", tool_name="t", tool_call_id="c", tool_args="y" * 5000
    )
    resource = AuditMapper().resource(event)
    assert len(resource.encode()) <= 2048
    assert len(resource.encode()) > 2000
    assert "…[truncated " in resource


@given(text=st.text(min_size=0, max_size=300), limit=st.integers(64, 400))
def test_bounding_never_exceeds_the_limit_nor_splits_a_character(text: str, limit: int) -> None:
    raw = text.encode()
    out = bound_text(raw, limit)
    assert len(out.encode()) <= limit
    if len(raw) <= limit:
        assert out == text
    else:
        head = out.split("…[truncated ")[0]
        assert text.startswith(head)


def test_an_unencodable_event_is_recorded_not_raised() -> None:
    class Holder(msgspec.Struct):
        thing: object

    resource = AuditMapper().resource(Holder(object()))
    assert resource.startswith("<unencodable: ")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-100, 100) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "a",
                    "api_key",
                    "apiKey",
                    "Token",
                    "accessToken",
                    "token\x01",
                    "token\n",
                    'token"',
                    "tokenS",
                    "x-auth",
                    "input_tokens",
                    "token_count",
                    "n",
                    "pwd",
                    "key",
                    "api key id",
                    "client.key",
                ]
            )
            | st.text(max_size=8),
            inner,
            max_size=3,
        )
    ),
    max_leaves=10,
)


@settings(max_examples=400)
@given(args=JSON)
def test_the_fast_path_never_skips_a_redaction(args: Any) -> None:
    # The mapper skips the redaction walk when no key of tool_args is secret-looking (keys
    # seen safe before are remembered across examples); the result must equal always walking.
    event = ToolExecutionStarted(session_id="s", tool_name="t", tool_call_id="c", tool_args=args)
    slow = canonical_json(redact_secrets(msgspec.to_builtins(event))).decode()
    assert AuditMapper(max_resource_bytes=1 << 20).resource(event) == slow


class Login(msgspec.Struct, tag="login"):
    user: str
    password: str


class Inner(msgspec.Struct):
    extra: dict[str, Any]


class Wrapped(msgspec.Struct, tag="wrapped"):
    inner: Inner
    note: str = ""


class Payload(msgspec.Struct, tag="payload"):
    data: Any


def test_secret_field_names_of_custom_events_are_redacted() -> None:
    resource = msgspec.json.decode(AuditMapper().resource(Login(user="u", password="hunter2")))
    assert resource == {"password": REDACTED, "type": "login", "user": "u"}


def test_dynamic_values_nested_in_structs_are_redacted() -> None:
    event = Wrapped(inner=Inner(extra={"session_token": "abc", "n": 1}))
    resource = msgspec.json.decode(AuditMapper().resource(event))
    assert resource["inner"] == {"extra": {"n": 1, "session_token": REDACTED}}


def test_structs_inside_dynamic_fields_are_redacted() -> None:
    event = Payload(data=[Login(user="u", password="pw")])
    assert "pw" not in AuditMapper().resource(event).replace("password", "")


def test_scan_plans_look_only_where_a_secret_can_be() -> None:
    from audit._redact import ALWAYS, scan_plan

    assert scan_plan(TokenUsageUpdate) is None
    assert scan_plan(ToolExecutionStarted) == ("tool_args", "context")
    assert scan_plan(Login) is ALWAYS
    assert scan_plan(Wrapped) is ALWAYS
    assert scan_plan(Payload) == ("data",)


def test_keys_remembered_as_safe_never_hide_a_secret_below_or_beside_them() -> None:
    mapper = AuditMapper()

    def stored(args: Any) -> str:
        event = ToolExecutionStarted(
            session_id="s", tool_name="t", tool_call_id="c", tool_args=args
        )
        return mapper.resource(event)

    assert "ls" in stored({"command": "ls", "options": {"depth": 1}})  # keys now known safe
    nested = stored({"command": "ls", "options": {"password": "hunter2"}})
    beside = stored({"command": "ls", "options": {"depth": 1}, "api_key": "sk-1"})
    in_list = stored({"command": "ls", "options": [{"token": "t-1"}]})
    for text, secret in ((nested, "hunter2"), (beside, "sk-1"), (in_list, "t-1")):
        assert secret not in text
        assert REDACTED in text


def test_the_memory_of_safe_keys_is_bounded() -> None:
    from audit import _redact

    mapper = AuditMapper()
    for i in range(_redact._SAFE_KEYS_MAX + 10):
        event = ToolExecutionStarted(
            session_id="s", tool_name="t", tool_call_id="c", tool_args={f"k{i}": i}
        )
        mapper.resource(event)
    assert len(_redact._SAFE_KEYS) <= _redact._SAFE_KEYS_MAX


def test_canonical_json_is_the_wire_encoding() -> None:
    from test_events_samples import sample_events

    from eventbus.codec import encode_json

    for event in sample_events():
        assert canonical_json(event) == encode_json(event)
