"""Bounded redaction work, and event content the resource must survive: non-str keys, deep
nesting, NaN, lone surrogates."""

from __future__ import annotations

import enum
import re
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import REDACTED, AuditMapper, AuditTrail, Other, attach_audit_trail, redact_secrets
from audit import _redact as redact_module
from audit._redact import MAX_DEPTH, TOO_DEEP, canonical_json
from eventbus import EventBus
from eventbus.events import EvolutionMaxReached, ToolExecutionStarted

MARKER = re.compile(r"…\[truncated (at least )?(\d+) bytes\]$")


def started(args: Any, context: Any = None) -> ToolExecutionStarted:
    return ToolExecutionStarted(
        session_id="s", tool_name="t", tool_call_id="c", tool_args=args, context=context
    )


def full_redacted(event: object) -> bytes:
    """The whole resource before cutting, by the slow, obvious route."""
    return canonical_json(redact_secrets(msgspec.to_builtins(event)))


class CountingKeys:
    """Counts the keys :func:`is_secret_key` is asked about (the walk's unit of work)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = redact_module.is_secret_key

        def counting(key: str) -> bool:
            self.calls += 1
            return real(key)

        monkeypatch.setattr(redact_module, "is_secret_key", counting)
        redact_module._CACHE.clear()
        redact_module._SAFE_KEYS.clear()


# -- bounded work ------------------------------------------------------------------------------


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("secret", [False, True])
def test_a_huge_dict_costs_a_bounded_number_of_key_checks(
    monkeypatch: pytest.MonkeyPatch, secret: bool, nested: bool
) -> None:
    args: dict[str, Any] = {f"k{i:06d}": i for i in reversed(range(100_000))}
    if secret:
        args["token"] = "t-secret"
    counting = CountingKeys(monkeypatch)
    resource = AuditMapper().resource(started({"inner": args} if nested else args))
    assert counting.calls <= 2 * 2048
    assert len(resource.encode()) <= 2048
    # sorted, as the full encoding starts
    assert resource.startswith('{"event_type":"tool_execution_started","session_id":"s",')
    tool_args = '"tool_args":{"inner":{' if nested else '"tool_args":{'
    assert tool_args + '"k000000":0,"k000001":1,' in resource
    assert "t-secret" not in resource


def test_a_huge_list_beside_a_secret_is_not_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingKeys(monkeypatch)
    event = started({"a": [{f"k{i}": i} for i in range(200_000)], "token": "t-secret"})
    resource = AuditMapper().resource(event)
    assert counting.calls <= 2 * 2048
    assert "t-secret" not in resource
    assert '"tool_args":{"a":[{"k0":0},{"k1":1},' in resource
    assert MARKER.search(resource)


def test_a_large_set_beside_a_secret_goes_through_the_bounded_walk() -> None:
    resource = AuditMapper().resource(started({"token": "t-1", "s": set(range(100_000))}))
    assert "t-1" not in resource
    match = MARKER.search(resource)
    assert match is not None
    assert match.group(1) == "at least "


@pytest.mark.parametrize(
    "args",
    [
        {**{f"k{i:05d}": i for i in range(50_000)}, "password": "hunter2"},
        {"password": "hunter2", "z": [0] * 100_000},
    ],
    ids=["dict", "list"],
)
def test_a_cut_walk_says_at_least_how_much_was_cut(args: dict[str, Any]) -> None:
    event = started(args)
    resource = AuditMapper().resource(event)
    match = MARKER.search(resource)
    assert match is not None
    assert match.group(1) == "at least "
    head = resource[: match.start()].encode()
    full = full_redacted(event)
    assert full.startswith(head)
    cut = len(full) - len(head)
    assert int(match.group(2)) <= cut
    assert int(match.group(2)) >= cut // 3  # it counts what it did not read, roughly


def test_few_nodes_with_long_strings_keep_an_exact_marker() -> None:
    event = started({"blob": "x" * 50_000, "password": "hunter2"})
    resource = AuditMapper().resource(event)
    match = MARKER.search(resource)
    assert match is not None
    assert match.group(1) is None
    full = full_redacted(event)
    assert int(match.group(2)) == len(full) - len(resource[: match.start()].encode())


def test_a_huge_key_is_secret_without_being_read(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoRegex:
        def findall(self, key: str) -> list[str]:
            raise AssertionError("the word regex read a huge key")

    monkeypatch.setattr(redact_module, "_WORDS", NoRegex())
    assert redact_module.is_secret_key("aB" * 100_000)
    assert redact_module.is_secret_key("\u0436" * 100_000)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.floats(),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(
            st.sampled_from(["a", "b", "token", "api_key", "n", "é", "input_tokens"])
            | st.text(max_size=6),
            inner,
            max_size=6,
        )
    ),
    max_leaves=40,
)


@settings(max_examples=300)
@given(args=JSON, limit=st.integers(64, 600))
def test_any_resource_is_a_prefix_of_the_full_one_with_a_true_marker(
    args: Any, limit: int
) -> None:
    event = started(args)
    resource = AuditMapper(max_resource_bytes=limit).resource(event)
    full = full_redacted(event)
    assert len(resource.encode()) <= limit
    match = MARKER.search(resource)
    if match is None:
        assert resource.encode() == full
        return
    head = resource[: match.start()].encode()
    assert full.startswith(head)
    cut = len(full) - len(head)
    if match.group(1):
        assert 0 < int(match.group(2)) <= cut
    else:
        assert int(match.group(2)) == cut


SECRET = "S3CR3T-VALUE-91"


@st.composite
def json_with_a_secret(draw: st.DrawFn) -> Any:
    """A JSON value with a secret-looking key holding SECRET somewhere inside."""
    value: Any = {draw(st.sampled_from(["api_key", "password", "Authorization"])): SECRET}
    for _ in range(draw(st.integers(0, 6))):
        siblings = draw(st.dictionaries(st.sampled_from(["a", "b", "c"]), JSON, max_size=2))
        if draw(st.booleans()):
            value = [*draw(st.lists(JSON, max_size=2)), value]
        else:
            value = {**siblings, draw(st.sampled_from(["x", "y", "z"])): value}
    return value


@settings(max_examples=200)
@given(args=json_with_a_secret(), limit=st.sampled_from([2048, 1 << 20]))
def test_a_secret_at_any_depth_never_reaches_the_resource(args: Any, limit: int) -> None:
    mapper = AuditMapper(max_resource_bytes=limit)
    assert SECRET not in mapper.resource(started(args))
    assert SECRET not in mapper.resource(started({"wrapped": args}, context=args))
    assert SECRET not in mapper.args_json(msgspec.json.encode(args).decode())


# -- non-str keys ------------------------------------------------------------------------------


class Color(enum.Enum):
    PASSWORD = "password"
    RED = "red"


def test_non_str_keys_are_stored_as_their_text() -> None:
    key = uuid.UUID(int=5)
    args = {1: "one", 2.5: "two and a half", Color.RED: "r", key: "u", (1, 2): "pair"}
    stored = msgspec.json.decode(AuditMapper().resource(started(args)))
    assert stored["tool_args"] == {
        "1": "one",
        "2.5": "two and a half",
        "red": "r",
        str(key): "u",
        "(1, 2)": "pair",
    }
    assert stored["session_id"] == "s"


def test_a_non_str_key_that_reads_as_secret_is_redacted() -> None:
    stored = AuditMapper().resource(started({Color.PASSWORD: "hunter2", 3: "x"}))
    assert "hunter2" not in stored
    assert msgspec.json.decode(stored)["tool_args"] == {"3": "x", "password": REDACTED}


def test_of_two_keys_with_one_text_the_later_is_kept() -> None:
    stored = msgspec.json.decode(AuditMapper().resource(started({"1": "str", 1: "int"})))
    assert stored["tool_args"] == {"1": "int"}


def test_the_unredacted_resource_survives_non_str_keys_too() -> None:
    stored = msgspec.json.decode(AuditMapper(redact=None).resource(started({1: "x"})))
    assert stored["tool_args"] == {"1": "x"}


# -- depth -------------------------------------------------------------------------------------


def nested_dicts(levels: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    here = top
    for _ in range(levels - 1):
        here["a"] = {}
        here = here["a"]
    return top


def test_nesting_deeper_than_the_bound_becomes_a_marker() -> None:
    # tool_args is level 1 below the event; MAX_DEPTH levels are kept, the next is a marker.
    kept = msgspec.json.decode(
        AuditMapper(max_resource_bytes=1 << 16).resource(started(nested_dicts(MAX_DEPTH)))
    )["tool_args"]
    cut = msgspec.json.decode(
        AuditMapper(max_resource_bytes=1 << 16).resource(started(nested_dicts(MAX_DEPTH + 1)))
    )["tool_args"]
    for _ in range(MAX_DEPTH - 1):
        kept = kept["a"]
        cut = cut["a"]
    assert kept == {}
    assert cut == {"a": TOO_DEEP}


def nested_lists(levels: int) -> list[Any]:
    top: list[Any] = []
    here = top
    for _ in range(levels - 1):
        here.append([])
        here = here[0]
    return top


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 500, 990, 5000, 50_000])
def test_deep_nesting_never_raises_and_secrets_beside_it_are_redacted(levels: int) -> None:
    resource = AuditMapper().resource(started({"token": "t-1", "l": nested_lists(levels)}))
    assert TOO_DEEP in resource
    assert "t-1" not in resource
    assert TOO_DEEP in str(redact_secrets({"l": nested_lists(levels)}))


@pytest.mark.parametrize("levels", [5000, 50_000])
def test_unredacted_resources_cut_only_what_cannot_be_encoded(levels: int) -> None:
    # Without a redactor the event is encoded as it is; only nesting msgspec cannot encode
    # goes through the walk (and gets the marker).
    mapper = AuditMapper(redact=None)
    assert TOO_DEEP not in mapper.resource(started({"l": nested_lists(MAX_DEPTH + 5)}))
    resource = mapper.resource(started({"token": "t-1", "l": nested_lists(levels)}))
    assert TOO_DEEP in resource
    assert '"token":"t-1"' in resource


@pytest.mark.anyio
async def test_a_deep_event_keeps_its_actor_and_action_in_the_trail() -> None:
    deep = nested_dicts(990)
    trail = AuditTrail()
    async with EventBus() as bus, attach_audit_trail(bus, trail) as auditor:
        bus.publish(
            ToolExecutionStarted(
                session_id="victim", tool_name="shell", tool_call_id="c", tool_args=deep
            )
        )
        await auditor.flush()
    [entry] = trail.entries()
    assert entry.actor == "session:victim"
    assert entry.action == Other(detail="tool_started:shell")
    assert TOO_DEEP in entry.resource
    assert auditor.statistics().failed == 0


# -- floats and text -------------------------------------------------------------------------


def test_nan_and_infinity_are_null_in_the_resource_and_text_in_the_action() -> None:
    mapper = AuditMapper()
    seed = uuid.UUID(int=1)
    for value, text in ((float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "-inf")):
        event = EvolutionMaxReached(seed_id=seed, final_score=value, iterations=3)
        _, action, _ = mapper.map(event, "evolution_max_reached")
        assert action == Other(detail=f"evolution_max:{seed}:score={text}:iters=3")
        assert msgspec.json.decode(mapper.resource(event))["final_score"] is None
        args = msgspec.json.decode(mapper.resource(started({"x": value, "token": "t"})))
        assert args["tool_args"] == {"token": REDACTED, "x": None}


def test_lone_surrogates_are_replaced_not_fatal() -> None:
    name = "report-\udcff.txt"
    for args in ({"path": name}, {"path": name, "token": "t"}):
        stored = msgspec.json.decode(AuditMapper().resource(started(args)))
        assert stored["tool_args"]["path"] == "report-\ufffd.txt"
        assert stored["session_id"] == "s"


class Tagged(msgspec.Struct, tag="tagged", omit_defaults=True):
    password: str
    data: Any
    a_tags: tuple[str, ...] = ("a", "b")


def test_the_walk_omits_defaults_as_the_wire_does() -> None:
    data = {f"k{i}": i for i in range(5000)}  # enough for the bounded walk
    resource = AuditMapper().resource(Tagged(password="hunter2", data=data, a_tags=("a", "b")))
    assert resource.startswith('{"data":{"k0":0,"k1":1,')
    assert "hunter2" not in resource
    other = AuditMapper().resource(Tagged(password="hunter2", data=data, a_tags=("c",)))
    assert other.startswith('{"a_tags":["c"],"data":{"k0":0,')
