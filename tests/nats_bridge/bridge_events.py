"""Small user-defined events for the bridge tests: two categories and one without."""

from __future__ import annotations

import enum
from typing import ClassVar

import msgspec


class Category(enum.Enum):
    """Stands in for the catalogue's ``Category``: the bridge reads ``.value``."""

    PROC = "proc"
    IPC = "ipc"


class AgentStarted(msgspec.Struct, frozen=True, kw_only=True, tag="agent_started"):
    category: ClassVar[Category] = Category.PROC
    agent: str
    n: int = 0


class MessageSent(msgspec.Struct, frozen=True, kw_only=True, tag="message_sent"):
    category: ClassVar[Category] = Category.IPC
    text: str


class Note(msgspec.Struct, frozen=True, kw_only=True, tag="note"):
    """No category: travels on ``{prefix}.other.note``."""

    text: str


BridgeEvent = AgentStarted | MessageSent | Note
