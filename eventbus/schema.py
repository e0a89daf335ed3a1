"""JSON Schemas of the wire types, and the generated ``schemas/`` folder.

The files in the repository's ``schemas/`` folder are generated from the event classes by this
module, never written by hand:

.. code-block:: sh

    python -m eventbus.schema --write [DIR]   # (re)generate DIR, default ./schemas
    python -m eventbus.schema --check [DIR]   # exit 1 and list what is stale or missing
    python -m eventbus.schema [--type NAME]   # print one schema (default: kernel_event)

One file per public wire type (:data:`WIRE_TYPES`): each event family's union, every built-in
event (``kernel_event.json``) and the envelope carrying one. Each is
``msgspec.json.schema(type)`` with the class docstrings as descriptions, plus ``$schema``
(draft 2020-12), ``title`` and ``description``. Output is deterministic: keys sorted,
two-space indentation, a trailing newline. ``schemas/README.md`` is generated too and holds the
catalogue table (every kind, its class, family, category and primitive).

The schemas describe what :mod:`eventbus.codec` writes and accepts, with two caveats: the
``discriminator`` keyword is OpenAPI's, ignored by plain JSON Schema validators; and ``Any``
payloads (``tool_args``, ``context``) are unconstrained in the schema, though the decoders
bound their size and depth.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import msgspec

from ._envelope import Envelope
from .events import (
    ALL_EVENT_TYPES,
    OS_EVENT_TYPES,
    SUPERVISOR_EVENT_TYPES,
    TURN_LOOP_EVENT_TYPES,
    AnyKernelEvent,
    KernelEvent,
    OsEvent,
    SupervisorEvent,
    TurnLoopEvent,
)

__all__ = [
    "WIRE_TYPES",
    "catalogue_table",
    "check",
    "family_of",
    "generate",
    "main",
    "render_schema",
    "schema_for",
    "write",
]

WIRE_TYPES: Final[Mapping[str, tuple[Any, str]]] = MappingProxyType(
    {
        "kernel_event": (
            AnyKernelEvent,
            "Any built-in kernel event (eventbus.AnyKernelEvent), tagged by event_type.",
        ),
        "supervisor_event": (
            SupervisorEvent,
            "A supervisor event (eventbus.events.SupervisorEvent): the oxios kernel's events.",
        ),
        "turn_loop_event": (
            TurnLoopEvent,
            "A turn-loop event (eventbus.events.TurnLoopEvent): one agent turn's events.",
        ),
        "os_event": (
            OsEvent,
            "An OS observation event (eventbus.events.OsEvent): paging, scheduling, "
            "process-table and signal observations.",
        ),
        "envelope": (
            Envelope[AnyKernelEvent],
            "An eventbus.Envelope as published on the bus, carrying any built-in kernel event.",
        ),
        "audit_entry": (
            "audit:AuditEntry",
            "One audit trail entry (audit.AuditEntry): a row of the SQLite store, a line of "
            "the JSONL store.",
        ),
    }
)
"""Schema file name (without ``.json``) -> (the wire type, a one-line description).

A type given as ``"module:name"`` is imported only when its schema is generated: the audit
package builds on ``eventbus``, so ``eventbus`` never imports it at import time."""

_DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"

_FAMILIES: Final = (
    ("supervisor", SUPERVISOR_EVENT_TYPES),
    ("turn_loop", TURN_LOOP_EVENT_TYPES),
    ("os", OS_EVENT_TYPES),
)


def family_of(cls: type[KernelEvent]) -> str:
    """Return the family of a built-in event class: ``supervisor``, ``turn_loop`` or ``os``.

    :raises ValueError: if ``cls`` is not a built-in event class (e.g. a user-defined event).
    """
    for family, classes in _FAMILIES:
        if cls in classes:
            return family
    raise ValueError(f"cls must be a built-in event class, got {cls!r}")


def _clean(node: Any, renames: Mapping[str, str]) -> Any:
    # Dedent docstring descriptions, and point $refs at renamed definitions.
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                out[key] = inspect.cleandoc(value)
            elif key == "$ref" and isinstance(value, str):
                out[key] = renames.get(value, value)
            elif (
                key == "mapping"
                and isinstance(value, dict)
                and all(isinstance(v, str) for v in value.values())
            ):
                out[key] = {k: renames.get(v, v) for k, v in value.items()}
            else:
                out[key] = _clean(value, renames)
        return out
    if isinstance(node, list):
        return [_clean(item, renames) for item in node]
    return node


def schema_for(name: str) -> dict[str, Any]:
    """Return the JSON Schema of the wire type ``WIRE_TYPES[name]`` as a dict.

    Generic definitions get readable names (``Envelope`` rather than msgspec's name spelling
    out every type argument); descriptions are the class docstrings, dedented.

    :raises KeyError: if ``name`` is not in :data:`WIRE_TYPES`.
    """
    tp, description = WIRE_TYPES[name]
    if isinstance(tp, str):
        module, _, attribute = tp.partition(":")
        tp = getattr(importlib.import_module(module), attribute)
    raw = msgspec.json.schema(tp)
    defs: dict[str, Any] = raw.pop("$defs", {})
    renamed: dict[str, Any] = {}
    refs: dict[str, str] = {}
    for key, value in defs.items():
        short = key.split("_", 1)[0] if key.startswith("Envelope_") else key
        renamed[short] = value
        refs[f"#/$defs/{key}"] = f"#/$defs/{short}"
    doc = {"$schema": _DRAFT, "title": name, "description": description, **raw}
    if renamed:
        doc["$defs"] = renamed
    cleaned: dict[str, Any] = _clean(doc, refs)
    return cleaned


def render_schema(name: str) -> str:
    """Return the text of ``schemas/<name>.json``: sorted keys, indented, trailing newline.

    :raises KeyError: if ``name`` is not in :data:`WIRE_TYPES`.
    """
    return json.dumps(schema_for(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def catalogue_table() -> str:
    """Return the Markdown table of every built-in event: kind, class, family, category."""
    lines = [
        "| kind (`event_type`) | class | family | category | primitive |",
        "| --- | --- | --- | --- | --- |",
    ]
    for cls in ALL_EVENT_TYPES:
        lines.append(
            f"| `{cls.__struct_config__.tag}` | `{cls.__name__}` | {family_of(cls)} "
            f"| {cls.category.value} | {cls.category.primitive.value} |"
        )
    return "\n".join(lines) + "\n"


def _readme() -> str:
    files = "\n".join(
        f"| `{name}.json` | {description} |" for name, (_, description) in WIRE_TYPES.items()
    )
    counts = ", ".join(f"{len(classes)} {family}" for family, classes in _FAMILIES)
    return f"""# schemas/

**Generated files: do not edit.** They are generated from the event classes by
`eventbus/schema.py`. Regenerate them from the repository root with

```sh
python -m eventbus.schema --write
```

and check them with `python -m eventbus.schema --check` (the test suite does it too).

Each file is a JSON Schema (draft 2020-12) produced by `msgspec.json.schema`, describing what
`eventbus.codec` writes and accepts. Events are objects tagged by `event_type`; data-carrying
nested variants (`TurnOutcome`, `ToolOutcome`, `CapacityAction`) are tagged by `type`.

| file | wire type |
| --- | --- |
{files}

## Event catalogue

{len(ALL_EVENT_TYPES)} built-in events ({counts}). The category is class data
(`cls.category`), not a wire field; the primitive is its roll-up (`proc` and `ipc` roll up to
`sched`). OS event categories follow the kernel's `category_for_kind`.

{catalogue_table()}"""


def generate() -> dict[str, str]:
    """Return every generated file of ``schemas/`` as ``{file name: text}``.

    The result is deterministic: the same classes always give the same text.
    """
    files = {f"{name}.json": render_schema(name) for name in WIRE_TYPES}
    files["README.md"] = _readme()
    return files


def write(directory: str | Path) -> list[str]:
    """Write the generated files into ``directory`` (created if needed).

    :returns: the names of the files that were created or changed, sorted.
    Files that are not generated are left alone, never deleted.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in sorted(generate().items()):
        target = path / name
        if not target.is_file() or target.read_bytes() != text.encode("utf-8"):
            target.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed


def check(directory: str | Path) -> list[str]:
    """Compare ``directory`` with the generated files without writing anything.

    :returns: the names of generated files that are missing or differ, sorted (empty when up
        to date), and of ``*.json`` files present there that are no longer generated.
    """
    path = Path(directory)
    expected = generate()
    stale = [
        name
        for name, text in expected.items()
        # (bytes: a file damaged into invalid UTF-8 is stale, not an error)
        if not (path / name).is_file() or (path / name).read_bytes() != text.encode("utf-8")
    ]
    if path.is_dir():
        stale += [p.name for p in path.glob("*.json") if p.name not in expected]
    return sorted(stale)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m eventbus.schema``; return the exit status (1 when ``--check`` fails)."""
    parser = argparse.ArgumentParser(
        prog="python -m eventbus.schema",
        description="Print, write or check the JSON Schemas of the eventbus wire types.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", nargs="?", const="schemas", metavar="DIR")
    mode.add_argument("--check", nargs="?", const="schemas", metavar="DIR")
    parser.add_argument("--type", choices=list(WIRE_TYPES), default="kernel_event")
    args = parser.parse_args(argv)
    if args.write is not None:
        changed = write(args.write)
        for name in changed:
            print(f"wrote {Path(args.write) / name}")
        if not changed:
            print(f"{args.write}: up to date")
        return 0
    if args.check is not None:
        stale = check(args.check)
        for name in stale:
            print(f"stale: {Path(args.check) / name}", file=sys.stderr)
        if stale:
            print("run: python -m eventbus.schema --write", file=sys.stderr)
            return 1
        print(f"{args.check}: up to date")
        return 0
    sys.stdout.write(render_schema(args.type))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
