"""A real ``mlflow server`` process for tests: sqlite backend store, proxied local artifacts, 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

STARTUP_SECONDS = 120.0
"""How long to wait for ``/health``; a cold start takes 10 to 16 seconds on two busy cores."""

STOP_SECONDS = 3.0
"""Grace period after SIGTERM before SIGKILL."""


@dataclass
class Server:
    """A running tracking server.

    Args:
        url: ``http://127.0.0.1:<port>``, the tracking URI.
        process: The ``mlflow server`` process (leader of its own process group).
        backend_store_uri: The server's sqlite store, readable directly once the server is stopped.
        artifacts: The folder the server stores proxied artifacts in.
        log: The server's stdout and stderr.
    """

    url: str
    process: subprocess.Popen
    backend_store_uri: str
    artifacts: Path
    log: Path

    def stop(self) -> None:
        """Stop the server and every process it started; waits until the port is closed (idempotent)."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        _signal_group(self.process.pid, signal.SIGKILL)  # a uvicorn worker that outlived the leader
        deadline = time.monotonic() + STOP_SECONDS
        while self._listening() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _listening(self) -> bool:
        host, port = self.url.removeprefix("http://").split(":")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            return sock.connect_ex((host, int(port))) == 0

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the server log, for failure messages."""
        lines = self.log.read_text("utf-8", errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def start_mlflow_server(tmp_path: Path) -> Iterator[Server]:
    """Start ``mlflow server`` on a free port of 127.0.0.1, wait until it is healthy, stop it on exit.

    Args:
        tmp_path: Folder for the sqlite file, the artifacts and the log.

    Yields:
        The running :class:`Server`.

    Raises:
        RuntimeError: If the server exits or is not healthy within :data:`STARTUP_SECONDS`.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = tmp_path / "artifacts"
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no background job runner: starts 6 s sooner
    command = [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", backend, "--artifacts-destination", str(artifacts)),
        *("--workers", "1"),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process, backend, artifacts, log)
    try:
        _wait_healthy(server)
        yield server
    finally:
        server.stop()


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            if requests.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"mlflow server not healthy after {STARTUP_SECONDS:.0f} s:\n{server.log_tail()}")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)
