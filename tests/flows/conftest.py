"""Fixtures of the flows tests that more than one module uses."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.service import RPCError

from runtime import attributes
from runtime.embedded import temporal_executable

# The flood tests run on a Temporal dev server of their own whose runs take SIGNAL_LIMIT signals
# (history.maximumSignalsPerExecution) instead of the 10,000 a server takes by default: what they
# test does not depend on the number, and 10,000 signals to one run took 35 to 80 s in a loaded
# run of the suite, past a claim's grace, and made the first task of a deployed worker take
# them past the SDK's 2 s deadlock detector (three CI and fresh-clone runs failed on it).
SIGNAL_LIMIT = 200
FLOOD_BATCH = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def small_server(server_dir, client):
    """The dev server of the flood tests (above) and a client on it with the project's data
    converter. Its pid is written where runtime/guard.py looks for a stack's Temporal server, so
    a session killed before its end stops it too."""
    data_dir = server_dir("signal-limit")
    folder = data_dir / "temporal"
    folder.mkdir()
    port = free_port()
    command = [
        str(temporal_executable()), "server", "start-dev", "--headless",
        "--ip", "127.0.0.1", "--port", str(port), "--http-port", str(free_port()),
        "--db-filename", str(folder / "temporal.sqlite"), "--log-level", "error",
        "--dynamic-config-value", f"history.maximumSignalsPerExecution={SIGNAL_LIMIT}",
        *(arg for key in attributes.ALL for arg in ("--search-attribute", f"{key.name}=Keyword")),
    ]  # fmt: skip
    with open(folder / "server.log", "ab") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder
        )
    (folder / "server.pid").write_text(f"{server.pid}\n")
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                small = await Client.connect(address, data_converter=client.data_converter)
                await small.count_workflows()
                break
            except Exception:  # noqa: BLE001 - not up yet
                assert server.poll() is None, (folder / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the small server did not start"
                await asyncio.sleep(0.5)
        yield address, small
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
        (folder / "server.pid").unlink(missing_ok=True)


async def flood(handle, signal: str) -> None:
    """Spend the run's signals, with `signal`s of junk: refused, as every signal after the
    SIGNAL_LIMIT-th is."""
    with pytest.raises(RPCError, match="exceeded workflow execution limit for signal"):
        for _ in range(SIGNAL_LIMIT // FLOOD_BATCH + 1):
            await asyncio.gather(*(handle.signal(signal, {"x": 1}) for _ in range(FLOOD_BATCH)))
