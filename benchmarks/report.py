"""The results file: machine, targets, ratios (per repeat, then median), then the figures."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
from typing import Any

from .common import ratios, spread
from .systems import FLOORS, OUR_VARIANTS, OURS, SYSTEMS

LABELS = {s.name: s.label for s in SYSTEMS}
PEERS = [s.name for s in SYSTEMS if s.name not in (*FLOORS, OURS, *OUR_VARIANTS)]
PACKAGES = (
    "kernel-eventbus",
    "anyio",
    "msgspec",
    "structlog",
    "pyee",
    "blinker",
    "aiopubsub",
    "bubus",
    "pydantic",
)


def machine() -> dict[str, Any]:
    """CPU model, cores, Python and the versions of every package measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "commit": _commit(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "loop": "asyncio (default selector loop)",
        "packages": versions,
    }


def _commit() -> str | None:
    """The measured checkout's commit (``+dirty`` with uncommitted changes outside
    ``benchmarks/results/``, which a run rewrites), or ``None`` outside a git checkout."""
    git = ["git", "-C", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    status = ["status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"]
    try:
        head, dirty = (
            subprocess.run(
                git + args, capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            for args in (["rev-parse", "--short", "HEAD"], status)
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


# -- formatting -----------------------------------------------------------------------------


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    if unit == "/s":
        if x >= 1e6:
            return f"{x / 1e6:.2f} M/s"
        if x >= 1e3:
            return f"{x / 1e3:.1f} k/s"
        return f"{x:.0f} /s"
    if unit == "ns":
        if x >= 1e6:
            return f"{x / 1e6:.2f} ms"
        if x >= 1e4:
            return f"{x / 1e3:.1f} µs"
        return f"{x:,.0f} ns"
    if unit == "B":
        if abs(x) >= 2**20:
            return f"{x / 2**20:.1f} MiB"
        if abs(x) >= 10 * 2**10:
            return f"{x / 2**10:.0f} KiB"
        return f"{x:,.0f} B"
    return f"{x:.2f}"


def _cell(values: list[Any] | None, unit: str = "") -> str:
    vals = [v for v in (values or []) if v is not None]
    if not vals:
        return "—"
    s = spread(vals)
    if len(vals) == 1:
        return _num(s["median"], unit)
    return f"{_num(s['median'], unit)} ({_num(s['min'], unit)}-{_num(s['max'], unit)})"


def _ratio_cell(rs: list[float] | None) -> str:
    if not rs:
        return "—"
    s = spread(rs)
    if len(rs) == 1:
        return f"{s['median']:.2f}x"
    return f"**{s['median']:.2f}x** ({s['min']:.2f}-{s['max']:.2f})"


def _per_repeat(rs: list[float] | None) -> str:
    if not rs:
        return "—"
    return " ".join(f"{r:.2f}" for r in rs) + f" → **{statistics.median(rs):.2f}**"


def _med(rs: list[float] | None) -> float | None:
    return statistics.median(rs) if rs else None


# -- targets --------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 7 that this run measures, with the ratios and a verdict."""
    rows: list[dict[str, Any]] = []

    def add(
        workload: str, target: str, rs: list[float] | None, ok: bool | None, note: str = ""
    ) -> None:
        rows.append(
            {"workload": workload, "target": target, "ratios": rs, "met": ok, "note": note}
        )

    a = results.get("A")
    if a:
        for s, floor_min in (("1", 0.6), ("10", 0.85), ("100", 0.85)):
            case = a["cases"].get(s)
            if not case:
                continue
            d = case["deliveries_per_s"]
            rs = ratios(d.get(OURS, []), d.get("floor_i", []))
            m = _med(rs)
            add(
                f"A S={s}",
                f"deliveries/s >= {floor_min} x floor (i)",
                rs,
                None if m is None else m >= floor_min,
            )
        case = a["cases"].get("100")
        if case:
            p = case["publish_ns"]
            better = [
                min(x, y) if x is not None and y is not None else None
                for x, y in zip(p.get("floor_i", []), p.get("floor_ii", []), strict=False)
            ]
            rs = ratios(p.get(OURS, []), better)
            m = _med(rs)
            add(
                "A S=100",
                "publish ns/event <= 1.5 x the better floor",
                rs,
                None if m is None else m <= 1.5,
            )
    b = results.get("B")
    if b:
        for s, case in b["cases"].items():
            for key in ("p50_ns", "p99_ns"):
                rs = ratios(case[key].get(OURS, []), case[key].get("floor_i", []))
                m = _med(rs)
                add(
                    f"B S={s}",
                    f"latency {key[:3]} <= 1.2 x floor (i)",
                    rs,
                    None if m is None else m <= 1.2,
                )
    for w, key, metric in (("A", "deliveries_per_s", "deliveries/s"), ("B", "p50_ns", "p50")):
        cases = results[w]["cases"] if w in results else {}
        for s, case in cases.items():
            for variant in OUR_VARIANTS:
                rs = ratios(case[key].get(variant, []), case[key].get("floor_i", []))
                if rs:
                    add(f"{w} S={s}", f"{variant} {metric} x floor (i)", rs, None, "(no target)")
    for w, key, metric, higher in (
        ("A", "deliveries_per_s", "deliveries/s", True),
        ("B", "p50_ns", "latency p50", False),
        ("B", "p99_ns", "latency p99", False),
    ):
        res = results.get(w)
        if not res:
            continue
        for s, case in res["cases"].items():
            beaten = []
            measured = []
            for peer in PEERS:
                rs = ratios(case[key].get(OURS, []), case[key].get(peer, []))
                m = _med(rs)
                if m is None:
                    continue
                measured.append(peer)
                if (m < 1.0) if higher else (m > 1.0):
                    beaten.append(f"{peer} ({m:.2f}x)")
            if measured:
                add(
                    f"{w} S={s}",
                    f"{metric}: better than every peer",
                    None,
                    not beaten,
                    "beaten by " + ", ".join(beaten)
                    if beaten
                    else f"better than all {len(measured)} peers measured",
                )
    c = results.get("C")
    if c and OURS in c["systems"]:
        r = c["systems"][OURS]
        problems = []
        if r.get("status") != "flat":
            problems.append(f"status {r.get('status')}")
        if r.get("published") != c["events"]:
            problems.append(f"published {r.get('published')} of {c['events']}")
        if any(h != r.get("published") for h in r.get("healthy_delivered", [None])):
            problems.append(f"healthy got {r.get('healthy_delivered')}")
        if r.get("stalled_lagged") != r.get("exact_lag"):
            problems.append(f"lag {r.get('stalled_lagged')} != exact {r.get('exact_lag')}")
        note = (
            f"{r.get('retained_per_event', 0):.3f} B retained/event, "
            f"traced peak {_num(r.get('traced_peak'), 'B')}, lag {r.get('stalled_lagged')}"
            if not problems
            else "; ".join(problems)
        )
        add(
            "C",
            "memory flat, never blocked, healthy get all, loss exact",
            None,
            not problems,
            note,
        )
    d = results.get("D")
    if d:
        rate = d["entries_per_s"]
        for ours, other, target, bound, higher in (
            (
                "queued",
                "floor_queued",
                "queued, no chain: entries/s >= 0.7 x the audit floor",
                0.7,
                True,
            ),
            (
                "inline",
                "floor_inline",
                "inline, no chain: entries/s >= 1.0 x the audit floor (inline: a callback)",
                1.0,
                True,
            ),
            (
                "queued",
                "queued_chain",
                "queued: the hash chain costs <= 2x (entries/s no chain / chain)",
                2.0,
                False,
            ),
            (
                "inline",
                "inline_chain",
                "inline: the hash chain costs <= 2x (entries/s no chain / chain)",
                2.0,
                False,
            ),
        ):
            if ours not in rate or other not in rate:
                continue
            rs = ratios(rate[ours], rate[other])
            m = _med(rs)
            ok = None if m is None else (m >= bound if higher else m <= bound)
            add(f"D {ours}", target, rs, ok)
        if "sqlite_chain" in rate and "queued_chain" in rate:
            add(
                "D sqlite",
                "queued, chain, SqliteSink: entries/s / queued chain without a sink (no target)",
                ratios(rate["sqlite_chain"], rate["queued_chain"]),
                None,
                f"{_num(_med(_present(rate['sqlite_chain'])), '/s')}, reported",
            )
    e = results.get("E")
    if e and "pydantic_json" in e["total_ns"]:
        rs = ratios(e["total_ns"]["pydantic_json"], e["total_ns"]["msgspec_json"])
        m = _med(rs)
        add(
            "E",
            "msgspec encode+decode >= 3x faster than pydantic (pydantic/msgspec)",
            rs,
            None if m is None else m >= 3.0,
        )
    f = results.get("F")
    if f:
        lin = linearity(f, OURS)
        if lin is not None:
            add(
                "F",
                "publish cost linear in subscriptions (per-subscription cost at the "
                "largest size / at the smallest <= 2)",
                [lin],
                lin <= 2.0,
                f"{_num(_med_of(f, OURS, 'bytes_per_sub'), 'B')} per idle subscription",
            )
    return rows


def _present(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _med_of(f: dict[str, Any], system: str, key: str) -> float | None:
    largest = list(f["cases"])[-1]
    vals = [v for v in f["cases"][largest][key].get(system, []) if v is not None]
    return statistics.median(vals) if vals else None


def linearity(f: dict[str, Any], system: str) -> float | None:
    """Median publish ns per subscription at the largest size over that at the smallest."""
    sizes = list(f["cases"])
    per_sub = []
    for n in (sizes[0], sizes[-1]):
        vals = [v for v in f["cases"][n]["publish_ns"].get(system, []) if v is not None]
        if not vals:
            return None
        per_sub.append(statistics.median(vals) / int(n))
    return per_sub[1] / per_sub[0]


# -- the document ---------------------------------------------------------------------------


def _systems_in(case_metric: dict[str, Any]) -> list[str]:
    return [s.name for s in SYSTEMS if s.name in case_metric]


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    m = meta["machine"]
    out: list[str] = []
    w = out.append
    w(f"# Benchmarks: {meta['date']}, {meta['mode']} run\n")
    w(f"Command: `{meta['command']}` — {meta['seconds']:.0f} s in all.\n")
    if m.get("commit"):
        w(f"Commit: `{m['commit']}`.\n")
    w(f"Machine: {m['cpu']}, {m['cores']} cores, {m['python']}, {m['platform']}, {m['loop']}.\n")
    w("Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v) + ".\n")
    missing = [k for k, v in m["packages"].items() if not v]
    if missing:
        w("Not installed: " + ", ".join(missing) + ".\n")
    w(
        f"Repeats: {meta['repeats']} per workload, systems interleaved (order rotated each "
        "repeat), a fresh event loop per trial. Figures: median (min-max) over repeats. "
        "Ratios are eventbus / other, computed per repeat, then the median (min-max) of those. "
        "On a shared 2-core machine the absolute figures are noise; the ratios are what count.\n"
    )
    if meta.get("skipped"):
        w("Systems skipped: " + "; ".join(f"{k}: {v}" for k, v in meta["skipped"].items()) + ".\n")

    rows = targets(results)
    if rows:
        w("## Targets of issue 7\n")
        w("| workload | target | measured: eventbus ratio, median (min-max) | met |")
        w("| --- | --- | --- | --- |")
        for r in rows:
            verdict = {True: "yes", False: "**NO**", None: "n/a"}[r["met"]]
            measured = _ratio_cell(r["ratios"]) if r["ratios"] else ""
            if r["note"]:
                measured = f"{measured} {r['note']}".strip()
            w(f"| {r['workload']} | {r['target']} | {measured} | {verdict} |")
        w("")

    if "A" in results:
        _render_ratio_metric(
            w,
            results["A"],
            "A",
            "deliveries_per_s",
            "A: deliveries/s, eventbus / other (> 1: eventbus faster)",
            "/s",
        )
        _render_ratio_metric(
            w,
            results["A"],
            "A",
            "publish_ns",
            "A: publish ns/event, eventbus / other (< 1: eventbus cheaper)",
            "ns",
        )
    if "B" in results:
        for key in ("p50_ns", "p99_ns"):
            _render_ratio_metric(
                w,
                results["B"],
                "B",
                key,
                f"B: latency {key[:3]}, eventbus / other (< 1: eventbus faster)",
                "ns",
            )
    if "C" in results:
        _render_c(w, results["C"])
    if "D" in results:
        _render_d(w, results["D"])
    if "E" in results:
        _render_e(w, results["E"])
    if "F" in results:
        _render_f(w, results["F"])
    return "\n".join(out) + "\n"


def _render_ratio_metric(
    w: Any, res: dict[str, Any], name: str, key: str, title: str, unit: str
) -> None:
    cases = res["cases"]
    first = next(iter(cases.values()))
    systems = _systems_in(first[key])
    others = [s for s in systems if s != OURS]
    w(f"## {title}\n")
    w("| S | " + " | ".join(LABELS[s] for s in others) + " |")
    w("| --- |" + " --- |" * len(others))
    for s, case in cases.items():
        cells = [
            _ratio_cell(ratios(case[key].get(OURS, []), case[key].get(o, []))) for o in others
        ]
        w(f"| {s} | " + " | ".join(cells) + " |")
    w("")
    w("Per repeat, against the floors:\n")
    w("| S | vs floor (i) | vs floor (ii) |")
    w("| --- | --- | --- |")
    for s, case in cases.items():
        w(
            f"| {s} | "
            + " | ".join(
                _per_repeat(ratios(case[key].get(OURS, []), case[key].get(f, []))) for f in FLOORS
            )
            + " |"
        )
    w("")
    w(f"Figures ({key.replace('_', ' ')}), and each system's ratio to floor (i):\n")
    header = " | ".join(f"S={s}" for s in cases)
    w(f"| system | {header} |")
    w("| --- |" + " --- |" * len(cases))
    for sysname in systems:
        cells = []
        for case in cases.values():
            vals = case[key].get(sysname)
            err = case.get("errors", {}).get(sysname)
            if err and not any(v is not None for v in vals or []):
                cells.append(f"error: {err[:80]}")
                continue
            r = _med(ratios(vals or [], case[key].get("floor_i", [])))
            extra = f" = {r:.2f}x floor (i)" if r is not None else ""
            n = case["events"].get(sysname)
            cells.append(f"{_cell(vals, unit)}{extra}, {n} events")
        w(f"| {LABELS[sysname]} | " + " | ".join(cells) + " |")
    lost = {s: v for case in cases.values() for s, v in case.get("lost", {}).items() if v}
    if lost:
        w(f"\nLost deliveries (should be none): {lost}")
    w("")


def _render_c(w: Any, c: dict[str, Any]) -> None:
    w(f"## C: one stalled subscriber, {c['events']:,} events, capacity {c['capacity']}\n")
    w(
        "Two healthy consumers and one that never reads; traced memory under tracemalloc, RSS "
        "from /proc (each system in its own process). Retained/event is the traced-memory slope "
        "past the 10% mark.\n"
    )
    w(
        "| system | outcome | published | retained/event | traced peak | RSS peak growth | "
        "healthy got | stalled lag counted (exact) |"
    )
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in [s.name for s in SYSTEMS if s.name in c["systems"]]:
        r = c["systems"][name]
        if r.get("status") == "error":
            w(f"| {LABELS[name]} | error: {str(r.get('error'))[:120]} | | | | | | |")
            continue
        outcome = r["status"]
        if r.get("error"):
            outcome += f" ({r['error'][:80]})"
        if outcome == "grows":
            outcome += (
                f" (stopped at {r['published']:,} events)" if r["published"] < r["events"] else ""
            )
        lag = r.get("stalled_lagged")
        lag_s = "not counted" if lag is None else f"{lag:,} ({r['exact_lag']:,})"
        ret = r.get("retained_per_event")
        w(
            f"| {LABELS[name]} | {outcome} | {r['published']:,} | "
            f"{'—' if ret is None else f'{ret:,.1f} B'} | {_num(r['traced_peak'], 'B')} | "
            f"{_num(r['rss_peak_growth'], 'B')} | {r['healthy_delivered']} | {lag_s} |"
        )
    w("")


def _render_d(w: Any, d: dict[str, Any]) -> None:
    rate, pub = d["entries_per_s"], d["publish_ns"]
    w(
        f"## D: audit entries/s through `attach_audit_trail`, trail capacity "
        f"{d['trail_capacity']:,}, subscription capacity {d['capacity']}\n"
    )
    w(
        "Mixed catalogue events (tool call started/finished, token usage, agent started; 1 tool "
        f"call in 16 carries a secret header), bursts of {d['batch']} then one yield. Entries/s: "
        "events / (first publish .. `flush()` returned, or the floor's consumer done). The ratio "
        "is to the variant's floor (`floor_inline` for the inline modes, else `floor_queued`), "
        "per repeat, then the median; publish ns/event includes the recording for inline.\n"
    )
    w(
        "| variant | entries/s | / its floor | chain cost: no chain / chain | "
        "publish ns/event | events |"
    )
    w("| --- | --- | --- | --- | --- | --- |")
    for name, label in d["labels"].items():
        err = d["errors"].get(name)
        if err and not _present(rate[name]):
            w(f"| `{name}`: {label} | error: {err[:120]} | | | | |")
            continue
        floor = d["floors"].get(name)
        to_floor = _ratio_cell(ratios(rate[name], rate[floor])) if floor in rate else "—"
        plain = name.removesuffix("_chain")
        chain_cost = (
            _ratio_cell(ratios(rate[plain], rate[name]))
            if name.endswith("_chain") and plain in rate
            else "—"
        )
        w(
            f"| `{name}`: {label} | {_cell(rate[name], '/s')} | {to_floor} | {chain_cost} | "
            f"{_cell(pub[name], 'ns')} | {d['events'][name]:,} |"
        )
    w("")
    w("Per repeat, against the floor:\n")
    w("| variant | entries/s / floor, per repeat → median |")
    w("| --- | --- |")
    for name, floor in d["floors"].items():
        if floor in rate:
            w(f"| `{name}` / `{floor}` | {_per_repeat(ratios(rate[name], rate[floor]))} |")
    if "queued" in rate and "floor_queued_json" in rate:
        rs = ratios(rate["queued"], rate["floor_queued_json"])
        w(f"| `queued` / `floor_queued_json` (reported only) | {_per_repeat(rs)} |")
    errors = {k: v for k, v in d["errors"].items() if _present(rate[k])}
    if errors:
        w(f"\nErrors (a correctness check failed or a trial raised): {errors}")
    w("")


def _render_e(w: Any, e: dict[str, Any]) -> None:
    w(f"## E: codecs, {e['events']} mixed events, JSON encode + decode through the union\n")
    names = list(e["total_ns"])
    w("| codec | encode ns/event | decode ns/event | encode+decode ns/event | pydantic / this |")
    w("| --- | --- | --- | --- | --- |")
    for n in names:
        r = (
            ratios(e["total_ns"].get("pydantic_json", []), e["total_ns"][n])
            if "pydantic_json" in e["total_ns"]
            else None
        )
        w(
            f"| {n} | {_cell(e['encode_ns'][n], 'ns')} | {_cell(e['decode_ns'][n], 'ns')} | "
            f"{_cell(e['total_ns'][n], 'ns')} | {_ratio_cell(r)} |"
        )
    for m in e.get("missing", []):
        w(f"\nNot measured: {m}.")
    w("")


def _render_f(w: Any, f: dict[str, Any]) -> None:
    sizes = list(f["cases"])
    w(f"## F: idle subscriptions at {', '.join(sizes)}\n")
    w(
        "Publish ns/event (median), ns per subscription in brackets; settle is the time until "
        "callback systems have run their handlers.\n"
    )
    first = f["cases"][sizes[0]]
    systems = _systems_in(first["publish_ns"])
    w(
        "| system | "
        + " | ".join(f"publish, n={n}" for n in sizes)
        + " | per-sub cost largest/smallest | bytes per idle subscription | settle ns/event "
        f"at n={sizes[-1]} |"
    )
    w("| --- |" + " --- |" * (len(sizes) + 3))
    notes: dict[str, str] = {}
    for name in systems:
        cells = []
        for n in sizes:
            case = f["cases"][n]
            vals = [v for v in case["publish_ns"].get(name, []) if v is not None]
            if not vals:
                err = case["errors"].get(name, "")
                if err:
                    notes[name] = err
                cells.append("— (see below)" if err else "—")
                continue
            med = statistics.median(vals)
            cells.append(f"{_num(med, 'ns')} ({med / int(n):.0f} ns)")
        lin = linearity(f, name)
        mem = None
        for n in reversed(sizes):
            vals = [v for v in f["cases"][n]["bytes_per_sub"].get(name, []) if v is not None]
            if vals:
                mem = statistics.median(vals)
                break
        settle = [v for v in f["cases"][sizes[-1]]["settle_ns"].get(name, []) if v is not None]
        w(
            f"| {LABELS[name]} | "
            + " | ".join(cells)
            + f" | {'—' if lin is None else f'{lin:.2f}'} | {_num(mem, 'B')} | "
            f"{_num(statistics.median(settle), 'ns') if settle else '—'} |"
        )
    w("")


def summary(results: dict[str, Any]) -> str:
    """The stdout summary: the targets, then the headline ratios."""
    lines = [
        f"kernel-eventbus benchmarks ({results['meta']['mode']}, "
        f"{results['meta']['seconds']:.0f} s)"
    ]
    for r in targets(results):
        verdict = {True: "met", False: "MISSED", None: "n/a"}[r["met"]]
        rs = r["ratios"]
        ratio = ""
        if rs:
            s = spread(rs)
            ratio = f"{s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f})"
        lines.append(f"  [{verdict:6}] {r['workload']:8} {r['target']}: {ratio} {r['note']}")
    return "\n".join(lines)
