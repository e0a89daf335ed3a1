"""``python -m benchmarks [--quick | --full] [--workloads A,B,...] [--systems ...]``."""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time
from dataclasses import replace
from typing import Any

from . import audit, codecs, latency, scale, stall, throughput
from .common import FULL, QUICK, progress, quiet_logs
from .report import machine, render, summary
from .systems import by_name

#: Workload letter -> runner.
WORKLOADS: dict[str, Any] = {
    "A": throughput.run,
    "B": latency.run,
    "C": stall.run,
    "D": lambda cfg, systems: audit.run(cfg),
    "E": lambda cfg, systems: codecs.run(cfg),
    "F": scale.run,
}

RESULTS = pathlib.Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    mode.add_argument("--full", action="store_true", help="the full run (the default)")
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help="comma-separated letters (default: all of %(default)s)",
    )
    parser.add_argument(
        "--systems",
        default=None,
        help="comma-separated system names (default: every installed one)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats per workload (>= 5)")
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=RESULTS,
        help="directory for the results files (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    cfg = QUICK if args.quick else FULL
    if args.repeats is not None:
        cfg = replace(cfg, repeats=args.repeats)
    letters = [x.strip().upper() for x in args.workloads.split(",") if x.strip()]
    unknown = [x for x in letters if x not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; known: {sorted(WORKLOADS)}")
    try:
        wanted = by_name(args.systems.split(",") if args.systems else None)
    except ValueError as exc:
        parser.error(str(exc))
    systems, skipped = [], {}
    for s in wanted:
        reason = s.missing()
        if reason:
            skipped[s.name] = reason
        else:
            systems.append(s)

    quiet_logs()
    started = time.monotonic()
    results: dict[str, Any] = {}
    for letter in letters:
        progress(f"workload {letter} ...")
        results[letter] = WORKLOADS[letter](cfg, systems)
    date = datetime.date.today().isoformat()
    results["meta"] = {
        "date": date,
        "mode": cfg.mode,
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "repeats": cfg.repeats,
        "seconds": time.monotonic() - started,
        "machine": machine(),
        "config": {k: v for k, v in cfg.__dict__.items() if k != "extra"},
        "skipped": skipped,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{date}-{cfg.mode}"
    stem.with_suffix(".md").write_text(render(results))
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(summary(results))
    print(f"written: {stem}.md and {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
