"""Redaction of secret-looking keys at any depth, bounding, and unencodable events."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
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
            st.sampled_from(["a", "api_key", "Token", "x-auth", "input_tokens", "n", "pwd", "key"])
            | st.text(max_size=8),
            inner,
            max_size=3,
        )
    ),
    max_leaves=10,
)


@given(args=JSON)
def test_the_fast_path_never_skips_a_redaction(args: Any) -> None:
    # The mapper skips the redaction walk when a regex finds nothing secret-looking in the
    # encoded bytes; the result must equal always walking.
    event = ToolExecutionStarted(session_id="s", tool_name="t", tool_call_id="c", tool_args=args)
    slow = canonical_json(redact_secrets(msgspec.to_builtins(event))).decode()
    assert AuditMapper(max_resource_bytes=1 << 20).resource(event) == slow
