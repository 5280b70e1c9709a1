"""Shared fixtures: real servers started as subprocesses on free ports with temporary folders."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_ALL = os.environ.get("IMAGEHOST_REQUIRE_ALL") == "1"


def need(what: str, present: bool, reason: str) -> None:
    """Skip when a system part (nginx, chromium, podman) is missing; fail instead in CI."""
    if present:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{what} is required here (IMAGEHOST_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


def free_port_range(count: int) -> int:
    """A first port such that `count` consecutive ports are free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            start = probe.getsockname()[1]
        if start + count > 65000:
            continue
        sockets = []
        try:
            for port in range(start, start + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range")


@dataclass
class Running:
    """A started `imagehost` command: its base URL, folders, environment and process."""

    url: str
    proc: subprocess.Popen
    root: Path
    env: dict[str, str]

    @property
    def console(self) -> str:
        """What the command printed so far (stdout and stderr)."""
        return next(self.root.glob("*.console")).read_text(errors="replace")

    @property
    def images_dir(self) -> Path:
        return Path(self.env["IMAGES_DIR"])

    @property
    def data_dir(self) -> Path:
        return Path(self.env["DATA_DIR"])

    @property
    def log_dir(self) -> Path:
        return Path(self.env["LOG_DIR"])

    @property
    def admin_key(self) -> str:
        return self.env.get("ADMIN_KEY") or (self.data_dir / "admin_key").read_text().strip()

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run another `imagehost` command against the same folders."""
        return subprocess.run(
            [sys.executable, "-m", "imagehost", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def base_env(root: Path, **overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            (
                "IMAGES_",
                "LOG_",
                "LOGS_",
                "DATA_",
                "WEB_SERVER",
                "ADMIN_",
                "UPLOADS",
                "LISTING",
                "MAX_",
                "PUBLIC_URL",
                "STRIP_",
                "ALLOWED_",
                "REQUEST_TIMEOUT",
                "HOST",
                "PORT",
            )
        )
    }
    env.update(
        IMAGES_DIR=str(root / "images"),
        LOG_DIR=str(root / "logs"),
        DATA_DIR=str(root / "data"),
        HOST="127.0.0.1",
        WEB_SERVER_WORKERS="2",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def start(command: str, root: Path, wait_for: str, **overrides: str) -> Running:
    """Start `imagehost <command>` in `root` and wait until it answers on its front port."""
    root.mkdir(parents=True, exist_ok=True)
    overrides.setdefault("PORT", str(free_port_range(1)))
    if command != "serve":
        overrides.setdefault(
            "WEB_SERVER_START_PORT",
            str(free_port_range(int(overrides.get("WEB_SERVER_WORKERS", "2")))),
        )
    env = base_env(root, **overrides)
    # Console output goes to a file: a pipe nobody reads would fill up and block the server.
    console = open(root / f"{command}.console", "ab")  # noqa: SIM115 (closed by stop())
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagehost", command],
        env=env,
        cwd=root,
        stdout=console,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    console.close()
    url = f"http://127.0.0.1:{env['PORT']}"
    running = Running(url=url, proc=proc, root=root, env=env)
    if command == "workers":  # no front: wait for every worker port
        first = int(env["WEB_SERVER_START_PORT"])
        ports = range(first, first + int(env["WEB_SERVER_WORKERS"]))
    else:
        ports = [int(env["PORT"])]
    for port in ports:
        _wait_until_answering(running, port, wait_for, command)
    return running


def _wait_until_answering(running: Running, port: int, path: str, command: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            out = (running.root / f"{command}.console").read_text(errors="replace")
            raise RuntimeError(f"imagehost {command} exited {running.proc.returncode}:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                if re.match(rb"HTTP/1\.\d 200", s.recv(64)):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    running.stop()
    raise RuntimeError(f"imagehost {command} did not answer on port {port} within 30 s")


@pytest.fixture
def serve_factory(tmp_path) -> Iterator:
    """Start `imagehost serve` with extra settings: serve_factory(UPLOADS="key")."""
    started: list[Running] = []

    def make(**overrides: str) -> Running:
        running = start("serve", tmp_path / f"serve{len(started)}", "/api/health", **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def server(serve_factory) -> Running:
    """A fresh `imagehost serve` with default settings and empty folders."""
    return serve_factory()


def have(binary: str) -> bool:
    return shutil.which(binary) is not None


def pytest_collection_modifyitems(config, items):
    """Long load tests run only when IMAGEHOST_LOAD=1 (as .ci/run sets)."""
    if os.environ.get("IMAGEHOST_LOAD") == "1":
        return
    skip = pytest.mark.skip(reason="load test: set IMAGEHOST_LOAD=1 to run it (CI does)")
    for item in items:
        if "load" in item.keywords:
            item.add_marker(skip)
