"""The pytest plugin, used exactly as an outside project would use it (through ``pytester``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import eventbus._pytest_plugin as plugin

pytest_plugins = ["pytester"]

# An outside project's configuration: both anyio backends, warnings are errors.
CONFTEST = """
import pytest

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param
"""

INI = """
[pytest]
addopts = -p no:cacheprovider
filterwarnings = error
"""

EVENTS = """
import msgspec

class ToolCalled(msgspec.Struct, frozen=True, tag="tool_called"):
    tool: str

class ToolDone(msgspec.Struct, frozen=True, tag="tool_done"):
    tool: str
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    pytester.makepyfile(events=EVENTS)
    return pytester


def test_fixtures_are_found_without_any_configuration(project: pytest.Pytester) -> None:
    result = project.runpytest("--fixtures")
    # (pytest orders them by "path:line" as text, so each is matched on its own)
    for fixture in plugin.__all__:
        result.stdout.fnmatch_lines(
            ["*fixtures defined from eventbus._pytest_plugin*", f"{fixture} -- *"]
        )
    assert sorted(plugin.__all__) == [
        "audit_mapper",
        "audit_trail",
        "captured_events",
        "event_bus",
    ]


def test_event_bus_and_captured_events_on_both_backends(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_user="""
        import anyio
        import pytest
        from eventbus.testing import assert_received, expect
        from events import ToolCalled, ToolDone

        pytestmark = pytest.mark.anyio

        async def test_a_consumer_reacts(event_bus, captured_events):
            sub = event_bus.subscribe(kinds=[ToolCalled])

            async def consumer():
                async for envelope in sub:
                    event_bus.publish(ToolDone(tool=envelope.event.tool))

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(consumer)
                    done = expect(event_bus, ToolDone)
                    event_bus.publish(ToolCalled(tool="grep"))
                    assert (await done).event == ToolDone(tool="grep")
                    tg.cancel_scope.cancel()
            assert captured_events.kinds == ["tool_called", "tool_done"]

        def test_sync_tests_get_a_bus_too(event_bus, captured_events):
            sub = event_bus.subscribe()
            event_bus.publish(ToolCalled(tool="ls"))
            assert_received(sub, ToolCalled(tool="ls"))
            assert captured_events.of(ToolCalled) == [ToolCalled(tool="ls")]
        """
    )
    result = project.runpytest("-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_a_consumer_reacts?asyncio?*PASSED*"])
    result.stdout.fnmatch_lines(["*test_a_consumer_reacts?trio?*PASSED*"])


def test_each_test_gets_a_fresh_bus_closed_afterwards(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_fresh="""
        from events import ToolCalled

        buses = []

        def test_first(event_bus, captured_events):
            buses.append(event_bus)
            event_bus.publish(ToolCalled(tool="a"))
            assert event_bus.statistics().published == 1

        def test_second(event_bus, captured_events):
            assert buses[0].closed
            assert event_bus is not buses[0]
            assert not event_bus.closed
            assert captured_events.kinds == []
        """
    )
    project.runpytest().assert_outcomes(passed=2)


def test_failing_helpers_show_the_test_line_and_not_their_own(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_fails="""
        from events import ToolCalled
        from eventbus.testing import assert_empty

        def test_leftover(event_bus):
            sub = event_bus.subscribe(name="consumer")
            event_bus.publish(ToolCalled(tool="rm"))
            assert_empty(sub)  # the line the user must see
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*assert_empty(sub)  # the line the user must see",
            "E*AssertionError: expected 'consumer' to be empty, but 1 envelope(s) are buffered:",
            "E*seq=1 kind='tool_called' event=ToolCalled(tool='rm')",
        ]
    )
    result.stdout.no_fnmatch_line("*raise AssertionError(*")
    result.stdout.no_fnmatch_line("*eventbus/testing.py*")


def test_audit_trail_records_what_the_test_publishes_on_both_backends(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_audit="""
        import uuid
        import pytest
        from audit import AgentExit, AgentSpawn
        from eventbus.events import AgentStarted, AgentStopped, ToolExecutionStarted
        from eventbus.testing import assert_audited

        pytestmark = pytest.mark.anyio
        AGENT = uuid.UUID(int=7)

        async def test_the_trail_sees_everything(event_bus, audit_trail):
            event_bus.publish(AgentStarted(id=AGENT))
            event_bus.publish(
                ToolExecutionStarted(
                    session_id="s1", tool_name="http", tool_call_id="c1",
                    tool_args={"url": "https://x", "api_key": "sk-live-123"},
                )
            )
            event_bus.publish(AgentStopped(id=AGENT, success=False))
            await audit_trail.flush()
            assert_audited(audit_trail, actor=str(AGENT), action=AgentSpawn)
            assert_audited(audit_trail, actor=str(AGENT), action=AgentExit(reason="stopped"))
            [tool] = assert_audited(audit_trail, actor="session:s1")
            assert "sk-live-123" not in tool.resource
            assert audit_trail.trail.verify() is None
            assert len(audit_trail.trail) == 3

        async def test_each_test_gets_a_fresh_trail(event_bus, audit_trail):
            assert len(audit_trail.trail) == 0

        async def test_a_failing_assertion_shows_the_nearest_entries(event_bus, audit_trail):
            event_bus.publish(AgentStarted(id=AGENT))
            assert_audited(audit_trail, actor=str(AGENT), action=AgentExit)
        """
    )
    result = project.runpytest("-v")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: expected an audit entry with actor='00000000-0000-0000-0000-"
            "000000000007', action=AgentExit; none of the 1 entries matches; nearest:",
            "E*seq=1 actor='00000000-0000-0000-0000-000000000007' action=AgentSpawn(*"
            "(differs: action)",
        ]
    )
    result.stdout.no_fnmatch_line("*eventbus/testing.py*")


MY_EVENTS = """
from typing import ClassVar

from eventbus import Category, KernelEvent

class DeployFinished(KernelEvent, tag="deploy_finished", frozen=True, kw_only=True):
    category: ClassVar[Category] = Category.PROC
    service: str
    version: str
"""

AUDIT_A_DEPLOY = """
import uuid
import pytest
from audit import AgentSpawn
from eventbus.events import AgentStarted
from eventbus.testing import assert_audited
from myproject.events import DeployFinished

pytestmark = pytest.mark.anyio

async def test_deploy_is_audited(event_bus, audit_trail):
    event_bus.publish(DeployFinished(service="api", version="1.4.2"))
    event_bus.publish(AgentStarted(id=uuid.UUID(int=7)))
    await audit_trail.flush()
    [deploy] = assert_audited(audit_trail, kind="deploy_finished")
    print("deploy audited as", deploy.actor, deploy.action)
    assert_audited(audit_trail, actor=str(uuid.UUID(int=7)), action=AgentSpawn)
"""


def _docstring_example(fixture: str) -> str:
    from test_testing_docs import literal_blocks

    (block,) = literal_blocks(getattr(plugin, fixture).__doc__)
    return block


def _readme_conftest() -> str:
    from test_readme import _blocks

    (block,) = [b for b in _blocks("python") if "def audit_mapper" in b]
    return block


@pytest.mark.parametrize("source", ["docstring", "readme"])
def test_audit_mapper_overridden_in_a_conftest_maps_the_users_events(
    project: pytest.Pytester, source: str
) -> None:
    # The conftest.py is the documented one, as written.
    example = _readme_conftest() if source == "readme" else _docstring_example("audit_mapper")
    project.mkpydir("myproject").joinpath("events.py").write_text(MY_EVENTS)
    project.mkdir("custom").joinpath("conftest.py").write_text(example)
    project.path.joinpath("custom", "test_custom.py").write_text(AUDIT_A_DEPLOY)
    project.mkdir("default").joinpath("test_default.py").write_text(AUDIT_A_DEPLOY)
    result = project.runpytest("-v", "-s")
    result.assert_outcomes(passed=4)
    # with the conftest's mapper, on both backends; without it, the default mapper's Other
    custom = "deploy audited as system ProgramInstall(program='api', version='1.4.2')"
    default = "deploy audited as system Other(detail='deploy_finished')"
    assert result.stdout.str().count(custom) == 2
    assert result.stdout.str().count(default) == 2
    result.stdout.fnmatch_lines(
        ["custom/test_custom.py::*trio* deploy audited as*ProgramInstall*"]
    )


def test_an_audit_mapper_override_that_is_not_a_mapper_fails_at_setup(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_bad_mapper="""
        import pytest

        @pytest.fixture
        def audit_mapper():
            return {"deploy_finished": "ProgramInstall"}

        @pytest.mark.anyio
        async def test_uses_the_trail(audit_trail):
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["E*TypeError: the audit_mapper fixture must return an audit.AuditMapper, got dict"]
    )


def test_the_audit_trail_fixtures_docstring_example_passes_as_written(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_docstring_example=_docstring_example("audit_trail"))
    project.runpytest().assert_outcomes(passed=2)


def test_plugin_defines_fixtures_only() -> None:
    hooks = [name for name in vars(plugin) if name.startswith("pytest_")]
    assert hooks == []
    for name in plugin.__all__:
        marker = getattr(plugin, name)._fixture_function_marker
        assert marker.autouse is False, name
        assert marker.scope == "function", name


def test_plugin_imports_neither_audit_nor_sqlite() -> None:
    code = (
        "import sys, eventbus._pytest_plugin; "
        "print(sorted(m for m in ('audit', 'sqlite3', 'trio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_registered_through_the_pytest11_entry_point() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "eventbus"]
    assert entry.value == "eventbus._pytest_plugin"


def test_the_readme_example_of_the_plugin_passes_as_written(pytester: pytest.Pytester) -> None:
    from test_readme import _blocks

    (example,) = [b for b in _blocks("python") if "def test_a_stopped_agent_is_audited" in b]
    pytester.makeini(INI)
    pytester.makepyfile(test_readme_example=example)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=2 if _has_trio() else 1)  # one per installed backend


def _has_trio() -> bool:
    import importlib.util

    return importlib.util.find_spec("trio") is not None
