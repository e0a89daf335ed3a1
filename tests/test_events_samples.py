"""Sample events for every catalogue class, and hypothesis strategies that generate them.

Other test modules import ``sample_event``, ``sample_events`` and ``event_strategy`` from here
(pytest puts ``tests/`` on ``sys.path``). Both are derived from the classes' msgspec type
information, so a new field or a new class is covered without touching this file, and the
values respect every range the decoders enforce.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventbus.events import ALL_EVENT_TYPES, AnyKernelEvent, KernelEvent

_NS = uuid.UUID("6f1c7a52-9a6e-4c1a-8d0c-4f2b6c1f0e11")

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
"""Arbitrary finite JSON values, for ``Any`` fields."""


def _sample(t: mi.Type, name: str, owner: str) -> Any:
    """A deterministic, non-default value of type ``t`` for field ``name`` of class ``owner``."""
    if isinstance(t, mi.IntType):
        low = t.ge if t.ge is not None else 0
        return low + 7
    if isinstance(t, mi.FloatType):
        return 0.875
    if isinstance(t, mi.StrType):
        return f"{name}-value"
    if isinstance(t, mi.BoolType):
        return True
    if isinstance(t, mi.UUIDType):
        return uuid.uuid5(_NS, f"{owner}.{name}")
    if isinstance(t, mi.AnyType):
        return {"path": "/src/main.rs", "lines": [1, 2.5, None], "flag": False}
    if isinstance(t, mi.EnumType):
        return list(t.cls)[-1]
    if isinstance(t, mi.VarTupleType):
        return (_sample(t.item_type, name, owner), f"{name}-second")
    if isinstance(t, mi.UnionType):
        non_none = [u for u in t.types if not isinstance(u, mi.NoneType)]
        # A tagged union: pick the last variant, which carries data in every catalogue union.
        return _sample(non_none[-1], name, owner)
    if isinstance(t, mi.StructType):
        return t.cls(**{f.name: _sample(f.type, f.name, t.cls.__name__) for f in t.fields})
    raise AssertionError(f"no sample for {t!r} ({owner}.{name})")


def sample_event(cls: type[KernelEvent]) -> KernelEvent:
    """An instance of ``cls`` with every field, optional ones included, set to a non-default."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return cls(**{f.name: _sample(f.type, f.name, cls.__name__) for f in info.fields})


def sample_events() -> list[KernelEvent]:
    """One :func:`sample_event` per catalogue class, in catalogue order."""
    return [sample_event(cls) for cls in ALL_EVENT_TYPES]


def _strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    if isinstance(t, mi.IntType):
        return st.integers(min_value=t.ge, max_value=t.le)
    if isinstance(t, mi.FloatType):
        return st.floats(min_value=t.ge, max_value=t.le, allow_nan=False, allow_infinity=False)
    if isinstance(t, mi.StrType):
        return st.text(max_size=16)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.UUIDType):
        return st.uuids()
    if isinstance(t, mi.AnyType):
        return JSON_VALUES
    if isinstance(t, mi.EnumType):
        return st.sampled_from(list(t.cls))
    if isinstance(t, mi.VarTupleType):
        return st.lists(_strategy(t.item_type), max_size=3).map(tuple)
    if isinstance(t, mi.UnionType):
        return st.one_of([_strategy(u) for u in t.types])
    if isinstance(t, mi.StructType):
        return st.fixed_dictionaries(
            {f.name: _strategy(f.type) for f in t.fields if f.required},
            optional={f.name: _strategy(f.type) for f in t.fields if not f.required},
        ).map(lambda kwargs, cls=t.cls: cls(**kwargs))
    raise AssertionError(f"no strategy for {t!r}")


def event_strategy(cls: type[KernelEvent] | None = None) -> st.SearchStrategy[KernelEvent]:
    """Generated events of class ``cls``, or of any catalogue class when ``cls`` is None.

    Optional fields are sometimes left out (so they keep their defaults) and sometimes set.
    """
    if cls is None:
        return st.one_of([event_strategy(c) for c in ALL_EVENT_TYPES])
    return _strategy(mi.type_info(cls))


@pytest.mark.parametrize("cls", ALL_EVENT_TYPES, ids=lambda c: c.__name__)
def test_sample_sets_every_field_to_a_non_default(cls: type[KernelEvent]) -> None:
    event = sample_event(cls)
    for field in msgspec.structs.fields(cls):
        if field.default is not msgspec.NODEFAULT:
            assert getattr(event, field.name) != field.default, field.name


@given(event_strategy())
def test_generated_events_are_valid_for_the_decoder(event: KernelEvent) -> None:
    # A generated event survives msgspec's own validation, so codec tests can rely on it.
    data = msgspec.json.encode(event)
    assert msgspec.json.decode(data, type=AnyKernelEvent) == event
