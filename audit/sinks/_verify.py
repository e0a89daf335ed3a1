"""Verifying a store of either format: what :func:`~audit.sinks.verify_sink` runs."""

from __future__ import annotations

import os

from ._base import StoreCheck
from ._jsonl import verify_jsonl
from ._sqlite import is_sqlite_file, verify_sqlite

__all__ = ["check_sink"]


def check_sink(path: str | os.PathLike[str]) -> StoreCheck:
    """:func:`~audit.sinks.verify_sink`, and what an intact store holds, from the same read
    (a writer may append meanwhile: a second read could count entries never verified)."""
    path = os.fspath(path)
    if is_sqlite_file(path):
        return verify_sqlite(path)
    return verify_jsonl(path)
