"""The supervisor: starts child processes (workers, nginx), restarts those that die, stops all.

Workers are separate interpreters (`imagehost worker --port P`), so a crash in one — even a
SIGKILL mid-upload — takes only its own connections down; the supervisor restarts it and
removes the temporary files it left behind.
"""

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import metrics
from .config import Settings

log = logging.getLogger("imagehost.supervisor")

RESTART_BACKOFF_S = (0.1, 0.5, 1, 2, 5)  # restart delays after consecutive quick deaths
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STOP_GRACE_S = 10  # in-flight requests get this long after SIGTERM before SIGKILL


@dataclass
class Child:
    """One supervised process: how to start it and what to clean after it dies."""

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    on_exit: Callable[[int], None] | None = None  # called with the dead child's pid
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0
    restarts: int = field(default=0)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        log.info("started %s pid=%d", self.name, self.proc.pid)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervisor dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def descendants(pid: int) -> dict[int, tuple[int, str]]:
    """Every live process below `pid`: pid → (parent pid, command line), from Linux's /proc.

    Used to find nginx processes orphaned by a dead master; tests and the benchmark use it to
    find workers by port.
    """
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, tuple[int, str]] = {}
    frontier = {pid}
    while frontier:
        frontier = {child for child, ppid in parents.items() if ppid in frontier}
        for child in frontier:
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                found[child] = (parents[child], cmdline.decode(errors="replace").strip())
    return found


def worker_children(settings: Settings) -> list[Child]:
    """One `imagehost worker` per port in WEB_SERVER_START_PORT .. +WEB_SERVER_WORKERS-1."""
    from . import store  # a worker's leftovers are removed by pid

    # the workers' metrics (metrics.py) are summed from one folder, emptied at each start
    env = {**os.environ, **settings.as_environ(), **metrics.reset(settings)}
    return [
        Child(
            name=f"worker:{port}",
            argv=[sys.executable, "-m", "imagehost", "worker", "--port", str(port)],
            env=env,
            on_exit=lambda pid: store.remove_temp_files_of(settings, pid),
        )
        for port in settings.worker_ports
    ]


class Supervisor:
    """Keeps every child running until SIGINT/SIGTERM, then stops them all and waits."""

    def __init__(self, children: list[Child]):
        self.children = children
        self.stopping = False

    def _on_signal(self, signum, _frame) -> None:
        self.stopping = True

    def run(self, ready: Callable[[], bool] | None = None) -> int:
        """Start all children and supervise them; returns 0 after a clean stop.

        `ready` is called once per round, after dead children are seen to, until it returns
        True; it must not block, since a child that dies meanwhile is restarted only between
        rounds (a blocking start-up wait once left a worker killed at start dead for 15 s)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                child.start()
            while not self.stopping:
                self._reap_and_restart()
                if ready and ready():
                    ready = None
                time.sleep(0.1)
        finally:
            self.stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def _reap_and_restart(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if now >= child.restart_at:
                    child.start()
                    child.restarts += 1
                continue
            code = child.proc.poll()
            if code is None:
                continue
            log.error("%s pid=%d exited with %s; restarting", child.name, child.proc.pid, code)
            if child.on_exit:
                child.on_exit(child.proc.pid)
            lived = now - child.started_at
            child.quick_deaths = child.quick_deaths + 1 if lived < 5 else 0
            delay = RESTART_BACKOFF_S[min(child.quick_deaths, len(RESTART_BACKOFF_S) - 1)]
            child.proc = None
            child.restart_at = now + delay

    def stop_all(self) -> None:
        """SIGTERM every child, wait STOP_GRACE_S for them to finish, then SIGKILL."""
        running = [c for c in self.children if c.proc and c.proc.poll() is None]
        for child in running:
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in running:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s pid=%d did not stop; killing it", child.name, child.proc.pid)
                child.proc.kill()
                child.proc.wait()
            if child.on_exit:
                child.on_exit(child.proc.pid)
        log.info("all processes stopped")
