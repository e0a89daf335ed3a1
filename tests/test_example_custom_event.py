"""examples/custom_event.py runs, and its custom event works with the bus and the codec."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

from eventbus import AnyKernelEvent, Category, Primitive
from eventbus.codec import decode_json, decode_msgpack, encode_json, encode_msgpack

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "custom_event.py"
EXPECTED = [
    "1 agent_started    proc  sched agent 0b7c5c1e-3f7a-4c59-9a51-2f4d1c1e6a01 started",
    "2 deploy_finished  proc  sched deployed api 1.4.2 x3",
]


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("custom_event_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_example_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == EXPECTED


@pytest.mark.anyio
async def test_example_main_publishes_and_decodes_both_events(example: ModuleType) -> None:
    assert await example.main() == EXPECTED


def test_custom_event_has_its_own_tag_and_category(example: ModuleType) -> None:
    cls = example.DeployFinished
    assert cls.__struct_config__.tag == "deploy_finished"
    assert cls.category is Category.PROC
    event = cls(service="api", version="2.0.0")
    assert event.primitive is Primitive.SCHED
    assert encode_json(event) == (
        b'{"event_type":"deploy_finished","replicas":1,"service":"api","version":"2.0.0"}'
    )


def test_custom_event_decodes_only_with_the_users_union(example: ModuleType) -> None:
    event = example.DeployFinished(service="api", version="2.0.0", replicas=2)
    for encode, decode in ((encode_json, decode_json), (encode_msgpack, decode_msgpack)):
        data = encode(event)
        assert decode(data, type=example.DeployFinished | AnyKernelEvent) == event
        with pytest.raises(msgspec.ValidationError, match=r"^Invalid value 'deploy_finished'"):
            decode(data)
