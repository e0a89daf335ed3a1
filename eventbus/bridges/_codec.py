"""The wire codec a bridge uses: a pair of callables for ``Envelope[T]``, built once per type."""

from __future__ import annotations

from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec

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


class _MsgspecCodec(Generic[T]):
    """A msgspec encoder/decoder pair for ``Envelope[event_type]``, created once."""

    __slots__ = ("decode", "encode", "name")

    def __init__(self, name: CodecName, event_type: Any) -> None:
        self.name = name
        if name == "msgpack":
            self.encode = msgspec.msgpack.Encoder().encode
            self.decode = msgspec.msgpack.Decoder(Envelope[event_type]).decode
        else:
            self.encode = msgspec.json.Encoder().encode
            self.decode = msgspec.json.Decoder(Envelope[event_type]).decode

    def __repr__(self) -> str:
        return f"<{self.name} codec>"


def msgpack_codec(event_type: Any) -> Codec[Any]:
    """Return a MessagePack codec for ``Envelope[event_type]`` (the bridge's default).

    ``event_type`` is an event class or a union of tagged event classes.
    """
    return _MsgspecCodec("msgpack", event_type)


def json_codec(event_type: Any) -> Codec[Any]:
    """Return a JSON codec for ``Envelope[event_type]``: slower, readable with any tool."""
    return _MsgspecCodec("json", event_type)


def resolve_codec(codec: object, event_type: Any) -> Codec[Any]:
    """Turn the bridge's ``codec`` argument into a codec object.

    :raises ValueError: for an unknown codec name.
    :raises TypeError: for an object without ``encode`` and ``decode`` methods.
    """
    if isinstance(codec, str):
        if codec == "msgpack":
            return msgpack_codec(event_type)
        if codec == "json":
            return json_codec(event_type)
        raise ValueError(f"codec must be 'msgpack', 'json' or a Codec object, got {codec!r}")
    encode, decode = getattr(codec, "encode", None), getattr(codec, "decode", None)
    if not (callable(encode) and callable(decode)):
        raise TypeError(
            f"codec must have encode() and decode() methods, got {type(codec).__name__}"
        )
    return codec  # type: ignore[return-value]
