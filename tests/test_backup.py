"""`imagehost backup` and `imagehost restore` (issue 14, item 6): a backup taken while a running
`serve` takes uploads and deletes, restored into a new installation (new folders, or a new
PostgreSQL database and an emptied bucket) and served from there; an image deleted between the
snapshot and its copy; the refusals. Both modes: local files + SQLite, and S3 + PostgreSQL."""

import contextlib
import json
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from support.checks import check_clean, remove_by_hand, stored_keys
from support.http import uploaded
from support.images import image_bytes
from support.seaweed import boto3_client
from support.stack import base_env, run_cli, wait_for

from imagehost import backup, config, headers, rights
from imagehost.catalog import open_catalog
from imagehost.catalog.sqlite import SQLiteCatalog
from imagehost.store.keys import thumbnail_key

MODES = [
    pytest.param("local", id="local"),
    pytest.param("pg+s3", id="pg+s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
]
SEEDED = 30  # uploaded before the load starts
LOAD_CLIENTS = 2
LOAD_MAX_EACH = 200  # uploads a load client makes at most
LOAD_MAX_S = 60.0  # and for at most this long, whatever happens to the backup
DELETED_DURING = 5  # seeded images deleted while the backup runs
CLI_TIMEOUT_S = 120


# --- helpers -----------------------------------------------------------------------------------


@dataclass
class Ack:
    at: float  # time.monotonic() when the 201 arrived
    item: dict  # the answer: id, filename, delete_token, …


@dataclass
class UploadLoad:
    """LOAD_CLIENTS threads uploading new images to `url` until stopped, LOAD_MAX_EACH uploads
    each or LOAD_MAX_S seconds, whichever comes first; every acknowledged upload is kept."""

    url: str
    acks: list[Ack] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "UploadLoad":
        for client in range(LOAD_CLIENTS):
            thread = threading.Thread(target=self._run, args=(client,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _run(self, client: int) -> None:
        deadline = time.monotonic() + LOAD_MAX_S
        for n in range(LOAD_MAX_EACH):
            if self.stopping.is_set() or time.monotonic() > deadline:
                return
            seed = 1000 + client * LOAD_MAX_EACH + n
            data = image_bytes("PNG", size=(40 + n % 20, 30), seed=seed)
            try:
                resp = requests.post(
                    f"{self.url}/api/upload/",
                    files={"file": (f"load {client}-{n}.png", data, "image/png")},
                    timeout=30,
                )
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
                return
            if resp.status_code != 201:
                self.errors.append(f"{resp.status_code} {resp.text[:200]}")
                return
            self.acks.append(Ack(time.monotonic(), resp.json()))

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self.threads), "a load client did not stop"

    def before(self, moment: float) -> list[dict]:
        return [ack.item for ack in list(self.acks) if ack.at < moment]


def thumb_key(item: dict) -> str:
    return thumbnail_key(item["filename"])


def delete(url: str, item: dict, **headers: str) -> int:
    headers.setdefault("X-Delete-Token", item["delete_token"])
    resp = requests.delete(f"{url}/api/upload/{item['filename']}", headers=headers, timeout=30)
    return resp.status_code


def delete_during(
    url: str, items: list[dict], backing_up: threading.Event, statuses: list[int]
) -> None:
    """Delete `items` one by one while the backup runs, spread over its first moments."""
    for item in items:
        if not backing_up.is_set():
            return
        statuses.append(delete(url, item))
        time.sleep(0.05)


def served(url: str, item: dict) -> tuple[dict, bytes, bytes]:
    """What `url` answers for an image: its metadata (URLs relative), its bytes, its
    thumbnail's bytes."""
    meta = requests.get(f"{url}/api/upload/{item['filename']}", timeout=30)
    assert meta.status_code == 200, (item["filename"], meta.status_code)
    original = requests.get(f"{url}/images/{item['filename']}", timeout=30)
    thumb = requests.get(f"{url}/images/{thumb_key(item)}", timeout=30)
    assert (original.status_code, thumb.status_code) == (200, 200), item["filename"]
    relative = {k: v.removeprefix(url) if k.endswith("url") else v for k, v in meta.json().items()}
    return relative, original.content, thumb.content


def listed_total(url: str, admin_key: str) -> int:
    resp = requests.get(
        f"{url}/api/upload/?limit=1", headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    return int(resp.headers["X-Total-Count"])


def backup_files(folder: Path) -> set[str]:
    """The originals and thumbnails a backup holds, as store keys."""
    images = folder / backup.IMAGES
    return {
        str(p.relative_to(images))
        for p in images.rglob("*")
        if p.is_file() and backup.IMAGES_TEMP_DIR not in p.parts
    }


def keys_of(items: list[dict]) -> set[str]:
    return {item["filename"] for item in items} | {thumb_key(item) for item in items}


def assert_private(folder: Path) -> None:
    """No one but the owner reaches into the backup; the files it wrote itself are 0600."""
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == backup.PRIVATE_DIR, (path, oct(mode))
        elif path.parent == folder:
            assert mode == backup.PRIVATE_FILE, (path, oct(mode))


def new_installation(tmp_path: Path, serve_mode: str, request) -> dict[str, str]:
    """The settings of the installation a test restores into (the root serve_factory's next
    `serve` gets): new folders, and for pg+s3 a new database and the bucket, emptied (the old
    installation's objects are in the backup)."""
    if serve_mode == "local":
        return {}
    bucket = request.getfixturevalue("shared_bucket")
    bucket.empty()
    return {"DATABASE_URL": request.getfixturevalue("postgres")(), **bucket.settings()}


def bucket_of(env: dict[str, str]):
    return boto3_client(
        env["S3_ENDPOINT_URL"], env["S3_ACCESS_KEY_ID"], env["S3_SECRET_ACCESS_KEY"]
    )


def put_into(env: dict[str, str], key: str, data: bytes | None) -> None:
    """Put (or with None remove) an object in the store of `env` behind imagehost's back."""
    if env.get("STORAGE") == "s3":
        if data is None:
            bucket_of(env).delete_object(Bucket=env["S3_BUCKET"], Key=key)
        else:
            bucket_of(env).put_object(Bucket=env["S3_BUCKET"], Key=key, Body=data)
        return
    path = Path(env["IMAGES_DIR"]) / key
    if data is None:
        path.unlink()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / backup.MANIFEST).read_text())


# --- a backup under load, restored into a new installation -------------------------------------


@pytest.mark.parametrize("serve_mode", MODES, indirect=True)
def test_a_backup_under_load_restores_every_acknowledged_upload(
    serve_factory, serve_mode, serve_settings, tmp_path, request
):
    old = serve_factory(LISTING="key")
    admin_key = old.admin_key
    seeded = [
        uploaded(old.url, image_bytes("PNG", size=(50, 40), seed=n), name=f"seeded {n} é.png")
        for n in range(SEEDED)
    ]
    proofs = [{"filename": i["filename"], "delete_token": i["delete_token"]} for i in seeded[-3:]]
    made = requests.post(
        f"{old.url}/api/albums", json={"title": "kept", "images": proofs}, timeout=30
    )
    assert made.status_code == 201, made.text
    album = made.json()
    doomed = seeded[:DELETED_DURING]  # deleted while the backup runs
    folder = tmp_path / "backup"

    load = UploadLoad(old.url).start()
    try:
        wait_for(lambda: len(load.acks) >= 10, timeout=60, what="the load to get going")
        started = time.monotonic()
        backing_up = threading.Event()
        backing_up.set()
        statuses: list[int] = []
        deleter = threading.Thread(
            target=delete_during, args=(old.url, doomed, backing_up, statuses)
        )
        deleter.start()
        done = old.cli("backup", str(folder), timeout=CLI_TIMEOUT_S)
        ended = time.monotonic()
        backing_up.clear()
        deleter.join(60)
    finally:
        load.stop()
    assert not load.errors, load.errors
    assert set(statuses) <= {204}, statuses
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("backup: ") and done.stdout.count("\n") == 1, done.stdout
    assert load.before(ended) != load.before(started), "no upload was acknowledged meanwhile"
    acknowledged = [i for i in seeded if i not in doomed] + load.before(started)
    assert_private(folder)
    manifest = manifest_of(folder)
    assert manifest["version"] == backup.VERSION
    assert manifest["catalog"] == ("sqlite" if serve_mode == "local" else "postgres")
    assert manifest["store"] == old.storage
    held = backup_files(folder)
    assert manifest["files"] == len(held) == 2 * manifest["images"]
    assert keys_of(acknowledged) <= held
    if serve_mode == "local":  # the snapshot names exactly the files the backup holds
        with contextlib.closing(SQLiteCatalog(folder / backup.SQLITE_FILE)) as snapshot:
            assert snapshot.filenames() == {k for k in held if "/" not in k}
        assert (folder / "admin_key").read_text().strip() == admin_key
    else:
        assert not (folder / "admin_key").exists()  # PostgreSQL keeps it: it is in the dump

    # Everything the old installation serves for those images, before it goes away.
    expected = {item["filename"]: served(old.url, item) for item in acknowledged}
    old_keys, old_total = stored_keys(old), listed_total(old.url, admin_key)

    # Into the old installation itself: refused, nothing changed.
    refused = old.cli("restore", str(folder), timeout=CLI_TIMEOUT_S)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refused" in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
    assert stored_keys(old) == old_keys and listed_total(old.url, admin_key) == old_total
    old.stop()

    settings = new_installation(tmp_path, serve_mode, request)
    env = base_env(tmp_path / "serve1", **{**serve_settings, **settings})
    restored = run_cli(env, "restore", str(folder), timeout=CLI_TIMEOUT_S)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "check: clean" in restored.stdout, restored.stdout
    new = serve_factory(LISTING="key", **settings)
    assert new.root == tmp_path / "serve1"
    check_clean(new)
    checked = new.cli("check")
    assert checked.returncode == 0 and "store clean" in checked.stdout, checked.stdout
    assert stored_keys(new) == held  # what the backup holds, nothing more
    assert listed_total(new.url, admin_key) == manifest["images"]  # the old admin key works
    for item in acknowledged:
        assert served(new.url, item) == expected[item["filename"]]
    if new.storage == "s3":  # put as an upload puts them: its type, the immutable caching
        client, item = bucket_of(new.env), acknowledged[0]
        for key, ctype in ((item["filename"], "image/png"), (thumb_key(item), "image/webp")):
            got = client.head_object(Bucket=new.env["S3_BUCKET"], Key=key)
            assert (got["ContentType"], got["CacheControl"]) == (ctype, headers.IMAGE_CACHE)
    moved = requests.get(f"{new.url}/api/albums/{album['id']}", timeout=30).json()
    assert [i["filename"] for i in moved["images"]] == [p["filename"] for p in proofs]
    for item in acknowledged[-2:]:  # their old delete tokens
        assert delete(new.url, item) == 204
        gone = requests.get(f"{new.url}/images/{item['filename']}", timeout=30)
        assert gone.status_code == 404
    assert delete(new.url, acknowledged[0], Authorization=f"Bearer {admin_key}") == 204
    added = uploaded(new.url, image_bytes("PNG", seed=99999))
    assert added["filename"] not in held


# --- an image deleted between the snapshot and its copy ----------------------------------------


@pytest.mark.parametrize("serve_mode", MODES, indirect=True)
def test_an_image_deleted_after_the_snapshot_is_not_named(
    serve_factory, serve_mode, serve_settings, tmp_path, request, monkeypatch
):
    old = serve_factory()
    admin_key = old.admin_key
    items = [uploaded(old.url, image_bytes("PNG", seed=n)) for n in range(4)]
    victim, thumbless = items[0], items[1]
    remove_by_hand(old, thumb_key(thumbless))  # lost on its own: the backup makes it anew
    copy_files = backup._copy_files

    def delete_first(*args, **kwargs):
        """Run after the catalog snapshot, before any file is copied."""
        assert delete(old.url, victim) == 204
        return copy_files(*args, **kwargs)

    monkeypatch.setattr(backup, "_copy_files", delete_first)
    folder = tmp_path / "backup"
    report = backup.backup(config.load(old.env, env_file=None), folder)
    assert report.ok, report.problems()
    assert report.images == len(items) - 1 and report.remade == [thumbless["filename"]]
    manifest = manifest_of(folder)
    assert backup_files(folder) == keys_of(items[1:])
    if serve_mode == "local":  # its row dropped: the state a moment after the snapshot
        assert manifest["dropped"] == [victim["filename"]] and manifest["missing"] == []
        with contextlib.closing(SQLiteCatalog(folder / backup.SQLITE_FILE)) as snapshot:
            assert snapshot.filenames() == {i["filename"] for i in items[1:]}
            assert snapshot.pending_deletes(0, 10) == []
    else:  # still in the dump; listed, for restore to drop
        assert manifest["missing"] == [victim["filename"]] and manifest["dropped"] == []
    assert "1 deleted during the backup left out" in report.summary()
    old.stop()

    settings = new_installation(tmp_path, serve_mode, request)
    env = base_env(tmp_path / "serve1", **{**serve_settings, **settings})
    # What a restore killed part-way leaves (an original of the backup) is taken as it is; an
    # object of anything else makes the installation not empty.
    first = items[1]["filename"]
    put_into(env, first, (folder / backup.IMAGES / first).read_bytes())
    put_into(env, "SomebodyElses0000.png", image_bytes("PNG", seed=77))
    refused = run_cli(env, "restore", str(folder), timeout=CLI_TIMEOUT_S)
    assert "1 objects that are not in this backup" in one_line(refused)
    put_into(env, "SomebodyElses0000.png", None)
    # A first start there made an empty catalog and an admin key of its own.
    first_start = config.load(env, env_file=None)
    open_catalog(first_start).close()
    assert rights.load_admin_key(first_start) != admin_key
    restored = run_cli(env, "restore", str(folder), timeout=CLI_TIMEOUT_S)
    assert restored.returncode == 0 and "check: clean" in restored.stdout, restored.stdout
    assert "5 copied, 1 skipped (already there), 0 failed" in restored.stdout
    new = serve_factory(**settings)
    check_clean(new)
    meta = requests.get(f"{new.url}/api/upload/{victim['filename']}", timeout=30)
    assert meta.status_code == 404
    assert stored_keys(new) == keys_of(items[1:])
    thumb = requests.get(f"{new.url}/images/{thumb_key(thumbless)}", timeout=30)
    assert thumb.status_code == 200 and thumb.content[8:12] == b"WEBP"
    assert new.admin_key == admin_key  # the old one, not the first start's
    assert delete(new.url, items[2], Authorization=f"Bearer {admin_key}") == 204


# --- refusals ----------------------------------------------------------------------------------


def empty_installation(tmp_path: Path) -> dict[str, str]:
    """The environment of a local installation with a catalog and no image (never served)."""
    env = base_env(tmp_path / "site")
    SQLiteCatalog(Path(env["DATA_DIR"]) / "catalog.sqlite3").close()
    return env


def one_line(done) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def test_restore_refuses_what_is_no_backup(tmp_path):
    env = empty_installation(tmp_path)
    folder = tmp_path / "not-a-backup"
    folder.mkdir()
    assert "manifest.json is missing" in one_line(run_cli(env, "restore", str(folder)))
    made = tmp_path / "made"
    assert run_cli(env, "backup", str(made)).returncode == 0
    manifest = manifest_of(made)
    for change, says in (
        ({"version": 99}, "version 99"),
        ({"format": "something else"}, "not the manifest of an imagehost backup"),
        ({"images": 3}, "the backup is damaged"),
        ({"catalog": "postgres"}, "set DATABASE_URL"),
    ):
        (made / backup.MANIFEST).write_text(json.dumps({**manifest, **change}))
        assert says in one_line(run_cli(env, "restore", str(made))), change
    (made / backup.MANIFEST).write_text("{not json")
    assert "cannot be read" in one_line(run_cli(env, "restore", str(made)))
    (made / backup.MANIFEST).write_text(json.dumps(manifest))
    # A SQLite backup goes into SQLite; migrate-catalog moves it on (refused before connecting).
    into_pg = {**env, "DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/none"}
    line = one_line(run_cli(into_pg, "restore", str(made)))
    assert "migrate-catalog" in line and "secret" not in line


def test_backup_needs_an_empty_folder_and_says_what_pg_dump_needs(tmp_path):
    env = empty_installation(tmp_path)
    folder = tmp_path / "full"
    folder.mkdir()
    (folder / "something").write_text("x")
    assert "is not empty" in one_line(run_cli(env, "backup", str(folder)))
    without = {
        **env,
        "DATABASE_URL": "postgresql://imagehost:hunter2hunter2@127.0.0.1:1/imagehost",
        "PATH": str(tmp_path / "no-programs-here"),
    }
    line = one_line(run_cli(without, "backup", str(tmp_path / "pg")))
    assert "pg_dump is not installed" in line and "postgresql-client" in line
    assert "hunter2" not in line
    assert not (tmp_path / "pg").exists()  # nothing made


def test_the_password_reaches_pg_tools_only_in_the_environment():
    url, env, where = backup._libpq("postgresql://me:p%40ss@db.example:5433/images?sslmode=require")
    assert url == "postgresql://me@db.example:5433/images?sslmode=require"
    assert env["PGPASSWORD"] == "p@ss" and where == "me@db.example:5433/images"
    url, env, _ = backup._libpq("postgresql://db/x?password=hidden&connect_timeout=3")
    assert "hidden" not in url and env["PGPASSWORD"] == "hidden" and "connect_timeout=3" in url
    url, env, _ = backup._libpq("postgresql://me@db/x")
    assert url == "postgresql://me@db/x" and env.get("PGPASSWORD") == os.environ.get("PGPASSWORD")


@pytest.mark.s3
def test_a_backup_of_a_folder_restores_into_a_bucket(serve_factory, shared_bucket, tmp_path):
    """The store may change kind on the way (SQLite + a local folder → SQLite + S3)."""
    old = serve_factory()
    items = [uploaded(old.url, image_bytes("PNG", seed=n)) for n in range(3)]
    expected = {item["filename"]: served(old.url, item) for item in items}
    folder = tmp_path / "backup"
    done = old.cli("backup", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    old.stop()
    env = base_env(tmp_path / "serve1", **shared_bucket.settings())
    restored = run_cli(env, "restore", str(folder), timeout=CLI_TIMEOUT_S)
    assert restored.returncode == 0 and "check: clean" in restored.stdout, restored.stdout
    new = serve_factory(**shared_bucket.settings())
    check_clean(new)
    assert stored_keys(new) == keys_of(items)
    for item in items:
        assert served(new.url, item) == expected[item["filename"]]
