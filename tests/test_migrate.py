"""Moving an installation (issue 12, test 7): a store made in local mode, copied by
`imagehost migrate-catalog` and `migrate-store` into a real PostgreSQL and a real SeaweedFS
bucket, then served from there; both commands run again, interrupted and refused in part;
import_rows on both catalogs; the admin key that nodes on one database share. No mocks: boto3
is the independent look into the bucket, psycopg into the database."""

import contextlib
import io
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import requests
from PIL import Image
from support.http import assert_error, listing, uploaded
from support.images import image_bytes
from support.rows import image_row
from support.stack import base_env, run_cli, start_stack, wait_for

from imagehost import config, formats, headers, migrate, rights
from imagehost.catalog import ImageRow, ImportConflict
from imagehost.catalog.postgres import PostgresCatalog
from imagehost.catalog.sqlite import SQLiteCatalog
from imagehost.store.keys import thumbnail_key, thumbnail_type

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
IMAGES = 200
DELETED_BEFORE = 5  # deleted in local mode: seq has gaps, version is ahead of total
UPLOAD_CLIENTS = 8  # `serve` is threaded; 8 clients keep both cores busy
FORMAT_CYCLE = [formats.FORMATS[name] for name in ("png", "jpeg", "gif", "webp")]
SUMMARY = re.compile(r"(\d+) copied, (\d+) skipped \(already there\), (\d+) failed")
KEY_IN_LINK = re.compile(r"upload\.html#key=(\S+)")
KILL_AFTER_OBJECTS = 40  # the interrupted run is killed once this many objects are in
# (its ~400 objects take ~2 s one image at a time here, against a poll every 0.1 s)
MIGRATE_TIMEOUT_S = 120


# --- helpers -----------------------------------------------------------------------------------


def empty(seaweed) -> None:
    """Empty the session's one bucket (SeaweedFS cannot make one per test here)."""
    seaweed.empty()


@pytest.fixture
def bucket(seaweed) -> Iterator:
    """The session's SeaweedFS with its bucket emptied before and after the test."""
    empty(seaweed)
    yield seaweed
    empty(seaweed)


def keys_in(seaweed) -> dict[str, int]:
    """Key → size of every object in the bucket, through boto3."""
    client = seaweed.boto3_client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=seaweed.bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["Size"]
    return found


def counts(output: str) -> tuple[int, int, int]:
    """(copied, skipped, failed) from a migrate command's summary line."""
    found = SUMMARY.search(output)
    assert found, output
    return tuple(int(n) for n in found.groups())


def all_pages(url: str, **headers: str) -> tuple[list[dict], int]:
    """Every image of the listing, newest first, following its Link cursor; and its total."""
    items, total = [], None
    next_url = f"{url}/api/upload/?limit=200"
    while next_url:
        resp = requests.get(next_url, headers=headers, timeout=30)
        assert resp.status_code == 200, resp.text
        total = int(resp.headers["X-Total-Count"])
        items += resp.json()
        next_url = resp.links.get("next", {}).get("url")
    return items, total


def without_base(item: dict, base: str) -> dict:
    """An image object with its URLs relative, to compare what two servers answer."""
    return {k: v.removeprefix(base) if k.endswith("url") else v for k, v in item.items()}


def folder_state(folder: Path) -> dict[str, int]:
    """Relative path → size of every file under `folder`."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def upload_many(url: str, count: int) -> list[dict]:
    """`count` uploads through the real API (multipart), the formats in turn, from
    UPLOAD_CLIENTS clients at once; the answers (with delete tokens) in upload order."""

    def one(n: int) -> dict:
        fmt = FORMAT_CYCLE[n % len(FORMAT_CYCLE)]
        data = image_bytes(fmt.pil_name, size=(40 + n % 30, 30 + n % 20), seed=n)
        return uploaded(url, data, name=f"photo {n} é.{fmt.ext}", ctype=fmt.content_type)

    with ThreadPoolExecutor(UPLOAD_CLIENTS) as pool:
        return list(pool.map(one, range(count)))


def delete(url: str, item: dict) -> int:
    """DELETE an image at `url` with its own delete token; the status."""
    resp = requests.delete(
        f"{url}/api/upload/{item['filename']}",
        headers={"X-Delete-Token": item["delete_token"]},
        timeout=30,
    )
    return resp.status_code


# --- the whole move ----------------------------------------------------------------------------


def thumb_key(item: dict) -> str:
    return thumbnail_key(item["filename"])


def etags(seaweed) -> dict[str, str]:
    """Key → ETag of every object: what a run that changes nothing leaves as it was."""
    client = seaweed.boto3_client()
    return {k: client.head_object(Bucket=seaweed.bucket, Key=k)["ETag"] for k in keys_in(seaweed)}


def kill_part_way(env: dict[str, str], seaweed) -> dict[str, int]:
    """Run migrate-store one image at a time and SIGKILL it once KILL_AFTER_OBJECTS objects
    are in the bucket; what it left there."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagehost", "migrate-store", "--jobs", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: len(keys_in(seaweed)) >= KILL_AFTER_OBJECTS or proc.poll() is not None,
            timeout=MIGRATE_TIMEOUT_S,
            what="migrate-store to copy some objects",
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, "migrate-store ended before it could be killed"
    return keys_in(seaweed)


def assert_served_as_before(new, old, kept: list[dict], seaweed, remade: dict) -> None:
    """Every image's metadata, bytes (from `serve` and, through boto3, from the bucket) and
    thumbnail at `new` are those `old` had, with an upload's headers on every object."""
    client = seaweed.boto3_client()
    for item in kept:
        meta = requests.get(f"{new.url}/api/upload/{item['filename']}", timeout=30)
        assert meta.status_code == 200
        answered_then = {
            k: v for k, v in item.items() if k not in ("delete_token", "delete_page_url")
        }
        assert without_base(meta.json(), new.url) == without_base(answered_then, old.url)
        original = (old.images_dir / item["filename"]).read_bytes()
        served = requests.get(f"{new.url}/images/{item['filename']}", timeout=30)
        assert (served.status_code, served.content) == (200, original)
        thumb = requests.get(f"{new.url}/images/{thumb_key(item)}", timeout=30)
        assert thumb.status_code == 200
        thumb_type = thumbnail_type(thumb_key(item).removeprefix("thumbs/"))
        assert thumb.headers["Content-Type"] == thumb_type
        if item is remade:  # its thumbnail was lost in the old folder: migrate-store made one
            with Image.open(io.BytesIO(thumb.content)) as made:
                assert Image.MIME[made.format] == thumb_type
        else:
            assert thumb.content == (old.images_dir / thumb_key(item)).read_bytes()
        for key, ctype, body in (
            (item["filename"], item["content_type"], original),
            (thumb_key(item), thumb_type, thumb.content),
        ):
            got = client.get_object(Bucket=seaweed.bucket, Key=key)
            assert (got["ContentType"], got["CacheControl"]) == (ctype, headers.IMAGE_CACHE)
            assert got["Body"].read() == body


@pytest.mark.postgres
@pytest.mark.s3
def test_an_installation_moves_to_postgres_and_s3(serve_factory, postgres, bucket):
    # 1. An installation in local mode: files in IMAGES_DIR, SQLite in DATA_DIR.
    old = serve_factory()
    made = upload_many(old.url, IMAGES)
    gone_before = made[10 : 10 + DELETED_BEFORE]
    assert [delete(old.url, item) for item in gone_before] == [204] * DELETED_BEFORE
    kept = [item for item in made if item not in gone_before]
    objects = 2 * len(kept)  # an original and a thumbnail each
    old_items, old_total = all_pages(old.url)
    assert old_total == len(old_items) == IMAGES - DELETED_BEFORE
    admin_key = old.admin_key  # generated, in DATA_DIR/admin_key
    proofs = [{"filename": i["filename"], "delete_token": i["delete_token"]} for i in kept[5:8]]
    made_album = requests.post(
        f"{old.url}/api/albums", json={"title": "moved", "images": proofs[::-1]}, timeout=30
    )
    assert made_album.status_code == 201, made_album.text
    album = made_album.json()
    old.stop()
    # Drift the commands must cope with: an original whose thumbnail is lost (a new one is
    # made), an intruder at an original's key (not overwritten: that run fails, says so), and
    # a thumbnail left by an earlier run killed between its two PUTs (written again).
    no_thumb, intruded, half_done = kept[0], kept[1], kept[2]
    (old.images_dir / thumb_key(no_thumb)).unlink()
    client = bucket.boto3_client()
    client.put_object(Bucket=bucket.bucket, Key=intruded["filename"], Body=b"somebody else's")
    half_thumb = (old.images_dir / thumb_key(half_done)).read_bytes()
    client.put_object(Bucket=bucket.bucket, Key=thumb_key(half_done), Body=half_thumb)
    source_before = folder_state(old.images_dir)
    database_url = postgres()
    env = {**old.env, "DATABASE_URL": database_url, **bucket.settings()}

    # 2. migrate-catalog: every row, seq kept, in one transaction; a second run changes nothing.
    done = run_cli(env, "migrate-catalog", timeout=MIGRATE_TIMEOUT_S)
    assert done.returncode == 0, done.stderr + done.stdout
    assert counts(done.stdout) == (len(kept), 0, 0)
    assert "is the one PostgreSQL keeps" in done.stdout
    assert "albums: 1 copied, 0 skipped (already there), 0 failed" in done.stdout
    lite = SQLiteCatalog(old.data_dir / "catalog.sqlite3")
    pg = PostgresCatalog(database_url)
    try:
        assert pg.page(1000) == lite.page(1000)  # both catalogs agree, row for row, seq too
        assert (pg.counters().total, pg.counters().version) == (len(kept), len(kept))
        assert pg.counters().epoch != lite.counters().epoch  # its own: no old ETag repeats
        after_first = pg.counters()
        again = run_cli(env, "migrate-catalog", timeout=MIGRATE_TIMEOUT_S)
        assert again.returncode == 0, again.stderr + again.stdout
        assert counts(again.stdout) == (0, len(kept), 0)
        assert "albums: 0 copied, 1 skipped (already there), 0 failed" in again.stdout
        assert pg.counters() == after_first and pg.page(1000) == lite.page(1000)
    finally:
        lite.close()
        pg.close()

    # 3. migrate-store: killed part-way, resumed (failing on the intruder only), finished once
    # the intruder is gone, then run again to no effect.
    partial = kill_part_way(env, bucket)
    assert KILL_AFTER_OBJECTS <= len(partial) < objects
    resumed = run_cli(env, "migrate-store", timeout=MIGRATE_TIMEOUT_S)
    assert resumed.returncode == 1, resumed.stderr + resumed.stdout
    copied, skipped, failed = counts(resumed.stdout)
    assert failed == 1 and copied + skipped == objects - 1
    assert f"{intruded['filename']}: the bucket holds another object" in resumed.stderr
    # What the killed run wrote is skipped, less the intruder, the planted thumbnail and the
    # thumbnail of the image it was killed on, whose originals are written now.
    assert skipped >= len(partial) - 3
    intruder = client.get_object(Bucket=bucket.bucket, Key=intruded["filename"])
    assert intruder["Body"].read() == b"somebody else's"
    client.delete_object(Bucket=bucket.bucket, Key=intruded["filename"])
    finished = run_cli(env, "migrate-store", timeout=MIGRATE_TIMEOUT_S)
    assert finished.returncode == 0, finished.stderr + finished.stdout
    assert counts(finished.stdout) == (2, objects - 2, 0)  # the original, its thumbnail again
    before_last = etags(bucket)
    last = run_cli(env, "migrate-store", timeout=MIGRATE_TIMEOUT_S)
    assert last.returncode == 0 and counts(last.stdout) == (0, objects, 0), last.stdout
    assert etags(bucket) == before_last
    assert folder_state(old.images_dir) == source_before  # the source is only read
    assert set(keys_in(bucket)) == {item["filename"] for item in kept} | {
        thumb_key(item) for item in kept
    }

    # 4. A node of the new installation: its own empty folders, nothing but the settings.
    new = serve_factory(DATABASE_URL=database_url, LISTING="key", **bucket.settings())
    checked = new.cli("check")
    assert checked.returncode == 0 and "store clean" in checked.stdout, checked.stdout
    auth = {"Authorization": f"Bearer {admin_key}"}  # the old key, carried over
    new_items, new_total = all_pages(new.url, **auth)
    assert new_total == old_total
    relative = [without_base(item, new.url) for item in new_items]
    assert relative == [without_base(item, old.url) for item in old_items]  # order included
    assert not (new.data_dir / rights.ADMIN_KEY_FILE).exists()
    assert_served_as_before(new, old, kept, bucket, remade=no_thumb)
    moved = requests.get(f"{new.url}/api/albums/{album['id']}", timeout=30).json()
    assert moved["title"] == "moved"
    assert [i["filename"] for i in moved["images"]] == [p["filename"] for p in proofs[::-1]]
    renamed = requests.patch(  # its token, handed out by the old installation, still works
        moved["api_url"],
        json={"title": "moved again"},
        headers={"X-Delete-Token": album["delete_token"]},
        timeout=30,
    )
    assert renamed.status_code == 200, renamed.text

    # 5. Delete tokens work; new rows come after the imported ones.
    for item in kept[-3:]:
        assert delete(new.url, item) == 204
        gone = requests.get(f"{new.url}/api/upload/{item['filename']}", timeout=30)
        assert gone.status_code == 404
        for key in (item["filename"], thumb_key(item)):
            with pytest.raises(client.exceptions.ClientError):
                client.head_object(Bucket=bucket.bucket, Key=key)
    added = uploaded(new.url, image_bytes("PNG", seed=9999))
    newest, total = all_pages(new.url, **auth)
    assert newest[0]["filename"] == added["filename"] and total == len(kept) - 3 + 1
    with contextlib.closing(PostgresCatalog(database_url)) as pg:
        assert pg.get(added["filename"]).seq > max(r.seq for r in pg.page(1000)[1:])


# --- migrate-catalog in parts ----------------------------------------------------------------


def rows(count: int, first_seq: int = 1, step: int = 3, prefix: str = "imported") -> list[ImageRow]:
    """Rows as an old catalog holds them: seq with gaps (deleted images), tokens or none."""
    return [
        image_row(
            n,
            prefix,
            seq=first_seq + n * step,
            created_at=f"2026-01-{1 + n % 28:02d}T06:00:00.000000Z",
        )
        for n in range(count)
    ]


@pytest.fixture(params=KINDS)
def catalog(request, tmp_path) -> Iterator:
    if request.param == "sqlite":
        opened = SQLiteCatalog(tmp_path / "catalog.sqlite3")
    else:
        opened = PostgresCatalog(request.getfixturevalue("postgres")())
    yield opened
    opened.close()


def test_import_rows_keeps_seq_and_skips_what_is_there(catalog):
    """The contract both catalogs keep (they agree): seq kept, counters counted, new rows after
    the largest seq, a second import adds nothing, a taken seq refuses the whole batch."""
    given = rows(5)
    assert catalog.import_rows(given) == given
    assert catalog.page(10) == given[::-1]
    start = catalog.counters()
    assert (start.total, start.version) == (5, 5)
    assert catalog.import_rows(given) == []  # idempotent
    assert catalog.counters() == start
    assert catalog.import_rows([*given, *rows(7)[5:]]) == rows(7)[5:]  # only the new ones
    new = catalog.add(replace(rows(1)[0], id="afterwards00000", filename="afterwards00000.png"))
    assert new.seq > rows(7)[-1].seq
    before = catalog.counters()
    other = replace(rows(1)[0], id="anotherimage000", filename="anotherimage000.png")  # seq 1
    with pytest.raises(ImportConflict):
        catalog.import_rows([*rows(9)[7:], other])
    assert catalog.counters() == before and catalog.get(rows(9)[7].filename) is None


def test_import_rows_never_moves_the_sequence_back(catalog):
    catalog.import_rows(rows(3))  # seq 1, 4, 7
    added = catalog.add(replace(rows(1)[0], id="afterwards00000", filename="afterwards00000.png"))
    catalog.remove(added.filename)
    assert catalog.import_rows(rows(1, first_seq=2, prefix="belowseq"))  # below the sequence
    again = catalog.add(replace(rows(1)[0], id="afterwards00001", filename="afterwards00001.png"))
    assert again.seq > added.seq


def test_only_a_shared_catalog_keeps_settings(catalog):
    kept = catalog.keep_setting("admin_key", "first")
    if isinstance(catalog, SQLiteCatalog):
        assert kept is None
        return
    assert kept == "first" and catalog.keep_setting("admin_key", "second") == "first"


@pytest.mark.postgres
def test_migrate_catalog_into_a_database_with_other_images_copies_nothing(postgres, tmp_path):
    settings = config.load(
        {"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": postgres()}, env_file=None
    )
    lite = SQLiteCatalog(settings.data_dir / "catalog.sqlite3")
    lite.import_rows(rows(4))
    lite.close()
    with contextlib.closing(PostgresCatalog(settings.database_url)) as pg:
        pg.add(replace(rows(1)[0], id="uploadedthere00", filename="uploadedthere00.png"))  # seq 1
        before = pg.counters()
        report = migrate.migrate_catalog(settings)
        assert not report.ok and "nothing copied" in report.problems()[0]
        assert "seq" in report.problems()[0]
        assert (report.tally.copied, report.tally.skipped) == (0, 0)
        assert pg.counters() == before


@pytest.mark.postgres
def test_migrate_catalog_keeps_an_admin_key_the_database_has(postgres, tmp_path):
    """The first key stored wins, as between nodes: a node started on PostgreSQL before the
    migration made one, and the nodes may use it already."""
    environ = {"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": postgres()}
    settings = config.load(environ, env_file=None)
    SQLiteCatalog(settings.data_dir / "catalog.sqlite3").close()
    (settings.data_dir / rights.ADMIN_KEY_FILE).write_text("the-old-key\n")
    shared = rights.load_admin_key(settings)  # as a node starting there would
    assert shared != "the-old-key"
    report = migrate.migrate_catalog(settings)
    assert report.ok and "keeps another one already" in report.summary()
    assert rights.load_admin_key(settings) == shared
    ours = config.load({**environ, "ADMIN_KEY": "explicit-key-wins"}, env_file=None)
    assert rights.load_admin_key(ours) == "explicit-key-wins"


def test_the_commands_name_the_setting_they_need(tmp_path):
    env = base_env(tmp_path)
    done = run_cli(env, "migrate-store")
    assert done.returncode == 2 and "STORAGE" in done.stderr and "s3" in done.stderr
    done = run_cli(env, "migrate-catalog")
    assert done.returncode == 2 and "DATABASE_URL" in done.stderr
    done = run_cli(
        {**env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "migrate-catalog"
    )
    assert done.returncode == 2 and "no SQLite catalog" in done.stderr


# --- the admin key on several nodes ----------------------------------------------------------


def management_key(running) -> str:
    """The admin key from the management link a node logs at start."""
    found = wait_for(lambda: KEY_IN_LINK.search(running.console), what="the management link")
    return found.group(1)


@pytest.mark.postgres
def test_nodes_on_one_database_agree_on_the_admin_key(postgres, tmp_path):
    database_url = postgres()
    nodes, errors = [], []

    def start(n: int) -> None:
        try:
            nodes.append(
                start_stack(
                    "serve", tmp_path / f"node{n}", DATABASE_URL=database_url, LISTING="key"
                )
            )
        except Exception as exc:  # reported below, after every started node is stopped
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors, errors
        keys = {management_key(node) for node in nodes}
        assert len(keys) == 1, "the nodes disagree on the admin key"
        key = keys.pop()
        for node in nodes:
            assert listing(node.url, Authorization=f"Bearer {key}").status_code == 200
            assert_error(listing(node.url, Authorization="Bearer wrong"), 403, "forbidden")
            assert not (node.data_dir / rights.ADMIN_KEY_FILE).exists()
        with psycopg.connect(database_url) as conn:
            stored = conn.execute("SELECT value FROM settings WHERE name = 'admin_key'").fetchone()
        assert stored == (key,)
        explicit = start_stack(
            "serve",
            tmp_path / "explicit",
            DATABASE_URL=database_url,
            LISTING="key",
            ADMIN_KEY="explicit-admin-key-0123456789",
        )
        nodes.append(explicit)
        assert management_key(explicit) == "explicit-admin-key-0123456789"
        assert listing(explicit.url, Authorization="Bearer explicit-admin-key-0123456789").ok
        assert_error(listing(explicit.url, Authorization=f"Bearer {key}"), 403, "forbidden")
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT value FROM settings").fetchall() == [(key,)]
    finally:
        for node in nodes:
            node.stop()
