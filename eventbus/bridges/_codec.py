"""The wire codec a bridge uses: ``eventbus.codec`` for ``Envelope[T]``, or the user's own."""

from __future__ import annotations

from typing import Any, Literal, Protocol, TypeVar

from .. import codec as _wire
from .._bus import _check_positive_int
from .._envelope import Envelope

__all__ = ["Codec", "CodecName", "json_codec", "msgpack_codec", "resolve_codec"]

T = TypeVar("T")

CodecName = Literal["msgpack", "json"]


class Codec(Protocol[T]):
    """Encodes envelopes to bytes and decodes them back, for one event type (or union).

    ``decode`` must raise :exc:`msgspec.DecodeError` (or its subclass
    :exc:`msgspec.ValidationError`) for input it cannot turn into an ``Envelope[T]``; the
    bridge counts and skips such messages. ``encode`` may raise :exc:`msgspec.EncodeError`
    or :exc:`TypeError`; the bridge counts such envelopes as failed exports.
    """

    def encode(self, envelope: Envelope[T], /) -> bytes:
        """Return the wire form of ``envelope``."""
        ...

    def decode(self, data: bytes, /) -> Envelope[T]:
        """Return the envelope encoded in ``data``; raise ``msgspec.DecodeError`` if none."""
        ...


class _EnvelopeCodec:
    """:mod:`eventbus.codec` bound to ``Envelope[event_type]`` and a size limit."""

    __slots__ = ("_decode", "_max_size", "_type", "encode", "name")

    def __init__(self, name: CodecName, event_type: Any, max_size: int) -> None:
        self.name = name
        self._type = Envelope[event_type]
        self._max_size = _check_positive_int("max_size", max_size)
        if name == "msgpack":
            self.encode = _wire.encode_msgpack
            self._decode = _wire.decode_msgpack
        else:
            self.encode = _wire.encode_json
            self._decode = _wire.decode_json

    def decode(self, data: bytes, /) -> Envelope[Any]:
        envelope: Envelope[Any] = self._decode(data, self._type, max_size=self._max_size)
        return envelope

    def __repr__(self) -> str:
        return f"<{self.name} codec for {self._type!r}>"


def msgpack_codec(event_type: Any, *, max_size: int = _wire.DEFAULT_MAX_SIZE) -> Codec[Any]:
    """Return the MessagePack codec (the bridge's default) for ``Envelope[event_type]``.

    It is :func:`eventbus.codec.encode_msgpack` and :func:`eventbus.codec.decode_msgpack`
    with ``type=Envelope[event_type]`` and ``max_size``: canonical, validated, bounded.

    :raises TypeError: if ``max_size`` is not an int (a bool is not).
    :raises ValueError: if ``max_size`` is below 1.
    """
    return _EnvelopeCodec("msgpack", event_type, max_size)


def json_codec(event_type: Any, *, max_size: int = _wire.DEFAULT_MAX_SIZE) -> Codec[Any]:
    """Return the JSON codec for ``Envelope[event_type]``: slower, readable with any tool.

    :raises TypeError: if ``max_size`` is not an int (a bool is not).
    :raises ValueError: if ``max_size`` is below 1.
    """
    return _EnvelopeCodec("json", event_type, max_size)


def resolve_codec(codec: object, event_type: Any, max_size: int) -> Codec[Any]:
    """Turn the bridge's ``codec`` argument into a codec object.

    :raises ValueError: for an unknown codec name.
    :raises TypeError: for an object without ``encode`` and ``decode`` methods.
    """
    if isinstance(codec, str):
        if codec == "msgpack":
            return msgpack_codec(event_type, max_size=max_size)
        if codec == "json":
            return json_codec(event_type, max_size=max_size)
        raise ValueError(f"codec must be 'msgpack', 'json' or a Codec object, got {codec!r}")
    encode, decode = getattr(codec, "encode", None), getattr(codec, "decode", None)
    if not (callable(encode) and callable(decode)):
        raise TypeError(
            f"codec must have encode() and decode() methods, got {type(codec).__name__}"
        )
    return codec  # type: ignore[return-value]
