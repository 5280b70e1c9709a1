"""The catalog contract, run against SQLite and a real PostgreSQL alike: rows, the seq cursor,
the counters, one transaction per add_many, the two schemas side by side, migrations applied
once by processes starting together, and timeouts that answer 503 instead of hanging."""

import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest
import requests
from support.http import listed, uploaded
from support.images import image_bytes
from support.rows import image_row
from support.stack import free_port_range, start_stack, stop_stack, wait_for

from imagehost import config
from imagehost.catalog import FILE_NAME, Catalog, Counters, open_catalog
from imagehost.catalog.base import FIELDS, migrations
from imagehost.catalog.postgres import PostgresCatalog
from imagehost.catalog.sqlite import SQLiteCatalog
from imagehost.errors import ConfigError, ServiceUnavailable

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SHORT_TIMEOUT_S = 1.0  # the timeout tests' statement/busy/pool timeout
TIMEOUT_SLACK_S = 2.0  # what a refusal may take beyond its timeout, on a loaded CI machine
# The pool's reconnection backoff (1, 2, 4 s … given up after 10 s) bounds this.
RECOVERY_S = 15


row = image_row


def numbers(dialect: str) -> list[int]:
    """The migration numbers of migrations/<dialect>/."""
    return [number for number, _ in migrations(dialect)]


@dataclass
class Backend:
    """One catalog database made for a test, and what the tests need to reach past the
    Catalog interface: a second connection holding the write lock, the raw schema."""

    kind: str
    settings: config.Settings

    @property
    def sqlite_path(self) -> Path:
        return self.settings.data_dir / FILE_NAME

    def open(self, timeout_s: float | None = None) -> Catalog:
        if timeout_s is None:
            return open_catalog(self.settings)
        if self.kind == "sqlite":
            return SQLiteCatalog(self.sqlite_path, busy_timeout_s=timeout_s)
        return PostgresCatalog(
            self.settings.database_url, statement_timeout_s=timeout_s, pool_timeout_s=timeout_s
        )

    def query(self, sql: str) -> list[tuple]:
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.sqlite_path)) as conn:
                return conn.execute(sql).fetchall()
        with psycopg.connect(self.settings.database_url) as conn:
            return conn.execute(sql).fetchall()

    @contextlib.contextmanager
    def writer_stuck(self) -> Iterator[None]:
        """Another connection in the middle of a write transaction that does not end: it holds
        what every insert and delete needs (SQLite's write lock; PostgreSQL's counter row)."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.sqlite_path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                conn.rollback()
                conn.close()
            return
        with psycopg.connect(self.settings.database_url) as conn:
            conn.execute("UPDATE counters SET value = value WHERE name = 'total'")
            yield
            conn.rollback()

    def columns(self, table: str = "images") -> list[tuple[str, str, bool]]:
        """A table's columns: (name, kind integer/text/timestamp, nullable), in order."""
        if self.kind == "sqlite":
            return [
                (name, kind.lower(), not notnull and not pk)
                for _, name, kind, notnull, _, pk in self.query(f"PRAGMA table_info({table})")
            ]
        kinds = {
            "bigint": "integer",
            "integer": "integer",
            "text": "text",
            "timestamp with time zone": "timestamp",
        }
        return [
            (name, kinds[kind], nullable == "YES")
            for name, kind, nullable in self.query(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                f" WHERE table_name = '{table}' ORDER BY ordinal_position"
            )
        ]

    def keys(self, table: str = "images") -> tuple[set[str], set[str]]:
        """(primary key columns, columns with a unique index of their own) of a table."""
        if self.kind == "sqlite":
            primary = {r[1] for r in self.query(f"PRAGMA table_info({table})") if r[5]}
            unique = set()
            for _, index, is_unique, origin, _ in self.query(f"PRAGMA index_list({table})"):
                names = [r[2] for r in self.query(f"PRAGMA index_info('{index}')")]
                if is_unique and origin == "u" and len(names) == 1:
                    unique.add(names[0])
            return primary, unique
        found = self.query(
            "SELECT a.attname, i.indisprimary, i.indnatts FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            f" WHERE i.indrelid = '{table}'::regclass AND i.indisunique"
        )
        primary = {n for n, pk, _ in found if pk}
        return primary, {n for n, pk, width in found if not pk and width == 1}

    def applied(self) -> list[int]:
        """The migration numbers the database records as applied."""
        if self.kind == "sqlite":
            return list(range(1, self.query("PRAGMA user_version")[0][0] + 1))
        return [r[0] for r in self.query("SELECT version FROM schema_migrations ORDER BY 1")]


def make_backend(kind: str, root: Path, postgres=None) -> Backend:
    environ = {"DATA_DIR": str(root / "data")}
    if kind == "postgres":
        environ["DATABASE_URL"] = postgres()
    return Backend(kind, config.load(environ, env_file=None))


@pytest.fixture(params=KINDS)
def backend(request, tmp_path) -> Backend:
    """An empty catalog database of each kind (not opened yet)."""
    factory = request.getfixturevalue("postgres") if request.param == "postgres" else None
    return make_backend(request.param, tmp_path, factory)


@pytest.fixture
def catalog(backend) -> Iterator[Catalog]:
    opened = backend.open()
    yield opened
    opened.close()


# --- the contract ----------------------------------------------------------------------------


def test_open_catalog_picks_the_implementation(backend):
    opened = backend.open()
    try:
        expected = SQLiteCatalog if backend.kind == "sqlite" else PostgresCatalog
        assert isinstance(opened, expected)
        # SQLite in DATA_DIR only when DATABASE_URL is empty: PostgreSQL leaves no file there.
        assert backend.sqlite_path.exists() == (backend.kind == "sqlite")
    finally:
        opened.close()


def test_add_get_remove(catalog):
    added = catalog.add(row(1))
    assert added.seq > 0 and added == replace(row(1), seq=added.seq)
    assert catalog.get(row(1).filename) == added
    assert catalog.get("missing00000.png") is None
    assert catalog.remove(row(1).filename) is True
    assert catalog.get(row(1).filename) is None
    assert catalog.remove(row(1).filename) is False  # someone else deleted it first


def test_page_is_newest_first_with_the_seq_cursor(catalog):
    added = [catalog.add(row(n)) for n in range(3)] + catalog.add_many(row(n) for n in range(3, 8))
    seqs = [r.seq for r in added]
    assert seqs == sorted(seqs) and len(set(seqs)) == 8  # in the order added, as given
    newest_first = list(reversed(added))
    assert catalog.page(3) == newest_first[:3]
    assert catalog.page(3, before_seq=newest_first[2].seq) == newest_first[3:6]
    assert catalog.page(10, before_seq=newest_first[5].seq) == newest_first[6:]
    assert catalog.page(10, before_seq=added[0].seq) == []
    assert catalog.page(100) == newest_first


def test_seq_is_never_reused(catalog):
    first, second = catalog.add(row(1)), catalog.add(row(2))
    catalog.remove(second.filename)
    third = catalog.add(row(3))
    assert first.seq < second.seq < third.seq


def test_counters_follow_adds_and_removes(catalog):
    start = catalog.counters()
    assert (start.total, start.version, start.bytes) == (0, 0, 0)
    assert 0 <= start.epoch < 1_000_000_000
    catalog.add_many(row(n) for n in range(3))
    assert catalog.counters() == Counters(3, 3, start.epoch, bytes=1000 + 1001 + 1002)
    catalog.add(row(3))
    assert catalog.remove(row(0).filename)
    after = Counters(3, 5, start.epoch, bytes=1001 + 1002 + 1003)
    assert catalog.counters() == after  # every change moves the version
    assert not catalog.remove(row(0).filename)
    assert catalog.counters() == after  # nothing removed, nothing moved
    assert catalog.add_many([]) == []
    assert catalog.counters() == after
    assert catalog.recount_bytes() == (after.bytes, after.bytes)


def test_a_shared_file_is_counted_once(catalog):
    """Rows with one content_hash share a stored file: its bytes count once, until the last
    of them goes; rows without a hash (a copy each) count each."""
    twins = [row(n, "twin", size=5000, content_hash="ab" * 32) for n in range(3)]
    catalog.add_many(twins[:2])
    catalog.add(twins[2])
    catalog.add(row(0, "alone", size=700))
    assert catalog.counters().bytes == 5000 + 700
    assert catalog.find_by_hash("ab" * 32).filename == twins[0].filename  # the oldest
    assert catalog.find_by_hash("cd" * 32) is None
    assert [r[1] for r in catalog.shared_rows()] == [t.filename for t in twins]
    catalog.remove(twins[0].filename)
    catalog.remove(twins[1].filename)
    assert catalog.counters().bytes == 5000 + 700
    assert catalog.find_by_hash("ab" * 32).filename == twins[2].filename
    assert catalog.shared_rows() == []  # one left: nothing shared
    catalog.remove(twins[2].filename)
    assert catalog.counters().bytes == 700
    assert catalog.recount_bytes() == (700, 700)


def test_filenames(catalog):
    assert catalog.filenames() == set()
    catalog.add_many(row(n) for n in range(4))
    catalog.remove(row(2).filename)
    assert catalog.filenames() == {row(n).filename for n in (0, 1, 3)}


def test_add_many_is_one_transaction(catalog):
    catalog.add(row(1))
    before = catalog.counters()
    # The third row repeats an existing filename: nothing of the batch may stay.
    batch = [row(10), row(11), row(12, filename=row(1).filename)]
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        catalog.add_many(batch)
    assert catalog.filenames() == {row(1).filename}
    assert catalog.counters() == before
    assert catalog.page(10) == [catalog.get(row(1).filename)]


def test_ping(catalog):
    catalog.ping()


def test_a_new_catalog_gets_a_new_epoch(backend, tmp_path, request):
    """The ETag includes the epoch: a catalog made anew must not repeat an old ETag."""
    factory = request.getfixturevalue("postgres") if backend.kind == "postgres" else None
    epochs = set()
    for n in range(3):
        opened = make_backend(backend.kind, tmp_path / f"other{n}", factory).open()
        epochs.add(opened.counters().epoch)
        opened.close()
    assert len(epochs) == 3


# --- the two schemas -------------------------------------------------------------------------


@pytest.mark.postgres
def test_both_schemas_expose_the_same_columns_and_counters(postgres, tmp_path):
    lite = make_backend("sqlite", tmp_path / "lite")
    pg = make_backend("postgres", tmp_path / "pg", postgres)
    for backend in (lite, pg):
        backend.open().close()
    assert lite.columns() == pg.columns()
    assert [name for name, _, _ in pg.columns()] == list(FIELDS)
    assert lite.keys() == pg.keys() == ({"seq"}, {"id", "filename"})
    counter_names = "SELECT name FROM counters ORDER BY name"
    assert lite.query(counter_names) == pg.query(counter_names)
    # the sweeper's pending deletes (a time: TIMESTAMPTZ, or ISO 8601 text in SQLite)
    assert lite.columns("pending_deletes") == pg.columns("pending_deletes")
    assert pg.columns("pending_deletes") == [
        ("filename", "text", False),
        ("since", "timestamp", False),
    ]
    assert lite.keys("pending_deletes") == pg.keys("pending_deletes") == ({"filename"}, set())
    # albums, and which images each holds in what order
    assert lite.columns("albums") == pg.columns("albums")
    assert [name for name, _, _ in pg.columns("albums")] == [
        "id",
        "title",
        "created_at",
        "delete_token_hash",
    ]
    assert lite.keys("albums") == pg.keys("albums") == ({"id"}, set())
    assert lite.columns("album_images") == pg.columns("album_images")
    assert lite.keys("album_images") == pg.keys("album_images")
    assert pg.keys("album_images") == ({"album_id", "image_id"}, set())
    # PostgreSQL has one more: the settings every node shares (002, the admin key)
    assert lite.applied() == numbers("sqlite") == [1, 2, 3, 4, 5, 6]
    assert pg.applied() == numbers("postgres") == [1, 2, 3, 4, 5, 6, 7]


# --- migrations ------------------------------------------------------------------------------

# Each process imports everything first, then opens the catalog at the same wall-clock moment.
_OPEN_AT = """
import sys, time
import imagehost.catalog.postgres, imagehost.catalog.sqlite
from imagehost import config
from imagehost.catalog import open_catalog
settings = config.load({"DATA_DIR": sys.argv[1], "DATABASE_URL": sys.argv[2]}, env_file=None)
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
catalog = open_catalog(settings)
print(catalog.migrations_applied, catalog.counters().total)
catalog.close()
"""
PROCESSES = 4


def test_migrations_applied_once_when_processes_start_together(backend):
    start_at = time.time() + 3  # after every interpreter has started and imported
    argv = [str(backend.settings.data_dir), backend.settings.database_url, str(start_at)]
    procs = [
        subprocess.Popen([sys.executable, "-c", _OPEN_AT, *argv], stdout=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * PROCESSES, outputs
    every = numbers(backend.kind)
    assert sorted(outputs) == [f"{every} 0"] + ["[] 0"] * (PROCESSES - 1)
    assert backend.applied() == every
    opened = backend.open()
    assert opened.migrations_applied == []  # a later start finds nothing to do
    opened.close()


# --- timeouts: 503, never a hang -------------------------------------------------------------


def _refused_within(call, bound_s: float) -> float:
    """`call()` raises ServiceUnavailable within `bound_s` seconds; the time it took."""
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        call()
    took = time.monotonic() - t0
    assert took < bound_s, f"took {took:.2f} s"
    return took


def test_a_stuck_writer_gives_503_within_the_timeout(backend):
    catalog = backend.open(timeout_s=SHORT_TIMEOUT_S)
    catalog.add(row(1))
    try:
        with backend.writer_stuck():
            took = _refused_within(lambda: catalog.add(row(2)), SHORT_TIMEOUT_S + TIMEOUT_SLACK_S)
            assert took >= SHORT_TIMEOUT_S * 0.9  # it did wait for the lock first
            _refused_within(lambda: catalog.remove(row(1).filename), 2 * SHORT_TIMEOUT_S + 1)
            assert catalog.counters().total == 1  # readers are not blocked by the writer
            assert [r.filename for r in catalog.page(10)] == [row(1).filename]
        assert catalog.add(row(2)).seq > 0  # and writing works again once it is gone
        assert catalog.counters().total == 2
    finally:
        catalog.close()


@pytest.mark.postgres
def test_an_exhausted_pool_gives_503_within_the_pool_timeout(postgres, tmp_path):
    backend = make_backend("postgres", tmp_path, postgres)
    catalog = PostgresCatalog(
        backend.settings.database_url, statement_timeout_s=10, pool_timeout_s=0.5, pool_size=1
    )
    try:
        with backend.writer_stuck():
            blocked = threading.Thread(target=lambda: _swallow(catalog.add, row(1)))
            blocked.start()  # takes the only connection and waits for the lock
            time.sleep(0.3)
            took = _refused_within(catalog.counters, 0.5 + TIMEOUT_SLACK_S)
            assert took >= 0.4
        blocked.join(15)
        assert not blocked.is_alive()
        assert catalog.counters().total == 1  # the blocked insert went through afterwards
    finally:
        catalog.close()


def _swallow(call, *args) -> None:
    with contextlib.suppress(ServiceUnavailable):
        call(*args)


@pytest.mark.postgres
def test_a_restarted_database_gives_503_then_recovers_without_reopening(postgres_cluster):
    """Down → 503 within the pool timeout; back up → the same catalog works again within a few
    seconds (the connections the restart closed are replaced)."""
    cluster = postgres_cluster()
    catalog = PostgresCatalog(cluster.new_database(), pool_timeout_s=SHORT_TIMEOUT_S)
    try:
        catalog.add_many(row(n) for n in range(3))
        threads = [threading.Thread(target=catalog.counters) for _ in range(4)]
        for t in threads:  # several pooled connections, all to be closed by the restart
            t.start()
        for t in threads:
            t.join()
        cluster.stop()
        _refused_within(catalog.counters, SHORT_TIMEOUT_S + TIMEOUT_SLACK_S)
        _refused_within(lambda: catalog.add(row(9)), SHORT_TIMEOUT_S + TIMEOUT_SLACK_S)
        cluster.start()
        wait_for(lambda: _answers(catalog), timeout=RECOVERY_S, what="the catalog to recover")
        assert catalog.add(row(3)).seq > 0
        assert [r.filename for r in catalog.page(10)] == [row(n).filename for n in (3, 2, 1, 0)]
    finally:
        catalog.close()


def _answers(catalog: Catalog) -> bool:
    try:
        return catalog.counters().total == 3
    except ServiceUnavailable:
        return False


# --- start-up errors -------------------------------------------------------------------------


def test_an_unreachable_database_stops_start_up_with_one_line(tmp_path):
    port = free_port_range(1)  # nothing listens there
    url = f"postgresql://imagehost:s3cret-pass@127.0.0.1:{port}/imagehost"
    settings = config.load({"DATA_DIR": str(tmp_path), "DATABASE_URL": url}, env_file=None)
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        open_catalog(settings)
    assert time.monotonic() - t0 < 10
    message = str(raised.value)
    assert message.startswith("DATABASE_URL: ") and f"127.0.0.1:{port}" in message
    assert "\n" not in message and "s3cret" not in message, message


@pytest.mark.postgres
def test_a_missing_database_stops_start_up_with_one_line(postgres, tmp_path):
    url = postgres().rsplit("/", 1)[0] + "/no_such_db"
    url = url.replace("://imagehost@", "://imagehost:hunter2@")
    settings = config.load({"DATA_DIR": str(tmp_path), "DATABASE_URL": url}, env_file=None)
    with pytest.raises(ConfigError) as raised:
        open_catalog(settings)
    message = str(raised.value)
    assert message.startswith("DATABASE_URL: ") and "no_such_db" in message
    assert "\n" not in message and "hunter2" not in message, message


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_serve_with_postgres_uploads_lists_and_deletes(postgres, tmp_path):
    running = start_stack("serve", tmp_path, DATABASE_URL=postgres())
    try:
        first = uploaded(running.url, image_bytes("PNG", seed=1), "one.png")
        second = uploaded(running.url, image_bytes("JPEG", seed=2), "two.jpg", "image/jpeg")
        assert [i["id"] for i in listed(running.url)] == [second["id"], first["id"]]
        head = requests.get(f"{running.url}/api/upload/?limit=1", timeout=10)
        assert head.status_code == 200 and head.headers["X-Total-Count"] == "2"
        again = requests.get(
            f"{running.url}/api/upload/?limit=1",
            headers={"If-None-Match": head.headers["ETag"]},
            timeout=10,
        )
        assert again.status_code == 304
        meta = requests.get(first["delete_url"], timeout=10)
        assert meta.status_code == 200 and meta.json()["original_name"] == "one.png"
        gone = requests.delete(
            first["delete_url"], headers={"X-Delete-Token": first["delete_token"]}, timeout=10
        )
        assert gone.status_code == 204
        assert [i["id"] for i in listed(running.url)] == [second["id"]]
        assert requests.get(first["url"], timeout=10).status_code == 404
        health = requests.get(f"{running.url}/api/health", timeout=10)
        assert health.status_code == 200
        assert not (running.data_dir / FILE_NAME).exists()  # the catalog is in PostgreSQL
    finally:
        stop_stack(running)
