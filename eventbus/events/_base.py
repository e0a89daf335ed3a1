"""The base class of every kernel event and the constrained scalar types the families share."""

from __future__ import annotations

import sys
from typing import Annotated, Any, ClassVar, TypeAlias

import msgspec

from ._taxonomy import Category, Primitive

__all__ = ["U32", "U64", "FiniteFloat", "JsonValue", "KernelEvent"]

U32: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
"""An unsigned 32-bit integer (Rust ``u32``). Decoders reject values outside the range."""

U64: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""A non-negative count or duration (Rust ``u64``/``usize``), at most ``2**63 - 1``.

msgspec's bounds must fit an int64, so values above ``2**63 - 1`` (never a real count) are
rejected by the decoders.
"""

FiniteFloat: TypeAlias = Annotated[
    float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)
]
"""A finite float (Rust ``f64`` as serde writes JSON). Decoders reject NaN and infinities."""

JsonValue: TypeAlias = Any
"""Any JSON value (Rust ``serde_json::Value``): ``None``, bool, int, float, str, list, dict."""


class KernelEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="event_type"):
    """The base class of every event on the bus, built in or user-defined.

    A kernel event is an immutable, keyword-only :class:`msgspec.Struct`, internally tagged on
    the wire: its tag is written in the ``event_type`` field
    (``{"event_type": "agent_started", "id": "..."}``), so any union of event classes decodes
    in one pass.

    Subclassing
    -----------
    A concrete event class must give an explicit snake_case ``tag=`` (the default tag is the
    class name, so a rename would silently change the wire format) and must declare its
    :class:`Category` as class data. Repeat ``frozen=True, kw_only=True``: msgspec applies
    ``kw_only`` only to the fields a class itself defines, and type checkers refuse a class
    that does not say ``frozen`` under a frozen one::

        class CacheFlushed(KernelEvent, tag="cache_flushed", frozen=True, kw_only=True):
            category: ClassVar[Category] = Category.MM
            entries: int

    The category is *not* a field on the wire. Defining a subclass without a ``category``
    raises :exc:`TypeError`. Tags must be unique within any union you decode with; the
    built-in catalogue's tags are listed in ``schemas/README.md``.

    Guarantees and non-guarantees
    -----------------------------
    Instances are frozen (fields cannot be reassigned) but, like any msgspec Struct, do not
    validate on construction: field types and ranges are checked when *decoding*
    (:mod:`eventbus.codec`), not when you call the constructor. Events whose fields hold
    lists or dicts are not hashable.
    """

    category: ClassVar[Category]
    """The event's decision plane; class data, never encoded."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "category", None), Category):
            raise TypeError(
                f"{cls.__name__} must declare its category as class data, "
                "e.g. `category = Category.SCHED`"
            )

    @property
    def primitive(self) -> Primitive:
        """The kernel primitive of this event: ``type(self).category.primitive``."""
        return type(self).category.primitive
