"""The project's compose files run for real under rootful podman (scripts/compose-env.sh): a
copy of the project in a temporary folder (so its images/, logs/, data/ … are temporary), the
base images pointed at the local stand-ins, the podman settings passed to podman's commands
only (os.environ is never changed)."""

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import ROOT
from .stack import accepts, free_port_range

SCRIPT = ROOT / "scripts" / "compose-env.sh"
UP_TIMEOUT = 900  # a cold build installs the dependencies from PyPI
HEALTH_TIMEOUT = 180
COMMAND_TIMEOUT = 120
HTTP_TIMEOUT = 30
FIRST_WORKER_PORT = 8000  # the image's WEB_SERVER_START_PORT
# The base-image parameters of the compose files, set to the stand-ins compose-env.sh builds.
IMAGE_PARAMETERS = ("PYTHON_IMAGE", "NGINX_IMAGE", "POSTGRES_IMAGE", "SEAWEEDFS_IMAGE")
# The app's own settings never leak from the caller's shell into the stack.
APP_SETTINGS = (
    "IMAGES_DIR",
    "LOG_DIR",
    "LOGS_DIR",
    "DATA_DIR",
    "WEB_SERVER_",
    "WORKER_HOST",
    "HOST",
    "PORT",
    "PUBLIC_URL",
    "MAX_",
    "ALLOWED_",
    "ADMIN_KEY",
    "UPLOADS",
    "LISTING",
    "STRIP_",
    "REQUEST_TIMEOUT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "DATABASE_URL",
    "STORAGE",
    "S3_",
    "AWS_",
    "BACKENDS",
    "POSTGRES_",
    "CONTAINERS_",
    "BUILDAH_",
    "COMPOSE_",
)


def podman_settings() -> dict[str, str]:
    """What `compose-env.sh env` prints: the podman config, podman-compose, the base images."""
    out = subprocess.run(
        ["bash", str(SCRIPT), "env"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@dataclass
class Stack:
    folder: Path  # the project copy: the compose files and the folders they mount
    env: dict[str, str]  # for podman and podman-compose
    compose: str  # the podman-compose executable
    project: str
    files: tuple[str, ...]  # the compose files, in order
    url: str
    port: int
    refused_before: list[int]  # worker ports that nothing on the host listened on before `up`

    def run(self, *argv: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        done = subprocess.run(
            argv, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n" + (
            done.stdout[-3000:] + done.stderr[-3000:]
        )
        return done

    def podman_compose(self, *args: str, timeout: float = COMMAND_TIMEOUT):
        files = [arg for name in self.files for arg in ("-f", name)]
        return self.run(self.compose, "-p", self.project, *files, *args, timeout=timeout)

    def ours(self, kind: str) -> list[str]:
        """Names of this project's containers / networks / volumes that podman still has."""
        label = f"label=io.podman.compose.project={self.project}"
        argv = {
            "container": ["podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}"],
            "network": ["podman", "network", "ls", "--filter", label, "--format", "{{.Name}}"],
            "volume": ["podman", "volume", "ls", "--filter", label, "--format", "{{.Name}}"],
        }[kind]
        return self.run(*argv).stdout.split()

    def container(self, service: str) -> str:
        names = self.run(
            "podman",
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        ).stdout.split()
        assert len(names) == 1, f"expected one {service} container, found {names}"
        return names[0]

    def exec(self, service: str, *argv: str) -> str:
        """Run a command in the service's container; its output."""
        return self.run("podman", "exec", self.container(service), *argv).stdout

    def wait_healthy(self, *services: str, timeout: float = HEALTH_TIMEOUT) -> None:
        """Run each container's own healthcheck until it passes (podman has no systemd timers
        here to run them by itself)."""
        deadline = time.monotonic() + timeout
        pending = list(services)
        last = ""
        while pending and time.monotonic() < deadline:
            name = self.container(pending[0])
            done = subprocess.run(
                ["podman", "healthcheck", "run", name],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode == 0:
                pending.pop(0)
                continue
            last = done.stdout + done.stderr
            time.sleep(1)
        if pending:
            logs = {s: self.logs(s) for s in services}
            raise AssertionError(
                f"not healthy within {timeout} s: {pending} ({last.strip()})\n{logs}"
            )

    def logs(self, service: str) -> str:
        done = subprocess.run(
            ["podman", "logs", "--tail", "40", self.container(service)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout + done.stderr


def copy_project(dest: Path) -> None:
    """The project's files as they are in the work tree (tracked and new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = raw.decode()
        source = ROOT / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)


@contextlib.contextmanager
def compose_up(
    root: Path,
    settings: dict[str, str],
    project: str,
    files: tuple[str, ...],
    dotenv: str,
    services: tuple[str, ...],
    workers: int,
) -> Iterator[Stack]:
    """`podman-compose up -d --build` of `files` in a copy of the project under `root` with
    `dotenv` as its .env, on a free published port; yielded once `services` are healthy,
    then `down -v` and compose-env's teardown, whatever happened."""
    folder = root / "imagehost"
    folder.mkdir()
    copy_project(folder)
    (folder / ".env").write_text(dotenv)
    port = free_port_range(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(APP_SETTINGS)}
    env.update({k: settings[k] for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF")})
    env.update({k: settings[k] for k in ("BUILDAH_FORMAT", *IMAGE_PARAMETERS)})
    env["PORT"] = str(port)
    worker_ports = range(FIRST_WORKER_PORT, FIRST_WORKER_PORT + workers)
    stack = Stack(
        folder=folder,
        env=env,
        compose=settings["PODMAN_COMPOSE"],
        project=project,
        files=files,
        url=f"http://127.0.0.1:{port}",
        port=port,
        refused_before=[p for p in worker_ports if not accepts(p, timeout=2)],
    )
    stack.podman_compose("down", "-v")  # leftovers of an interrupted run
    try:
        stack.podman_compose("up", "-d", "--build", timeout=UP_TIMEOUT)
        stack.wait_healthy(*services)
        yield stack
    finally:
        files_args = [arg for name in files for arg in ("-f", name)]
        subprocess.run(
            [stack.compose, "-p", project, *files_args, "down", "-v"],
            cwd=folder,
            env=env,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
        )
        subprocess.run(
            ["bash", str(SCRIPT), "teardown"], capture_output=True, timeout=COMMAND_TIMEOUT
        )
