"""Two imagehost nodes sharing one PostgreSQL database and one bucket, behind one nginx
(issue 12): node A runs `imagehost up` (nginx and its own workers, with BACKENDS naming node
B's workers), node B runs `imagehost workers`. Each node has its own DATA_DIR and LOG_DIR and
port range; both have the same ADMIN_KEY and PUBLIC_URL (nginx), as the README asks."""

import threading
from dataclasses import dataclass
from pathlib import Path

import psycopg

from imagehost.store.keys import thumbnail_key

from .seaweed import Seaweed
from .stack import Running, free_port_range, start_stack, stop_stack, worker_ports

ADMIN_KEY = "multinode-admin-key-" + "k" * 24  # the same on every node, set explicitly
WORKERS_PER_NODE = 2


@dataclass
class Nodes:
    """The running set-up: `a` (`up`: nginx + workers), `b` (`workers`), and what they share."""

    a: Running
    b: Running
    database_url: str
    bucket: Seaweed

    @property
    def front(self) -> str:
        """nginx, on node A."""
        return self.a.url

    def worker_url(self, node: Running, index: int = 0) -> str:
        """One worker of `node`, reached directly (not through nginx)."""
        return f"http://127.0.0.1:{worker_ports(node)[index]}"

    def objects(self) -> set[str]:
        """Every key in the bucket, through boto3."""
        return self.bucket.keys()

    def catalog_objects(self) -> set[str]:
        """The keys the catalog's rows stand for: each original and its thumbnail."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute("SELECT filename FROM images").fetchall()
        return {key for (name,) in rows for key in (name, thumbnail_key(name))}

    def stop(self) -> None:
        for node in (self.a, self.b):
            stop_stack(node)


def start_nodes(
    root: Path, database_url: str, bucket: Seaweed, *, together: bool = False, **settings: str
) -> Nodes:
    """Start node B and node A (B first, or both at the same instant with `together`), each
    with WORKERS_PER_NODE workers; returned once nginx and every worker answer /api/health.

    `settings` go to both nodes. Whatever fails, nothing started here is left running."""
    front_port = free_port_range(1)
    b_start = free_port_range(WORKERS_PER_NODE)
    shared = {
        "DATABASE_URL": database_url,
        **bucket.settings(),
        "ADMIN_KEY": ADMIN_KEY,
        "PORT": str(front_port),
        "PUBLIC_URL": f"http://127.0.0.1:{front_port}",
        "WEB_SERVER_WORKERS": str(WORKERS_PER_NODE),
        **settings,
    }
    last = b_start + WORKERS_PER_NODE - 1
    plans = {
        "b": ("workers", root / "node-b", {**shared, "WEB_SERVER_START_PORT": str(b_start)}),
        "a": ("up", root / "node-a", {**shared, "BACKENDS": f"127.0.0.1:{b_start}-{last}"}),
    }
    started: dict[str, Running] = {}
    failures: list[BaseException] = []
    barrier = threading.Barrier(len(plans))

    def launch(name: str) -> None:
        command, folder, env = plans[name]
        try:
            if together:
                barrier.wait(timeout=10)
            started[name] = start_stack(command, folder, **env)
        except BaseException as exc:  # reported after both threads ended
            failures.append(exc)

    try:
        if together:
            threads = [threading.Thread(target=launch, args=(name,)) for name in plans]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()  # start_stack is bounded: START_TIMEOUT_S per port
        else:
            for name in plans:
                launch(name)
                if failures:
                    break
        if failures:
            raise failures[0]
    except BaseException:
        for node in started.values():
            stop_stack(node)
        raise
    return Nodes(a=started["a"], b=started["b"], database_url=database_url, bucket=bucket)
