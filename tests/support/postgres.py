"""A throwaway PostgreSQL cluster (Debian's binaries) on a free port: start, a fresh database
per caller, stop, remove. The commands are those of ../shared/scale-recipe.md.

The server refuses to run as root, so under root every command runs as the `postgres` user that
Debian's package creates (runuser); as anyone else it runs as that user. fsync and friends are
off: a test cluster need not survive a power cut (never copy these settings to a real one).
"""

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from .stack import free_port_range

POSTGRES_MISSING = "PostgreSQL is not installed (apt-get install postgresql)"
OWNER = "imagehost"  # the role that owns every database made here (what DATABASE_URL names)
START_TIMEOUT_S = 30


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and pg_ctl."""
    found = []
    for folder in Path("/usr/lib/postgresql").glob("*/bin"):
        version = folder.parent.name
        if re.fullmatch(r"\d+(\.\d+)?", version) and (folder / "initdb").exists():
            found.append((tuple(int(p) for p in version.split(".")), folder))
    return max(found)[1] if found else None


def postgres_present() -> bool:
    """initdb and pg_ctl are installed, and (under root) the `postgres` user exists."""
    if postgres_bin() is None:
        return False
    if os.geteuid() != 0:
        return True
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


def _as_postgres(*argv: str | Path) -> list[str]:
    command = [str(a) for a in argv]
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(*argv: str | Path, timeout: float = 60) -> None:
    done = subprocess.run(_as_postgres(*argv), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed ({done.returncode}):\n{done.stderr}")


@dataclass
class Cluster:
    """A running cluster in `root` (data/, server.log, the socket) on 127.0.0.1:`port`."""

    bin: Path
    root: Path
    port: int
    databases: list[str] = field(default_factory=list)
    durable: bool = False  # fsync on, as a real server (the benchmark); off for tests

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> str:
        """What the server logged so far (for a failing test's message)."""
        return (self.root / "server.log").read_text(errors="replace")

    def url(self, dbname: str, user: str = OWNER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        """A superuser connection to the `postgres` database (autocommit)."""
        return psycopg.connect(self.url("postgres", "postgres"), autocommit=True)

    def new_database(self) -> str:
        """A new, empty database owned by OWNER: its DATABASE_URL."""
        name = f"test{len(self.databases)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{OWNER}"')
        self.databases.append(name)
        return self.url(name)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run(
            self.bin / "pg_ctl",
            *("-D", self.data, "-l", self.root / "server.log", "-w"),
            *("-t", str(START_TIMEOUT_S), "-o", options, "start"),
            timeout=START_TIMEOUT_S + 10,
        )

    def stop(self) -> None:
        """Fast shutdown: open sessions are ended (as in a restart or failover)."""
        _run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop it (if running) and delete its folder."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(durable: bool = False) -> Cluster:
    """initdb + pg_ctl start in a new temporary folder (not under pytest's tmp folders: the
    `postgres` user could not enter them), with the role OWNER; about 1.2 s. `durable`: fsync
    on, as a production server (for measurements; tests run without it)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError(POSTGRES_MISSING)
    root = Path(tempfile.mkdtemp(prefix="imagehost-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        _run(
            bin_dir / "initdb",
            *("-D", root / "data", "-U", "postgres", "-A", "trust", "-E", "UTF8"),
            *("--locale=C.UTF-8", "--no-sync", "--no-instructions"),
        )
        for attempt in range(3):  # the free port may be taken before the server binds it
            cluster = Cluster(bin_dir, root, free_port_range(1), durable=durable)
            try:
                cluster.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        with cluster.admin() as conn:
            conn.execute(f'CREATE ROLE "{OWNER}" LOGIN')
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster
