"""Every script in ``examples/`` runs as a user would run it, within a time bound.

Each is run as a subprocess (``python examples/NAME.py``) from an empty directory; the checks
read what it prints. ``examples/test_with_audit.py`` is a pytest file and is run through
pytest as well. The examples are type-checked by ``.ci/run`` (``mypy --strict examples/``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: Generous: the machine running the suite may be busy; each example takes well under 5 s.
TIME_BOUND = 60


def run(
    name: str, *args: str, cwd: Path, timeout: float = TIME_BOUND
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def all_examples() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("name", all_examples())
def test_every_example_runs_cleanly(name: str, tmp_path: Path) -> None:
    run(name, cwd=tmp_path)


def test_the_examples_the_readme_names_exist() -> None:
    assert {
        "quickstart.py",
        "custom_consumer.py",
        "threads.py",
        "logging_setup.py",
        "supervisor.py",
        "test_with_audit.py",
    } <= set(all_examples())


def test_quickstart_shows_the_losses_of_the_small_subscription(tmp_path: Path) -> None:
    out = run("quickstart.py", cwd=tmp_path).stdout
    assert [f"everything got seq={n} grep" for n in range(1, 6)] == re.findall(
        r"everything got seq=\d+ grep", out
    )
    assert "newest holds [4, 5]" in out
    assert "lagged=3" in out


def test_custom_consumer_shows_lag_filters_and_a_lossless_consumer(tmp_path: Path) -> None:
    out = run("custom_consumer.py", cwd=tmp_path).stdout
    # agent-1's 10 updates into a 3-slot drop_oldest queue; agent-2's are filtered out.
    assert "dashboard: skipped 7 stale update(s)" in out
    assert re.findall(r"dashboard: seq=\d+ +crawl (\d+)%", out) == ["80", "90", "100"]
    assert "index" not in "".join(line for line in out.splitlines() if "dashboard:" in line)
    assert re.findall(r"alerts: +seq=\d+ +index: (E\d)", out) == ["E0", "E1", "E2", "E3", "E4"]
    assert re.search(r"^dashboard delivered=3 lagged=7 high_water_mark=3/3", out, re.M)
    assert re.search(r"^alerts +delivered=5 lagged=0 high_water_mark=2/2", out, re.M)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_threads_publish_safely_from_worker_threads(backend: str, tmp_path: Path) -> None:
    out = run("threads.py", backend, cwd=tmp_path).stdout
    assert "worker 0: publish() from a worker thread refused: publish() was called" in out
    assert "published 1000 events from 4 threads" in out
    assert "collector delivered=1000 lagged=0" in out
    assert "last step per worker: {0: 249, 1: 249, 2: 249, 3: 249}" in out


def test_logging_setup_logs_one_record_per_lag_burst(tmp_path: Path) -> None:
    out = run("logging_setup.py", cwd=tmp_path).stdout
    records = [json.loads(line) for line in out.splitlines()]
    events = [r["event"] for r in records]
    assert events == [
        "supervisor_started",
        "subscription_lagged",
        "subscription_lag_recovered",
        "consumer_resumed",
    ]
    lagged, recovered = records[1], records[2]
    assert (lagged["level"], lagged["name"], lagged["overflow"]) == (
        "warning",
        "slow_consumer",
        "drop_oldest",
    )
    assert recovered["lagged"] == 990
    assert all(r["run"] == "demo-1" and "timestamp" in r for r in records)


def test_logging_setup_has_a_console_mode(tmp_path: Path) -> None:
    out = run("logging_setup.py", "--console", cwd=tmp_path).stdout
    assert re.search(r"\[warning +\] subscription_lagged +max_buffer_size=10", out)


def test_only_applications_configure_structlog() -> None:
    """The library never configures structlog; the logging example and the CLI (an
    application, which sends records to stderr while a command runs) are the only ones."""
    configuring = sorted(
        str(path.relative_to(ROOT))
        for folder in ("eventbus", "audit", "examples")
        for path in (ROOT / folder).rglob("*.py")
        if "structlog.configure(" in path.read_text(encoding="utf-8")
    )
    assert configuring == ["eventbus/_cli.py", "examples/logging_setup.py"]


def test_supervisor_audits_every_event_into_sqlite_and_resumes(tmp_path: Path) -> None:
    out = run("supervisor.py", cwd=tmp_path).stdout
    assert "coder: shell 'rm -rf build/' denied" in out
    match = re.search(r"published (\d+) events; trail holds (\d+) entries", out)
    assert match is not None
    published, held = int(match.group(1)), int(match.group(2))
    assert published == held > 20
    assert "(0 restored from supervisor-audit.sqlite3, " in out
    rows = re.findall(r"^ +(\d+)  (\S+) +(\w+) +(\w+)$", out, re.M)
    assert [int(r[0]) for r in rows] == list(range(1, published + 1))
    actions = {r[2] for r in rows}
    assert {"AgentSpawn", "AgentExit", "MemoryRead", "MemoryWrite"} <= actions
    assert "secrets in the trail: 0" in out
    assert "store supervisor-audit.sqlite3: intact" in out
    assert (tmp_path / "supervisor-audit.sqlite3").exists()

    again = run("supervisor.py", cwd=tmp_path).stdout
    assert f"trail holds {2 * published} entries" in again
    assert f"({published} restored from supervisor-audit.sqlite3, {published} new)" in again
    assert "store supervisor-audit.sqlite3: intact" in again


def test_test_with_audit_passes_under_pytest(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(EXAMPLES / "test_with_audit.py"),
        ],
        capture_output=True,
        text=True,
        timeout=TIME_BOUND,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"(\d+) passed", result.stdout)
    assert match is not None
    assert int(match.group(1)) >= 4
    assert "failed" not in result.stdout and "error" not in result.stdout
