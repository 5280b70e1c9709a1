"""Real `imagehost` commands as subprocesses on free ports with temporary folders, and their
processes (workers by port, leftovers after a stop)."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from imagehost import front, workers

HEALTH = "/api/health"
NGINX_MISSING = "nginx is not installed (apt-get install nginx)"
START_TIMEOUT_S = 30

# Settings of the environment the tests run in that must not leak into a started command.
_SETTING_PREFIXES = (
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
    "DATABASE_URL",
    "STORAGE",
    "S3_",
    "AWS_",
    "BACKENDS",
)

T = TypeVar("T")


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


def accepts(port: int, timeout: float = 0.5) -> bool:
    """Something listens on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def nginx_present() -> bool:
    """The nginx binary `up` would run is installed."""
    return front.find_nginx() is not None


def wait_for(check: Callable[[], T], timeout: float = 20, what: str = "condition") -> T:
    """Poll `check` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_cli(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run `imagehost <args>` to the end: its exit code, stdout and stderr as text."""
    return subprocess.run(
        [sys.executable, "-m", "imagehost", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Running:
    """A started `imagehost` command: its base URL, folders, environment and process."""

    command: str  # serve, up or workers
    url: str
    proc: subprocess.Popen
    root: Path
    env: dict[str, str]

    @property
    def port(self) -> int:
        return int(self.env["PORT"])

    @property
    def console(self) -> str:
        """What the command printed so far (stdout and stderr)."""
        return (self.root / f"{self.command}.console").read_text(errors="replace")

    @property
    def images_dir(self) -> Path:
        return Path(self.env["IMAGES_DIR"])

    @property
    def storage(self) -> str:
        """STORAGE: "local" (IMAGES_DIR) or "s3"."""
        return self.env.get("STORAGE", "local")

    @property
    def data_dir(self) -> Path:
        return Path(self.env["DATA_DIR"])

    @property
    def log_dir(self) -> Path:
        return Path(self.env["LOG_DIR"])

    @property
    def admin_key(self) -> str:
        """ADMIN_KEY, else the generated key: DATA_DIR/admin_key, or with DATABASE_URL (which
        keeps it in PostgreSQL) the one in the management link the command logged."""
        if self.env.get("ADMIN_KEY"):
            return self.env["ADMIN_KEY"]
        if not self.env.get("DATABASE_URL"):
            return (self.data_dir / "admin_key").read_text().strip()
        found = wait_for(
            lambda: re.search(r"upload\.html#key=(\S+)", self.console), what="the management link"
        )
        return found.group(1)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run another `imagehost` command against the same folders."""
        return run_cli(self.env, *args, cwd=self.root, timeout=timeout)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; the exit code."""
        return terminate(self.proc, timeout)


def terminate(proc: subprocess.Popen, timeout: float) -> int:
    """SIGTERM `proc` (if still running), SIGKILL it after `timeout` seconds; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def base_env(root: Path, **overrides: str) -> dict[str, str]:
    """This process's environment without imagehost settings, with folders under `root`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_PREFIXES)}
    env.update(
        IMAGES_DIR=str(root / "images"),
        LOG_DIR=str(root / "logs"),
        DATA_DIR=str(root / "data"),
        HOST="127.0.0.1",
        WEB_SERVER_WORKERS="2",
        PYTHONUNBUFFERED="1",
        # The tests and the benchmark upload fast from one address: the per-client limits are
        # off unless a test turns them on (test_limits does).
        UPLOAD_RATE="off",
        UPLOAD_CONNECTIONS="0",
    )
    env.update(overrides)
    return env


def start(command: str, root: Path, wait_for: str, **overrides: str) -> Running:
    """Start `imagehost <command>` in `root` and wait until `wait_for` answers 200 on its front
    port (on every worker port for `workers`, which has no front)."""
    root.mkdir(parents=True, exist_ok=True)
    overrides.setdefault("PORT", str(free_port_range(1)))
    if command != "serve":
        overrides.setdefault(
            "WEB_SERVER_START_PORT",
            str(free_port_range(int(overrides.get("WEB_SERVER_WORKERS", "2")))),
        )
    env = base_env(root, **overrides)
    # Console output goes to a file: a pipe nobody reads would fill up and block the server.
    console = open(root / f"{command}.console", "ab")  # noqa: SIM115 (the child holds it)
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
    running = Running(command=command, url=url, proc=proc, root=root, env=env)
    ports = worker_ports(running) if command == "workers" else [running.port]
    for port in ports:
        _wait_until_answering(running, port, wait_for)
    return running


def start_stack(command: str, root: Path, **settings: str) -> Running:
    """`imagehost serve`, or `imagehost up` (nginx + WEB_SERVER_WORKERS workers, default 2),
    returned once /api/health answers on the front and, for `up`, on every worker: `start`
    waits for the front only, and nginx would answer 502 for a worker still importing."""
    running = start(command, root, HEALTH, **settings)
    if command == "up":
        for port in worker_ports(running):
            _wait_until_answering(running, port, HEALTH)
    return running


def stop_stack(running: Running) -> None:
    """Stop it; any process it started that outlived it (a failure already) is ended too."""
    family = workers.descendants(running.proc.pid)
    running.stop()
    for pid, (_, cmd) in family.items():
        if _command_line(pid) == cmd:  # still that process, not another with its pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _command_line(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _wait_until_answering(running: Running, port: int, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            raise RuntimeError(
                f"imagehost {running.command} exited {running.proc.returncode}:\n" + running.console
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
                if re.match(rb"HTTP/1\.\d 200", s.recv(64)):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    running.stop()
    raise RuntimeError(
        f"imagehost {running.command} did not answer on port {port} within {START_TIMEOUT_S} s"
    )


def worker_ports(running: Running) -> list[int]:
    """The ports of the workers of a running `up` or `workers`."""
    first = int(running.env["WEB_SERVER_START_PORT"])
    return list(range(first, first + int(running.env["WEB_SERVER_WORKERS"])))


def worker_pids(running: Running) -> dict[int, int]:
    """Port → pid of each `imagehost worker --port P` child of a running `up` or `workers`."""
    found = {}
    for pid, (ppid, cmd) in workers.descendants(running.proc.pid).items():
        port = re.search(r"\bworker --port (\d+)$", cmd)
        if ppid == running.proc.pid and port:
            found[int(port.group(1))] = pid
    return found


def worker_pid(running: Running, port: int) -> int | None:
    """The pid of the worker on `port` now, or None (not started yet, or gone)."""
    return worker_pids(running).get(port)
