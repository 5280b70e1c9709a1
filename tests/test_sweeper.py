"""The delete sweeper: pending deletes in both catalogs, one sweeper at a time per installation
(an flock for SQLite, an advisory lock for PostgreSQL), and end to end with a real SeaweedFS
that is down while an image is deleted and comes back."""

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import need
from support.http import uploaded
from support.images import image_bytes
from support.rows import image_row
from support.seaweed import SEAWEED_MISSING, seaweed_present, start_seaweed
from support.stack import start_stack, stop_stack, wait_for

from imagehost import config, maintenance, sweeper
from imagehost.catalog import FILE_NAME, Catalog, open_catalog
from imagehost.errors import ServiceUnavailable
from imagehost.store import LocalStore
from imagehost.store.keys import thumbnail_key
from imagehost.store.s3 import RETRY_TIMEOUT_S

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# A sweep removes the objects within one interval of S3 being back, plus the grace of a young
# entry and a round that was still failing against the stopped server; slack for a busy CI.
SWEPT_WITHIN_S = sweeper.SWEEP_INTERVAL_S + sweeper.SWEEP_GRACE_S + RETRY_TIMEOUT_S + 10
LOCK_RACE_S = 1.0  # how long the two sweepers contend for the lock


row = image_row


def settings_of(kind: str, root: Path, request) -> config.Settings:
    environ = {"DATA_DIR": str(root / "data"), "IMAGES_DIR": str(root / "images")}
    if kind == "postgres":
        environ["DATABASE_URL"] = request.getfixturevalue("postgres")()
    return config.load(environ, env_file=None)


@pytest.fixture(params=KINDS)
def settings(request, tmp_path) -> config.Settings:
    """A new catalog database of each kind (SQLite in DATA_DIR, or a PostgreSQL database)."""
    return settings_of(request.param, tmp_path, request)


@pytest.fixture
def catalogs(settings) -> Iterator[list[Catalog]]:
    """Two catalogs opened on the same database, as two worker processes (or nodes) have."""
    opened = [open_catalog(settings), open_catalog(settings)]
    yield opened
    for catalog in opened:
        catalog.close()


def backdate(settings: config.Settings, seconds: float) -> None:
    """Make every pending delete `seconds` older (as if removed that long ago)."""
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as conn:
            conn.execute(
                "UPDATE pending_deletes SET since = since - make_interval(secs => %s)", (seconds,)
            )
        return
    with contextlib.closing(sqlite3.connect(settings.data_dir / FILE_NAME)) as conn, conn:
        conn.execute(
            "UPDATE pending_deletes SET since = strftime('%Y-%m-%dT%H:%M:%fZ', since, ?)",
            (f"-{seconds} seconds",),
        )


# --- the catalog's pending deletes -----------------------------------------------------------


def test_remove_records_a_pending_delete_until_forgotten(catalogs, settings):
    catalog, other = catalogs
    catalog.add_many(row(n) for n in range(3))
    assert catalog.remove(row(0).filename) and catalog.remove(row(1).filename)
    assert not catalog.remove(row(0).filename)  # no row: nothing more is recorded
    assert catalog.pending_deletes(0, 10) == [row(0).filename, row(1).filename]  # oldest first
    assert other.pending_deletes(0, 1) == [row(0).filename]  # every process sees them
    assert catalog.pending_deletes(60, 10) == []  # too young
    backdate(settings, 120)
    assert catalog.pending_deletes(60, 10) == [row(0).filename, row(1).filename]
    other.forget_deletes([row(0).filename, "unknown00000.png"])
    other.forget_deletes([])
    assert catalog.pending_deletes(0, 10) == [row(1).filename]
    assert catalog.filenames() == {row(2).filename}


# --- one sweeper at a time -------------------------------------------------------------------


def test_two_sweepers_on_one_catalog_never_hold_the_lock_at_once(catalogs):
    first, second = catalogs
    with first.sweeper_lock() as held:
        assert held
        with second.sweeper_lock() as also, first.sweeper_lock() as again:
            assert not also and not again  # tried without waiting, refused
    with second.sweeper_lock() as held:
        assert held  # released at the end of the block

    holders, most, turns = 0, 0, {0: 0, 1: 0}
    guard = threading.Lock()
    failures: list[BaseException] = []

    def contend(n: int, catalog: Catalog) -> None:
        nonlocal holders, most
        deadline = time.monotonic() + LOCK_RACE_S
        try:
            while time.monotonic() < deadline:
                with catalog.sweeper_lock() as held:
                    if held:
                        with guard:
                            holders += 1
                            most = max(most, holders)
                            turns[n] += 1
                        time.sleep(0.002)
                        with guard:
                            holders -= 1
                time.sleep(0.001)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=contend, args=(n, c)) for n, c in enumerate(catalogs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures
    assert most == 1, "two sweepers held the lock at once"
    assert turns[0] > 0 and turns[1] > 0, turns  # and each did get it


# --- a sweep ---------------------------------------------------------------------------------


def stored(store: LocalStore, n: int) -> list[Path]:
    """The two files of row(n) written straight into the local store."""
    paths = [store.image_path(row(n).filename), store.thumbnail_path(row(n).filename)]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return paths


def test_a_sweep_removes_the_objects_then_forgets_and_retries_after_a_failure(
    catalogs, settings, monkeypatch
):
    catalog, other = catalogs
    store = LocalStore(settings.images_dir)
    files = [stored(store, n) for n in range(3)]
    catalog.add_many(row(n) for n in range(3))
    for n in range(3):
        catalog.remove(row(n).filename)
    first = sweeper.Sweeper(catalog, store, interval_s=0.05, grace_s=0, limit=2)
    second = sweeper.Sweeper(other, store, interval_s=0.05, grace_s=0, limit=2)
    with first.catalog.sweeper_lock():
        assert second.sweep_once() is None  # another sweeper holds the lock: nothing done

    real_delete = store.delete

    def down(filename: str) -> None:
        raise ServiceUnavailable("The image store is not reachable.")

    monkeypatch.setattr(store, "delete", down)
    with pytest.raises(ServiceUnavailable):
        first.sweep_once()
    assert len(catalog.pending_deletes(0, 10)) == 3  # nothing forgotten, all still there
    monkeypatch.setattr(store, "delete", real_delete)
    assert first.sweep_once() == [row(0).filename, row(1).filename]  # `limit` a round
    assert not any(p.exists() for p in files[0] + files[1]) and all(p.exists() for p in files[2])
    assert catalog.pending_deletes(0, 10) == [row(2).filename]

    second.start()  # the thread: the rest within a few rounds
    try:
        wait_for(lambda: not catalog.pending_deletes(0, 10), 10, "the sweeper thread")
    finally:
        second.stop()
    assert not any(p.exists() for p in files[2])


def test_check_sweeps_pending_deletes_and_never_reindexes_them(catalogs, settings):
    catalog, _ = catalogs
    store = LocalStore(settings.images_dir)
    files = stored(store, 1)
    catalog.add(row(1))
    catalog.remove(row(1).filename)  # as a delete whose store step failed
    dry = maintenance.check(settings, dry_run=True)
    assert dry.lines() == [f"pending delete: {row(1).filename}"]
    assert all(p.exists() for p in files) and catalog.pending_deletes(0, 10) == [row(1).filename]
    report = maintenance.check(settings)
    assert report.lines() == [f"pending delete: {row(1).filename}"]
    assert not any(p.exists() for p in files)
    assert catalog.pending_deletes(0, 10) == [] and catalog.filenames() == set()
    assert maintenance.check(settings).clean


# --- end to end: S3 down during a delete ------------------------------------------------------


@pytest.mark.s3
def test_a_delete_while_s3_is_down_is_swept_once_it_is_back(tmp_path):
    need("SeaweedFS", seaweed_present(), SEAWEED_MISSING)
    weed = start_seaweed(tmp_path / "seaweed")  # our own: this test stops it
    try:
        running = start_stack("serve", tmp_path / "serve", **weed.settings())
        try:
            image = uploaded(running.url, image_bytes("PNG", seed=21))
            kept = uploaded(running.url, image_bytes("PNG", seed=22))
            keys = {image["filename"], thumbnail_key(image["filename"])}
            assert keys <= bucket_keys(weed)
            catalog = open_catalog(config.load(running.env, env_file=None))
            try:
                weed.stop()
                gone = requests.delete(
                    image["delete_url"],
                    headers={"X-Delete-Token": image["delete_token"]},
                    timeout=30,
                )
                assert gone.status_code == 204, gone.text
                assert requests.get(image["delete_url"], timeout=10).status_code == 404
                assert catalog.filenames() == {kept["filename"]}  # the row is gone
                assert catalog.pending_deletes(0, 10) == [image["filename"]]
                weed.start()
                back = time.monotonic()
                wait_for(
                    lambda: not keys & bucket_keys(weed),
                    SWEPT_WITHIN_S,
                    "the sweeper to remove the objects",
                )
                assert time.monotonic() - back < SWEPT_WITHIN_S
                assert catalog.pending_deletes(0, 10) == []
                kept_keys = {kept["filename"], thumbnail_key(kept["filename"])}
                assert kept_keys <= bucket_keys(weed)  # nothing else swept
                assert "the sweeper removes them" in running.console  # logged at warning
            finally:
                catalog.close()
        finally:
            stop_stack(running)
    finally:
        weed.stop()


def bucket_keys(weed) -> set[str]:
    client = weed.boto3_client()
    keys = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=weed.bucket):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys
