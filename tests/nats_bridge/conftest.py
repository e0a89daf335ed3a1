"""Fixtures for the NATS bridge tests: a real ``nats-server`` per test, on a free port.

Without the binary these tests skip with the install hint; under ``CI=true`` a missing binary
is a failure, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("nats", reason="nats-py is missing: pip install -e '.[test,nats]'")

INSTALL_HINT = (
    "nats-server is not installed: `apt-get update && apt-get install -y nats-server` "
    "(Debian/Ubuntu), or put the nats-server binary on PATH"
)


@pytest.fixture
def anyio_backend() -> str:
    """nats-py is asyncio-only, so the bridge runs (and is tested) on asyncio only.

    ``test_nats_bridge.py::test_trio_is_refused_with_a_clear_error`` covers trio.
    """
    return "asyncio"


def nats_server_binary() -> str:
    """Return the path of ``nats-server``; skip (or fail under ``CI=true``) without it."""
    path = shutil.which("nats-server")
    if path is None and os.path.exists("/usr/sbin/nats-server"):
        path = "/usr/sbin/nats-server"
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{INSTALL_HINT} (CI=true: a missing server fails the run)")
        pytest.skip(INSTALL_HINT)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    """One ``nats-server -js`` process on 127.0.0.1; restartable on the same port and store."""

    def __init__(self, binary: str, workdir: Path, *extra: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self.store = workdir / "store"
        self.log = workdir / "nats-server.log"
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """The client URL, without credentials."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and return once its log says it is ready."""
        __tracebackhide__ = True
        offset = self.log.stat().st_size if self.log.exists() else 0
        args = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        args += ["-sd", str(self.store), *self.extra]
        if os.environ.get("NATS_TEST_TRACE"):  # protocol trace in nats-server.log
            args.append("-DV")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_bytes()[offset:]
            if b"Server is ready" in text:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"nats-server did not start: {text.decode(errors='replace')}")
            time.sleep(0.005)  # polling another process's log: nothing to await

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port with the same JetStream store."""
        self.stop()
        self.start()


NatsServerFactory = Callable[..., NatsServer]


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[NatsServerFactory]:
    """Start servers with extra arguments (``--user``, ``--auth``, TLS, ...); stop them all."""
    binary = nats_server_binary()
    servers: list[NatsServer] = []

    def start(*extra: str) -> NatsServer:
        server = NatsServer(binary, tmp_path / f"server{len(servers)}", *extra)
        server.store.mkdir(parents=True)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def nats_server(nats_server_factory: NatsServerFactory) -> NatsServer:
    """A plain ``nats-server -js`` for one test."""
    return nats_server_factory()


class ManualClock:
    """A monotonic clock that moves only when told: set it as a bridge's ``_clock``."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.monotonic() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
