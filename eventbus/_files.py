"""File helpers shared by the session log recorder and the audit trail's JSONL sink."""

from __future__ import annotations

import os
from typing import Final

CHUNK: Final = 1 << 16
"""How many bytes a backwards read takes at a time."""


def end_of_last_line(fd: int, size: int) -> int:
    """The offset just after the last ``\\n`` among the first ``size`` bytes of ``fd`` (0 if
    there is none; ``size`` if they end with one). What follows it is a torn final line:
    a write a crash cut short. Reads backwards, never the whole file."""
    end = size
    while end > 0:
        start = max(0, end - CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0
