"""The README is part of the product: its commands, its quickstart and its tables are true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from eventbus.schema import catalogue_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README, re.S | re.M)


def test_readme_opens_with_the_demo_and_the_test_commands_and_ci_runs_the_second() -> None:
    first = _blocks("sh")[0].splitlines()
    assert README.index("```sh") < README.index("\n## ")
    assert len(first) == 2
    assert first[0].endswith("python -m eventbus demo")
    assert first[1].endswith("python -m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert first[1] in ci.splitlines()


def test_the_quickstart_runs_as_written() -> None:
    section = README.split("## Quickstart", 1)[1]
    code = re.search(r"^```python\n(.*?)^```$", section, re.S | re.M)
    assert code is not None
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("AgentStopped(")
    assert re.fullmatch(r"1 \S+ AgentSpawn\(task_type='started'\)", lines[1])
    assert re.fullmatch(r"2 \S+ AgentExit\(reason='completed'\)", lines[2])


def test_the_event_catalogue_table_is_the_generated_one() -> None:
    table = README.split("<!-- catalogue:start -->\n", 1)[1].split("\n<!-- catalogue:end -->")[0]
    assert table == catalogue_table().strip()
