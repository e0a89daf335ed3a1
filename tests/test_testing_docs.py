"""Every example in ``eventbus.testing``'s docstrings runs, against the real event classes.

An example is a ``::`` literal block. Each one runs as the body of an async function, with the
names its module docstring promises: ``bus`` (a fresh bus), ``agent_id``, ``supervisor`` (a
stand-in for the user's code under test that publishes real kernel events), the public names
of ``eventbus.testing`` and of ``eventbus.events``. A renamed class or field in an example
fails here (a ``where`` predicate on a missing field fails its ``expect``).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import uuid
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import eventbus.events
import eventbus.testing
from eventbus import EventBus
from eventbus.events import AgentStarted, AgentStopped, ToolExecutionFinished, ToolExecutionStarted

pytestmark = pytest.mark.anyio

AGENT = uuid.UUID("00000000-0000-4000-8000-00000000000a")


def literal_blocks(doc: str | None) -> list[str]:
    """The ``::`` literal blocks of a docstring, dedented, in order."""
    lines = inspect.cleandoc(doc or "").splitlines()
    blocks: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.rstrip().endswith("::"):
            continue
        indent = len(line) - len(line.lstrip())
        if line.lstrip().startswith(("* ", "- ")):
            indent += 2  # a list item's text is indented past its bullet
        block: list[str] = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            block.append(lines[i])
            i += 1
        blocks.append(textwrap.dedent("\n".join(block)).strip("\n") + "\n")
    return blocks


def _documented() -> list[tuple[str, str | None]]:
    """(where, docstring) of the module, its public names and their own members."""
    module = eventbus.testing
    docs: list[tuple[str, str | None]] = [("eventbus.testing", module.__doc__)]
    for name in module.__all__:
        obj = getattr(module, name)
        docs.append((name, obj.__doc__))
        if isinstance(obj, type):
            docs.extend(
                (f"{name}.{attr}", getattr(value, "__doc__", None))
                for attr, value in vars(obj).items()
                if not attr.startswith("_")
            )
    return docs


EXAMPLES = [
    pytest.param(block, id=f"{where}-{n}")
    for where, doc in _documented()
    for n, block in enumerate(literal_blocks(doc), 1)
]


class Supervisor:
    """The code under test the examples call: it publishes what their comments say."""

    def __init__(self, bus: EventBus[Any]) -> None:
        self._bus = bus

    async def run(self, agent_id: uuid.UUID) -> None:
        self._bus.publish(AgentStarted(id=agent_id))
        await anyio.lowlevel.checkpoint()
        self._bus.publish(AgentStopped(id=agent_id, success=True))

    async def run_tool(self, name: str) -> None:
        async def tool() -> None:  # the event comes from another task
            self._bus.publish(
                ToolExecutionStarted(
                    session_id="s1", tool_name=name, tool_call_id="c1", tool_args={"q": "x"}
                )
            )
            await anyio.lowlevel.checkpoint()
            self._bus.publish(
                ToolExecutionFinished(
                    session_id="s1",
                    tool_call_id="c1",
                    tool_name=name,
                    duration_ms=3,
                    is_error=False,
                    output_summary="2 matches",
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(tool)

    async def stop(self, agent_id: uuid.UUID) -> None:
        await anyio.lowlevel.checkpoint()
        self._bus.publish(AgentStopped(id=agent_id))


def test_the_module_documents_examples_for_each_kind_of_helper() -> None:
    ids = [p.id for p in EXAMPLES]
    for where in ("eventbus.testing-1", "eventbus.testing-2", "expect-1", "capture_events-1"):
        assert where in ids
    assert "assert_received-1" in ids
    assert "assert_audited-1" in ids


def test_literal_blocks_end_where_the_indentation_does() -> None:
    doc = """Intro.

    * item::

          a = 1

          b = 2

      after the block.

    Plain text::

        c = 3
    """
    assert literal_blocks(doc) == ["a = 1\n\nb = 2\n", "c = 3\n"]


@pytest.mark.parametrize("example", EXAMPLES)
async def test_docstring_example_runs_as_written(example: str) -> None:
    bus = EventBus[Any]()
    namespace: dict[str, Any] = {
        **{name: getattr(eventbus.events, name) for name in eventbus.events.__all__},
        **{name: getattr(eventbus.testing, name) for name in eventbus.testing.__all__},
        "bus": bus,
        "agent_id": AGENT,
        "supervisor": Supervisor(bus),
    }
    code = compile(example, "<example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    with anyio.fail_after(5):
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            await result
    bus.close()
