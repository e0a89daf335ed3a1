"""The ``eventbus`` command line: ``python -m eventbus`` or the ``eventbus`` console script.

Subcommands (each with ``--help``)::

    eventbus demo [--agents N] [--events N] [--db PATH]
    eventbus audit show PATH [--actor A] [--kind K] [--action X] [--since-seq N]
                        [--event-id ID] [--duplicates] [--json]
    eventbus audit verify PATH
    eventbus replay LOG [--snapshot] [--trail] [--capacity N] [--max-line-bytes N]
                        [--max-depth N]
    eventbus schema [--check [DIR] | --write DIR]

Exit codes: 0 success, 1 failure (a missing or corrupt file or session log, a tampered audit
store, stale schemas), 2 usage error (an unknown flag, a bad value). Every error is one line
on stderr, never a traceback. Only the standard library's :mod:`argparse`; the audit package,
the replay package and the schema generator are imported by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TextIO

import anyio
import anyio.lowlevel
import msgspec
import structlog

from ._bus import EventBus, Subscription, _kind_of

if TYPE_CHECKING:
    from audit import AuditEntry
    from audit.sinks._base import StoreAnchor

__all__ = ["main"]

_PROG = "eventbus"


class _UsageError(Exception):
    """Bad command-line usage: exit code 2."""


class _Failure(Exception):
    """The command ran and failed: exit code 1."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions, so :func:`main` prints one line."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``).

    :returns: the process exit code: 0 on success, 1 when the command failed, 2 for a usage
        error. Errors are printed as one line on stderr.

    It never raises and never prints a traceback: ``--help`` and ``--version`` return 0 after
    printing, :exc:`KeyboardInterrupt` returns 130, a broken stdout pipe returns 0.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        command: Callable[[argparse.Namespace], int] = args.run
        with _logs_to_stderr(verbose=args.verbose):
            return command(args)
    except _UsageError as exc:
        print(f"{exc}", file=sys.stderr)
        return 2
    except _Failure as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. ``eventbus audit show db | head``
        _silence_stdout()
        return 0
    except Exception as exc:  # a bug or an unforeseen condition: still one line
        leaves = _leaves(exc)
        if all(isinstance(leaf, BrokenPipeError) for leaf in leaves):
            _silence_stdout()
            return 0
        first = leaves[0]
        print(f"{_PROG}: error: unexpected {type(first).__name__}: {first}", file=sys.stderr)
        return 1


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``[exc]``."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


@contextmanager
def _logs_to_stderr(*, verbose: bool) -> Iterator[None]:
    """Send the library's structlog records to stderr while a command runs.

    The command line is an application, so it decides where logs go: stdout carries the
    command's output (``audit show --json`` is piped), so records go to stderr, errors only
    unless ``--verbose``. It leaves an application's own structlog configuration alone, and
    restores structlog's defaults afterwards (``main`` may be called in-process).
    """
    if structlog.is_configured():
        yield
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.INFO if verbose else logging.ERROR
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    try:
        yield
    finally:
        structlog.reset_defaults()


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would report the broken pipe again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# -- the parser ----------------------------------------------------------------------------


def _int_at_least(text: str, minimum: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


def _build_parser() -> _Parser:
    from importlib.metadata import PackageNotFoundError, version

    # (read_log's defaults are the codec's: this spares every command importing replay)
    from .codec import DEFAULT_MAX_DEPTH
    from .codec import DEFAULT_MAX_SIZE as DEFAULT_MAX_LINE_BYTES

    try:
        dist_version = version("kernel-eventbus")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        dist_version = "unknown"
    parser = _Parser(
        prog=_PROG,
        description="kernel-eventbus: an in-process broadcast event bus with an audit trail.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {dist_version}")
    verbose_help = (
        "show the library's log records (lag, sink errors) on stderr; default: errors only"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # -v after the subcommand too (eventbus demo -v); SUPPRESS keeps the one given before it
    verbose = _Parser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help
    )
    commands = parser.add_subparsers(title="commands", dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        parents=[verbose],
        help="run the agent supervisor simulation with an audit trail on SQLite",
        description=(
            "Spawn a group of agents that recall memories, call tools (some need approval, "
            "some are denied) and store results, with the audit trail attached and written to "
            "an embedded SQLite store. Ends with a summary: events published, each "
            "subscription's delivered and lagged counts, the audit entries, and the last "
            "entries as a table."
        ),
    )
    demo.add_argument(
        "--agents", type=_positive_int, default=4, metavar="N", help="agents (default 4)"
    )
    demo.add_argument(
        "--events",
        type=_positive_int,
        default=2000,
        metavar="N",
        help="stop once about N events were published (default 2000)",
    )
    demo.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="the SQLite audit store to write (kept; an existing store is resumed). "
        "Default: a temporary file, deleted at the end",
    )
    demo.set_defaults(run=_run_demo)

    audit = commands.add_parser(
        "audit",
        parents=[verbose],
        help="read or verify an audit store (SQLite or JSONL)",
        description="Read or verify an audit store written by the SQLite or JSONL sink.",
    )
    audit_commands = audit.add_subparsers(title="commands", dest="audit_command", required=True)
    show = audit_commands.add_parser(
        "show",
        parents=[verbose],
        help="print the entries of an audit store, optionally filtered",
        description=(
            "Print the entries of a SQLite or JSONL audit store, oldest first. The filters "
            "combine. A store that shows damage in the same read (seqs missing, out of "
            "order or repeated, an entry whose prev_hash is not the hash of the one before "
            "it, ends other than its anchor's) is listed all the same, with one warning on "
            "stderr naming what was seen, and exit 0: only 'eventbus audit verify PATH' "
            "checks every entry's hash, and exits 1 for a store that is not intact."
        ),
    )
    show.add_argument("path", type=Path, metavar="PATH", help="the audit store")
    show.add_argument("--actor", metavar="A", help="only entries by this actor")
    show.add_argument("--kind", metavar="K", help="only entries of this event kind")
    show.add_argument(
        "--action", metavar="X", help="only entries with this action (ToolCall, MemoryRead, ...)"
    )
    show.add_argument(
        "--since-seq", type=_non_negative_int, metavar="N", help="only entries with seq >= N"
    )
    show.add_argument(
        "--event-id",
        metavar="ID",
        help="only entries recording the event with this event_id (the envelope's id; "
        "more than one if the event was recorded twice)",
    )
    show.add_argument(
        "--duplicates",
        action="store_true",
        help="only entries whose event_id an earlier entry of the store already recorded: "
        "events recorded twice, as after an audit process fed by JetStream crashed "
        "between storing a batch and acknowledging it. Earlier means in the whole store, "
        "whatever the other filters select; entries of no single event (event_id null) "
        "never count",
    )
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(run=_run_audit_show)
    verify = audit_commands.add_parser(
        "verify",
        parents=[verbose],
        help="verify an audit store's hash chain",
        description=(
            "Verify a SQLite or JSONL audit store end to end against its hash chain and "
            "its anchor. Exit 0 when intact; exit 1 naming the first bad seq when an entry "
            "was altered, removed, reordered or cut. A JSONL store's anchor is the file "
            "PATH.anchor: without it only the chain is checked, and entries cut from either "
            "end of the file go undetected. A JSONL store's torn final line (no newline) "
            "after the last entry the anchor acknowledged, or in a store without anchor, is "
            "a write cut short by a crash or still in progress, never acknowledged: exit 0, "
            "with a warning naming its size; where the anchor acknowledged more, it is the "
            "newest entry cut short: exit 1. Read-only: a SQLite store nobody has open is "
            "left without -wal or -shm files."
        ),
    )
    verify.add_argument("path", type=Path, metavar="PATH", help="the audit store")
    verify.set_defaults(run=_run_audit_verify)

    replay = commands.add_parser(
        "replay",
        parents=[verbose],
        help="read a session log; print its OS snapshot and/or its audit trail",
        description=(
            "Read a session log (JSONL, as eventbus.replay.SessionLogRecorder writes it, or a "
            "Rust kernel's event log) and print what it adds up to: the rebuilt OS snapshot "
            "(--snapshot, as JSON) and/or the audit trail the live consumer would have "
            "recorded (--trail). With neither flag, both. With --snapshot alone, stdout is "
            "the JSON document only (the log's summary goes to stderr), ready for jq. Exit 1 "
            "for a missing or corrupt log (the message names the bad line)."
        ),
    )
    replay.add_argument("log", type=Path, metavar="LOG", help="the session log")
    replay.add_argument("--snapshot", action="store_true", help="print the OS snapshot")
    replay.add_argument("--trail", action="store_true", help="print the audit trail")
    replay.add_argument(
        "--capacity",
        type=_positive_int,
        metavar="N",
        help="the rebuilt trail's capacity (default: the trail's, 100000); older entries "
        "are evicted, and the output says how many",
    )
    replay.add_argument(
        "--max-line-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_LINE_BYTES,
        metavar="N",
        help=f"the longest line accepted (default {DEFAULT_MAX_LINE_BYTES}, 1 MiB); a longer "
        "one is an error naming its line",
    )
    replay.add_argument(
        "--max-depth",
        type=_positive_int,
        default=DEFAULT_MAX_DEPTH,
        metavar="N",
        help=f"the deepest nesting accepted in a line (default {DEFAULT_MAX_DEPTH})",
    )
    replay.set_defaults(run=_run_replay)

    schema = commands.add_parser(
        "schema",
        parents=[verbose],
        help="print, check or write the JSON Schemas of the wire types",
        description=(
            "Print the JSON Schema of every kernel event (the union of all families), check "
            "a schemas/ folder against the types, or write the schema files to a directory."
        ),
    )
    mode = schema.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        type=Path,
        nargs="?",
        const=Path("schemas"),
        metavar="DIR",
        help="exit 1 if a file in DIR (default ./schemas) is stale or missing",
    )
    mode.add_argument("--write", type=Path, metavar="DIR", help="write the schema files to DIR")
    schema.set_defaults(run=_run_schema)
    for subcommands in (commands, audit_commands):
        # A missing subcommand is reported by its choices, as the usage line shows them,
        # rather than by its dest (argparse's default: "required: audit_command").
        subcommands.metavar = "{" + ",".join(subcommands.choices) + "}"
    return parser


# -- shared helpers ------------------------------------------------------------------------


def _timestamp(ts_ns: int) -> str:
    """UTC to the millisecond; the raw nanoseconds when no date holds them (a log may carry
    any integer, and one bad stamp must not end a listing half printed)."""
    try:
        moment = datetime.fromtimestamp(ts_ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return f"ts_ns={ts_ns}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _action_text(action: msgspec.Struct, width: int = 48) -> str:
    fields = ", ".join(f"{k}={v!r}" for k, v in msgspec.structs.asdict(action).items())
    text = f"{type(action).__name__}({fields})"
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_entries(entries: Sequence[AuditEntry], out: TextIO) -> None:
    """Print entries as a table whose columns are as wide as their widest cell."""
    header = ("seq", "time (UTC)", "actor", "action", "kind")
    rows = [
        (str(e.seq), _timestamp(e.ts_ns), e.actor, _action_text(e.action), e.kind) for e in entries
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [row[0].rjust(widths[0])]
        cells += [c.ljust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells).rstrip(), file=out)


def _require_store_file(path: Path) -> None:
    """Fail with one clear line unless ``path`` is a readable file."""
    if not path.exists():
        raise _Failure(f"no such file: {path}")
    if path.is_dir():
        raise _Failure(f"{path} is a directory, not an audit store")


def _check_jsonl_store(path: Path) -> None:
    """Raise DecodeError/ValidationError if ``path`` is no JSONL audit store at all: it has no
    anchor file and its first line is not an entry. (With an anchor, or a first entry, a bad
    line is tampering, which verify reports as the first bad seq.)"""
    from audit.sinks._base import decode_entry
    from audit.sinks._jsonl import LINE_MAX_BYTES, anchor_path, starts_like_an_entry

    if os.path.exists(anchor_path(str(path))):
        return
    with open(path, "rb") as f:
        first = f.readline(LINE_MAX_BYTES + 1)
    if len(first) > LINE_MAX_BYTES:
        raise msgspec.DecodeError(f"line 1 is longer than {LINE_MAX_BYTES} bytes")
    if first.endswith(b"\n"):
        try:
            decode_entry(first)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise type(exc)(f"line 1: {exc}") from None
    elif not starts_like_an_entry(first):  # (a torn first write is left to verify)
        raise msgspec.DecodeError(
            "it holds no complete line, and its bytes do not start like an audit entry"
        )


def _sqlite_counts(path: Path) -> tuple[int, int | None, int | None]:
    """(entries, first seq, last seq) of a SQLite audit store, read-only (leaving it as it
    found it: see ``audit.sinks._sqlite.read_store``)."""
    from audit.sinks._sqlite import read_store

    count, first, last = read_store(
        path,
        lambda conn: conn.execute(
            "SELECT count(*), min(seq), max(seq) FROM audit_entries"
        ).fetchone(),
    )
    return int(count), first, last


def _check_audit_sqlite(path: Path) -> None:
    """Fail unless ``path`` is a SQLite audit store (read-only check, changes nothing)."""
    from audit.sinks._sqlite import UnreadableStoreError

    try:
        _sqlite_counts(path)
    except UnreadableStoreError as exc:  # it may be a store: say what reading it needs
        raise _Failure(f"{exc}") from None
    except sqlite3.DatabaseError as exc:
        raise _Failure(f"{path} is not a readable audit store: {exc}") from None


# -- audit show / verify -------------------------------------------------------------------


def _action_names() -> dict[str, type[msgspec.Struct]]:
    from typing import get_args

    from audit import AuditAction

    return {_kind_of(cls): cls for cls in get_args(AuditAction)}


def _run_audit_show(args: argparse.Namespace) -> int:
    path: Path = args.path
    names = _action_names()
    if args.action is not None and args.action not in names:
        raise _UsageError(
            f"{_PROG} audit show: unknown --action {args.action!r} "
            f"(choose from {', '.join(sorted(names))})"
        )
    _require_store_file(path)
    store = _read_store(path)
    entries = store.entries
    # Over the whole store, in its order, whatever the other filters select.
    repeated = _repeated_events(entries) if args.duplicates else None
    since = args.since_seq
    selected = [
        e
        for i, e in enumerate(entries)
        if (args.actor is None or e.actor == args.actor)
        and (args.kind is None or e.kind == args.kind)
        and (args.action is None or isinstance(e.action, names[args.action]))
        and (since is None or e.seq >= since)
        and (args.event_id is None or e.event_id == args.event_id)
        and (repeated is None or i in repeated)
    ]
    out = sys.stdout
    try:
        if args.json:
            encode = msgspec.json.Encoder().encode
            for entry in selected:
                out.write(encode(entry).decode() + "\n")
        elif selected:
            _print_entries(selected, out)
        else:
            print(f"no entries match (the store holds {len(entries)})", file=sys.stderr)
        out.flush()
    finally:  # after the listing, where a terminal leaves it in sight; also if it broke off
        if store.anchor_unread is not None:
            print(
                f"{_PROG}: warning: cannot read the anchor file {store.anchor_unread}: "
                f"where {path} should start and end was not checked",
                file=sys.stderr,
            )
        damage = _damage(entries, store.anchor)
        if store.anchor_damage is not None:
            damage.insert(0, store.anchor_damage)
        if damage:
            print(
                f"{_PROG}: warning: {path} is damaged: {'; '.join(damage)}; "
                f"'{_PROG} audit verify {path}' checks it entry by entry",
                file=sys.stderr,
            )
    return 0


def _repeated_events(entries: Sequence[AuditEntry]) -> set[int]:
    """The indexes of the entries whose ``event_id`` an earlier entry already recorded (an
    event recorded twice, as after a redelivery). Memory: one set of the distinct ids."""
    seen: set[str] = set()
    repeated: set[int] = set()
    for i, entry in enumerate(entries):
        event_id = entry.event_id
        if event_id is None:  # an entry that stands for no single event
            continue
        if event_id in seen:
            repeated.add(i)
        else:
            seen.add(event_id)
    return repeated


#: How many instances of one kind of damage a warning names (it counts the rest).
_NAMED = 3


def _listed(items: list[str], count: int, verb: str, more: str) -> str:
    """``"seq 7..9, 12 missing"``, or with ``", and 4 more gaps"`` past :data:`_NAMED`."""
    text = f"{', '.join(items)}{verb}"
    return text if count <= len(items) else f"{text}, and {count - len(items)} more {more}"


def _damage(entries: Sequence[AuditEntry], anchor: StoreAnchor | None) -> list[str]:
    """What a store's entries, in its order, and its anchor show of damage, without a hash
    computed: seqs missing, out of order or repeated, entries whose ``prev_hash`` is not
    their predecessor's ``hash``, and ends other than the anchor's. Empty if none (which
    vouches for no entry's content: that takes ``audit verify``)."""
    damage: list[str] = []
    disorder: list[str] = []
    disorders = 0
    unlinked: list[str] = []
    unlinks = 0
    gaps: list[tuple[int, int]] = []
    prev: AuditEntry | None = None
    at_start = at_end = None
    first = last = None
    for entry in entries:
        seq = entry.seq
        first = seq if first is None or seq < first else first
        last = seq if last is None or seq > last else last
        if anchor is not None:
            if seq == anchor.first_seq:
                at_start = entry
            if seq == anchor.last_seq:
                at_end = entry
        if prev is not None:
            if seq <= prev.seq:
                disorders += 1
                if len(disorder) < _NAMED:
                    disorder.append(
                        f"seq {seq} is repeated"
                        if seq == prev.seq
                        else f"seq {seq} comes after seq {prev.seq}"
                    )
            elif seq > prev.seq + 1:
                gaps.append((prev.seq + 1, seq - 1))
            elif entry.prev_hash != prev.hash:
                unlinks += 1
                if len(unlinked) < _NAMED:
                    unlinked.append(f"seq {seq} does not link to seq {prev.seq}")
        prev = entry
    if disorders:  # the gaps are those in the seqs there are, in whatever order
        seqs = sorted({e.seq for e in entries})
        gaps = [(a + 1, b - 1) for a, b in itertools.pairwise(seqs) if b > a + 1]
    if gaps:
        runs = [f"{a}..{b}" if b > a else f"{a}" for a, b in gaps[:_NAMED]]
        damage.append("seq " + _listed(runs, len(gaps), " missing", "gaps"))
    if disorders:
        damage.append(_listed(disorder, disorders, "", "out of order"))
    if unlinks:
        damage.append(_listed(unlinked, unlinks, "", "broken links"))
    if anchor is not None:
        damage += _anchor_damage(anchor, first, last, at_start, at_end)
    return damage


def _anchor_damage(
    anchor: StoreAnchor,
    first: int | None,
    last: int | None,
    at_start: AuditEntry | None,
    at_end: AuditEntry | None,
) -> list[str]:
    """The store's lowest and highest seq (``None`` for no entry), and its entries at the
    anchor's ends, against where the ``anchor`` says the store starts and ends (entries
    past its end are a batch written but not yet acknowledged: they stand)."""
    if first is None or last is None:
        if anchor.last_seq == 0:  # an anchor of nothing acknowledged (as verify judges it)
            return []
        return [
            f"the anchor says the store holds seq {anchor.first_seq}..{anchor.last_seq}, "
            "it holds no entry"
        ]
    damage = []
    if first != anchor.first_seq:
        damage.append(
            f"the anchor says the store starts at seq {anchor.first_seq}, it starts at {first}"
        )
    elif at_start is not None and at_start.prev_hash != anchor.first_prev_hash:
        damage.append(
            f"seq {first} does not link to the hash the anchor says the store starts from"
        )
    if last < anchor.last_seq:
        damage.append(
            f"the anchor says the store ends at seq {anchor.last_seq}, it ends at {last}"
        )
    elif at_end is not None and at_end.hash != anchor.last_hash:
        damage.append(f"seq {anchor.last_seq} is not the entry the anchor acknowledged")
    return damage


class _StoreRead(NamedTuple):
    """What one read of a store found: its entries, in its order, and its anchor."""

    entries: list[AuditEntry]
    anchor: StoreAnchor | None
    #: Why the anchor was not read although there is one (a warning's words), else None.
    anchor_damage: str | None
    #: The anchor file that could not be read (JSONL), and why; else None.
    anchor_unread: str | None = None


def _read_store(path: Path) -> _StoreRead:
    """Every entry of a SQLite or JSONL store, oldest first, and its anchor; one-line
    failures. A SQLite store's anchor is read in the same snapshot; a JSONL store's anchor
    file before the store, so a writer appending meanwhile can add entries past the anchor
    (which stand) but never make it look cut."""
    from audit.sinks import read_jsonl
    from audit.sinks._jsonl import _read_anchor, anchor_path
    from audit.sinks._sqlite import UnreadableStoreError, is_sqlite_file, read_with_anchor

    anchor: StoreAnchor | None = None
    anchor_damage: str | None = None
    try:
        if is_sqlite_file(path):
            # read-only, never SqliteSink: that one writes
            entries, anchor, damaged = read_with_anchor(path)
            if damaged is not None:
                anchor_damage = f"its anchor (in audit_meta) is damaged ({damaged})"
            elif anchor is None and entries:  # a sink writes it with the first entries
                anchor_damage = "it holds entries but no anchor (in audit_meta)"
            return _StoreRead(entries, anchor, anchor_damage)
        anchor_file = anchor_path(str(path))
        anchor_unread: str | None = None
        try:
            anchor = _read_anchor(str(path))
        except ValueError as exc:  # DecodeError and ValidationError included
            anchor_damage = f"its anchor file {anchor_file} is damaged ({exc})"
        except OSError as exc:  # (not its absence: that reads as None)
            anchor_unread = f"{anchor_file} ({exc.strerror or exc})"
        contents = read_jsonl(path)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # ValidationError included
        raise _Failure(f"{path} is not a JSONL audit store: {exc}") from None
    except UnreadableStoreError as exc:  # it may be a store: say what reading it needs
        raise _Failure(f"{exc}") from None
    except sqlite3.DatabaseError as exc:
        raise _Failure(f"{path} is not a readable audit store: {exc}") from None
    except OSError as exc:
        raise _Failure(f"cannot read {exc.filename or path}: {exc.strerror or exc}") from None
    if contents.torn_tail:
        print(
            f"{_PROG}: warning: {path} ends with a torn line ({contents.torn_tail} bytes), "
            "not shown",
            file=sys.stderr,
        )
    return _StoreRead(contents.entries, anchor, anchor_damage, anchor_unread)


def _run_audit_verify(args: argparse.Namespace) -> int:
    from audit.sinks._jsonl import anchor_path
    from audit.sinks._sqlite import UnreadableStoreError, is_sqlite_file
    from audit.sinks._verify import check_sink

    path: Path = args.path
    _require_store_file(path)
    anchor = anchor_path(str(path))
    try:
        sqlite = is_sqlite_file(path)
        anchored = sqlite or os.path.exists(anchor)  # (looked at before verify reads it)
        if not sqlite:
            _check_jsonl_store(path)
        # One read verifies and counts: a writer may append between two reads.
        check = check_sink(path)
        if check.bad is not None:
            raise _Failure(f"{path} is not intact: the first bad entry is seq {check.bad}")
        count, first, last = check.entries, check.first_seq, check.last_seq
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # ValidationError included
        raise _Failure(f"{path} is not a JSONL audit store: {exc}") from None
    except UnreadableStoreError as exc:  # it may be a store: say what reading it needs
        raise _Failure(f"{exc}") from None
    except sqlite3.DatabaseError as exc:
        raise _Failure(f"{path} is not a readable audit store: {exc}") from None
    except OSError as exc:  # (the store, or its anchor file: name the one)
        raise _Failure(f"cannot read {exc.filename or path}: {exc.strerror or exc}") from None
    span = f", seq {first}..{last}" if count else ""
    # Say no more than was checked: without its anchor file, a JSONL store's chain only.
    limits = (
        ""
        if anchored
        else f"; hash chain only: no anchor file {anchor}, so a cut at either end cannot "
        "be detected"
    )
    print(f"{path}: intact ({count} entries{span}{limits})")
    if check.torn_tail:  # past the last acknowledged entry, or verify would have said bad
        where = f"ends with a torn line after seq {last}" if count else "holds only a torn line"
        print(
            f"{_PROG}: warning: {path} {where} ({check.torn_tail} bytes, no newline), "
            "not verified: a write cut short by a crash or still in progress, never "
            "acknowledged (a JsonlSink opening the store cuts it off)",
            file=sys.stderr,
        )
    return 0


# -- replay --------------------------------------------------------------------------------


def _run_replay(args: argparse.Namespace) -> int:
    from audit import rebuild_audit_trail
    from audit.sinks._sqlite import is_sqlite_file

    from .replay import read_log, rebuild_os_snapshot

    path: Path = args.log
    if path.is_dir():
        raise _Failure(f"{path} is a directory, not a session log")
    try:  # a SQLite file's bytes could pass for a log's torn final line
        # (Only a regular file: sniffing a pipe, <(zcat log.gz) or /dev/stdin, would eat
        # the first bytes of the log read_log reads next.)
        sqlite = path.is_file() and is_sqlite_file(path)
    except OSError:  # missing or unreadable: read_log below says which
        sqlite = False
    if sqlite:
        raise _Failure(
            f"{path} is a SQLite database, not a session log (an audit store is read with "
            "'eventbus audit show')"
        )
    try:
        log = read_log(path, max_line_bytes=args.max_line_bytes, max_depth=args.max_depth)
    except FileNotFoundError:
        raise _Failure(f"no such file: {path}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # ValidationError included
        raise _Failure(f"{path} is not a session log: {exc}") from None
    except OSError as exc:
        raise _Failure(f"cannot read {path}: {exc.strerror or exc}") from None
    if log.torn_lines:
        print(f"{_PROG}: warning: {path} ends with a torn line, skipped", file=sys.stderr)
    both = not (args.snapshot or args.trail)
    json_only = args.snapshot and not args.trail  # stdout is one JSON document
    out = sys.stdout
    summary = f"{path}: {len(log.envelopes)} envelopes, {len(log.gaps)} gaps"
    print(summary, file=sys.stderr if json_only else out)
    if args.snapshot or both:
        snapshot = rebuild_os_snapshot(log)
        if not json_only:
            print("OS snapshot:", file=out)
        out.write(msgspec.json.format(msgspec.json.encode(snapshot)).decode() + "\n")
    if args.trail or both:
        trail = (
            rebuild_audit_trail(log)
            if args.capacity is None
            else rebuild_audit_trail(log, capacity=args.capacity)
        )
        evicted = trail.statistics().evicted
        kept = (
            f" (the newest: {evicted} older ones evicted; --capacity N keeps more)"
            if evicted
            else ""
        )
        print(f"audit trail: {len(trail)} entries{kept}", file=out)
        if len(trail):
            _print_entries(trail.entries(), out)
    out.flush()
    return 0


# -- demo ----------------------------------------------------------------------------------

# (tool, needs approval, arguments): the secret in the arguments shows the audit redaction.
_TOOLS: tuple[tuple[str, bool, dict[str, Any]], ...] = (
    ("web_search", False, {"query": "release notes", "api_key": "sk-demo-not-a-secret"}),
    ("read_file", False, {"path": "notes/plan.md"}),
    ("write_file", True, {"path": "notes/summary.md", "bytes": 2048}),
    ("shell", True, {"command": "pytest -q"}),
    ("shell", True, {"command": "rm -rf /"}),
)


#: Ids in the demo are name-based, so two runs name the same agents alike.
_DEMO_NAMESPACE = uuid.UUID("6f1c2a8e-3d4b-5e6f-8a9b-0c1d2e3f4a5b")


class _Progress:
    """A progress line on stderr every 10% of a long run (at least ``_PROGRESS_FROM`` events)."""

    def __init__(self, target: int, out: TextIO) -> None:
        self._target = target
        self._out = out
        self._step = max(target // 10, 1)
        self._next = self._step if target >= _PROGRESS_FROM else math.inf

    def update(self, published: int) -> None:
        if published >= self._next:
            percent = min(100, published * 100 // self._target)
            print(f"demo: {published}/{self._target} events ({percent}%)", file=self._out)
            self._next = (published // self._step + 1) * self._step


_PROGRESS_FROM = 20_000


async def _approver(bus: EventBus[Any], requests: Subscription[Any]) -> None:
    """The supervisor's human-in-the-loop stand-in: approves every tool call but ``rm``."""
    from .events import ApprovalRequested, ApprovalResolved

    async for envelope in requests:
        request = envelope.event
        assert isinstance(request, ApprovalRequested)
        approved = not request.resource.startswith("rm ")
        await bus.apublish(ApprovalResolved(id=request.id, approved=approved))


async def _dashboard(view: Subscription[Any]) -> None:
    """A slow UI consumer: one envelope per scheduler turn, so it lags (by design)."""
    async for _envelope in view:
        await anyio.lowlevel.checkpoint()


async def _agent(
    bus: EventBus[Any], group_id: uuid.UUID, index: int, target: int, progress: _Progress
) -> None:
    from .events import (
        AgentCreated,
        AgentGroupMemberCompleted,
        AgentStarted,
        AgentStopped,
        ApprovalRequested,
        ApprovalResolved,
        MemoryRecallUsed,
        MemoryStored,
        TokenUsageUpdate,
        ToolExecutionFinished,
        ToolExecutionStarted,
    )

    agent_id = uuid.uuid5(_DEMO_NAMESPACE, f"agent-{index + 1}")
    session = f"demo-{index + 1}"
    pending: set[uuid.UUID] = set()
    # Subscribed before any request is published, so no decision can be missed.
    decisions = bus.subscribe(
        name=f"agent-{index + 1}",
        kinds=[ApprovalResolved],
        where=lambda e: e.event.id in pending,
    )
    await bus.apublish(AgentCreated(id=agent_id, name=f"researcher {index + 1}"))
    await bus.apublish(AgentStarted(id=agent_id))
    step = 0
    tokens = 0
    with decisions:
        while bus.statistics().published < target:
            step += 1
            tool, needs_approval, tool_args = _TOOLS[(index + step) % len(_TOOLS)]
            await bus.apublish(
                MemoryRecallUsed(session_id=session, query=tool, count=step % 4, source="warm")
            )
            call_id = f"call-{index + 1}-{step}"
            if needs_approval:
                request_id = uuid.uuid5(agent_id, call_id)
                pending.add(request_id)
                await bus.apublish(
                    ApprovalRequested(
                        id=request_id,
                        tool_name=tool,
                        action="execute",
                        resource=str(tool_args.get("command", tool_args.get("path", ""))),
                        reason="side effects need a supervisor's approval",
                        session_id=session,
                    )
                )
                decision = await decisions.receive()
                pending.discard(request_id)
                if not decision.event.approved:
                    continue
            await bus.apublish(
                ToolExecutionStarted(
                    session_id=session, tool_name=tool, tool_call_id=call_id, tool_args=tool_args
                )
            )
            await anyio.lowlevel.checkpoint()  # the tool runs; other agents go on
            await bus.apublish(
                ToolExecutionFinished(
                    session_id=session,
                    tool_call_id=call_id,
                    tool_name=tool,
                    duration_ms=5 + step % 40,
                    is_error=False,
                    output_summary=f"{tool} ok",
                )
            )
            await bus.apublish(
                MemoryStored(
                    id=f"mem-{index + 1}-{step}", memory_type="episodic", source=str(agent_id)
                )
            )
            tokens += 300
            if step % 4 == 0:
                await bus.apublish(
                    TokenUsageUpdate(
                        session_id=session, input_tokens=tokens, output_tokens=tokens // 3
                    )
                )
            progress.update(bus.statistics().published)
    await bus.apublish(
        AgentGroupMemberCompleted(group_id=group_id, agent_id=agent_id, success=True)
    )
    await bus.apublish(AgentStopped(id=agent_id, success=True))


class _DemoResult(msgspec.Struct):
    published: int
    seconds: float
    subscriptions: list[tuple[str, int, int, str]]
    trail_entries: int
    trail_evicted: int
    last: list[AuditEntry]
    resumed: int


async def _demo(agents: int, events: int, db: Path, resume: bool) -> _DemoResult:
    from audit import AuditTrail, attach_audit_trail
    from audit.sinks import SqliteSink

    from .events import AgentGroupCreated, ApprovalRequested

    trail = AuditTrail()
    started = time.perf_counter()
    with SqliteSink(db) as sink:
        async with EventBus[Any]() as bus:
            # The auditor subscribes first and is lossless (every publisher awaits apublish,
            # which waits while the audit queue is full): nothing can escape the trail, however
            # far the publishers outrun the SQLite store.
            async with attach_audit_trail(
                bus, trail, mode="lossless", sink=sink, resume=resume
            ) as auditor:
                resumed = trail.statistics().restored
                requests = bus.subscribe(
                    name="approver", kinds=[ApprovalRequested], max_buffer_size=max(agents, 64)
                )
                view = bus.subscribe(name="dashboard", max_buffer_size=64)
                progress = _Progress(events, sys.stderr)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_approver, bus, requests)
                    tg.start_soon(_dashboard, view)
                    group_id = uuid.uuid5(_DEMO_NAMESPACE, "group")
                    await bus.apublish(AgentGroupCreated(group_id=group_id, agent_count=agents))
                    async with anyio.create_task_group() as group:
                        for index in range(agents):
                            group.start_soon(_agent, bus, group_id, index, events, progress)
                    bus.close()  # consumers drain what they hold, then stop
            # Leaving attach_audit_trail recorded everything and committed it to the sink.
            seconds = time.perf_counter() - started
    audit = auditor.statistics()
    overflow = "block" if audit.mode == "lossless" else "drop_oldest"
    rows = [("audit", audit.seen, audit.lagged, overflow)]
    for sub in (requests, view):
        stats = sub.statistics()
        rows.append((stats.name, stats.delivered, stats.lagged, stats.overflow))
    return _DemoResult(
        published=bus.statistics().published,
        seconds=seconds,
        subscriptions=rows,
        trail_entries=len(trail),
        trail_evicted=trail.statistics().evicted,
        last=trail.last(10),
        resumed=resumed,
    )


def _run_demo(args: argparse.Namespace) -> int:
    from audit.sinks import verify_sink

    with tempfile.TemporaryDirectory(prefix="eventbus-demo-") as tmp:
        db: Path = args.db if args.db is not None else Path(tmp) / "audit.sqlite3"
        keep = args.db is not None
        resume = db.exists() and db.stat().st_size > 0
        if db.is_dir():
            raise _Failure(f"--db {db} is a directory")
        if resume:
            _check_audit_sqlite(db)
        try:
            result = anyio.run(_demo, args.agents, args.events, db, resume)
        except Exception as exc:
            leaf = _leaves(exc)[0]
            if isinstance(leaf, sqlite3.Error | OSError):
                raise _Failure(f"the audit store {db} failed: {leaf}") from None
            if isinstance(leaf, ValueError) and resume:  # a broken chain cannot be resumed
                raise _Failure(f"cannot resume the audit store {db}: {leaf}") from None
            raise
        out = sys.stdout
        store = "temporary; pass --db PATH to keep it" if not keep else "kept"
        print(
            f"supervisor demo: {args.agents} agents, audit trail on SQLite at {db} ({store})",
            file=out,
        )
        rate = result.published / result.seconds if result.seconds > 0 else 0.0
        print(
            f"published {result.published} events in {result.seconds:.2f} s "
            f"({rate:,.0f} events/s, audit store included)",
            file=out,
        )
        print(file=out)
        header = ("subscription", "delivered", "lagged", "overflow")
        table = [header] + [(n, str(d), str(lag), o) for n, d, lag, o in result.subscriptions]
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        for name, delivered, lagged, overflow in table:
            print(
                f"  {name:<{widths[0]}}  {delivered:>{widths[1]}}  {lagged:>{widths[2]}}  "
                f"{overflow}",
                file=out,
            )
        count, first, last = _sqlite_counts(db)
        bad = verify_sink(db)
        chain = "hash chain intact" if bad is None else f"hash chain BROKEN at seq {bad}"
        resumed = f", {result.resumed} resumed from the store" if result.resumed else ""
        evicted = (
            f" (the newest: it evicted {result.trail_evicted}, all kept in the store)"
            if result.trail_evicted
            else ""
        )
        lost = result.subscriptions[0][2]
        missing = f"; {lost} events never reached it (see EventsDropped)" if lost else ""
        print(file=out)
        print(
            f"audit: {result.trail_entries} entries in the trail{resumed}{evicted}; "
            f"{count} in the store (seq {first}..{last}), {chain}{missing}",
            file=out,
        )
        print(f"last {len(result.last)} entries:", file=out)
        _print_entries(result.last, out)
        if keep:
            print(f"\nquery it:  {_PROG} audit show {db} --actor session:demo-1", file=out)
            print(f"verify it: {_PROG} audit verify {db}", file=out)
        out.flush()
        return 0 if bad is None else 1


# -- schema --------------------------------------------------------------------------------


def _run_schema(args: argparse.Namespace) -> int:
    from . import schema

    if args.write is not None:
        target: Path = args.write
        if target.exists() and not target.is_dir():
            raise _Failure(f"cannot write the schemas to {target}: not a directory")
        try:
            changed = schema.write(target)
        except OSError as exc:
            reason = exc.strerror or exc
            raise _Failure(f"cannot write the schemas to {target}: {reason}") from None
        what = ", ".join(changed) if changed else "nothing changed"
        print(f"wrote {target}: {what}")
        return 0
    if args.check is not None:
        folder: Path = args.check
        if not folder.is_dir():
            raise _Failure(f"no such directory: {folder} (generate it with --write {folder})")
        stale = schema.check(folder)
        if stale:
            raise _Failure(
                f"{folder} is stale: {', '.join(stale)} "
                f"(regenerate with '{_PROG} schema --write {folder}')"
            )
        print(f"{folder}: up to date")
        return 0
    sys.stdout.write(schema.render_schema("kernel_event"))
    return 0
