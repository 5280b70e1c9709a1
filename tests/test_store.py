"""The Store contract on both implementations (a local folder, a real SeaweedFS bucket), and
`imagehost serve` and `imagehost check` with STORAGE=s3 end to end. No mocks: boto3 is the
independent look into the bucket."""

import contextlib
import time
from collections.abc import Iterator

import pytest
import requests
from support.http import assert_error, listed, upload, uploaded
from support.images import image_bytes, noise_png
from support.stack import free_port_range, start_stack

from imagehost import api, config, errors, headers, maintenance
from imagehost.store import ObjectExists, open_store
from imagehost.store import s3 as s3_store
from imagehost.store.keys import thumbnail_key

MODES = ["local", pytest.param("s3", marks=pytest.mark.s3)]
IMAGE_ID = "StoreContract123"
FILENAME = f"{IMAGE_ID}.png"
THUMB = f"{IMAGE_ID}.webp"  # the thumbnail of a PNG


# --- fixtures ----------------------------------------------------------------------------------


def empty_bucket(seaweed) -> str:
    """The session's bucket, emptied, so listings see only this test's objects. (One bucket for
    all: SeaweedFS gives each bucket volumes of its own, and `-volume.max=4` allows few.)"""
    seaweed.empty()
    return seaweed.bucket


def s3_settings(seaweed, bucket: str) -> dict[str, str]:
    return {**seaweed.settings(), "S3_BUCKET": bucket}


@pytest.fixture(params=MODES)
def mode(request) -> str:
    return request.param


@pytest.fixture
def bucket(mode, request) -> Iterator[tuple | None]:
    """(seaweed, bucket name) in S3 mode; None for local files."""
    if mode == "local":
        yield None
        return
    seaweed = request.getfixturevalue("seaweed")
    yield seaweed, empty_bucket(seaweed)
    empty_bucket(seaweed)


@pytest.fixture
def settings(tmp_path, mode, bucket) -> config.Settings:
    environ = {"IMAGES_DIR": str(tmp_path / "images"), "DATA_DIR": str(tmp_path / "data")}
    if bucket is not None:
        environ.update(s3_settings(*bucket))
    return config.load(environ, env_file=None)


@pytest.fixture
def store(settings):
    return open_store(settings)


def objects_in(bucket: tuple) -> dict[str, dict]:
    """Key → head_object of everything in the test's bucket, through boto3."""
    seaweed, name = bucket
    client = seaweed.boto3_client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])]
    return {key: client.head_object(Bucket=name, Key=key) for key in keys}


def commit(store, image: bytes, thumb: bytes, filename: str = FILENAME) -> None:
    """What ingest does: the stored file in a temporary file, the thumbnail in memory."""
    with store.scratch("stored") as stored:
        stored.write_bytes(image)
        store.commit(stored, thumb, filename)


def read_all(opened) -> bytes:
    if opened.path is not None:
        return opened.path.read_bytes()
    try:
        return b"".join(bytes(part) for part in opened.chunks)
    finally:
        opened.close()


# --- the contract, on both stores ----------------------------------------------------------


def test_commit_list_read_delete(store, tmp_path, bucket):
    image, thumb = image_bytes("PNG", seed=1), b"RIFF-thumbnail"
    before = time.time()
    commit(store, image, thumb)

    assert store.image_files() == [FILENAME] and store.thumbnail_names() == [THUMB]
    assert set(store.images()) == {FILENAME} and set(store.thumbnails()) == {THUMB}
    assert before - 5 < store.images()[FILENAME] < time.time() + 5
    assert store.has_thumbnail(FILENAME) and not store.has_thumbnail("NoSuchImage1234.png")
    assert store.info(FILENAME).size == len(image)
    with store.local_copy(FILENAME) as copy:
        assert copy.read_bytes() == image

    opened = store.open_image(FILENAME)
    assert opened.size == len(image) and not opened.unchanged
    assert read_all(opened) == image
    assert read_all(store.open_thumbnail(THUMB)) == thumb
    again = store.open_image(FILENAME, opened.etag)
    assert again.unchanged and again.etag == opened.etag
    with contextlib.suppress(AttributeError):
        again.close()
    assert store.open_image("NoSuchImage1234.png") is None
    assert list(store.temp.iterdir()) == []

    store.delete(FILENAME)
    store.delete(FILENAME)  # already gone: not an error
    assert store.image_files() == [] and store.thumbnail_names() == []
    assert store.open_image(FILENAME) is None and store.open_thumbnail(THUMB) is None
    with pytest.raises(FileNotFoundError):
        store.info(FILENAME)
    with pytest.raises(FileNotFoundError), store.local_copy(FILENAME):
        pass
    if bucket is not None:
        assert objects_in(bucket) == {}


def test_commit_never_overwrites_and_cleans_up(store, tmp_path, bucket):
    """The original's name is taken (by hand, or a bug): the commit refuses after writing the
    thumbnail, removes that thumbnail again and leaves the other object alone."""
    foreign = b"somebody else's bytes"
    if bucket is None:
        (store.root / FILENAME).write_bytes(foreign)
    else:
        seaweed, name = bucket
        seaweed.boto3_client().put_object(Bucket=name, Key=FILENAME, Body=foreign)
    with pytest.raises(ObjectExists):
        commit(store, image_bytes("PNG"), b"RIFF-thumbnail")
    assert store.thumbnail_names() == []
    with store.local_copy(FILENAME) as copy:
        assert copy.read_bytes() == foreign
    assert list(store.temp.iterdir()) == []


def test_thumbnails_are_replaced_and_removed(store, tmp_path):
    commit(store, image_bytes("PNG"), b"first")
    with store.scratch("thumb.webp") as newer:
        newer.write_bytes(b"second")
        store.put_thumbnail(newer, FILENAME)
    assert read_all(store.open_thumbnail(THUMB)) == b"second"
    store.delete_thumbnail(THUMB)
    store.delete_thumbnail(THUMB)
    assert not store.has_thumbnail(FILENAME) and store.image_files() == [FILENAME]


def test_reject_moves_an_original_out(store, tmp_path):
    commit(store, b"not an image", b"thumb")
    store.reject(FILENAME, tmp_path / "rejected")
    assert (tmp_path / "rejected" / FILENAME).read_bytes() == b"not an image"
    assert store.image_files() == []


def test_stale_temp_files_are_found_by_pid(store):
    leftover = store.temp / "4194399-1.upload"  # above pid_max: no such process
    leftover.write_bytes(b"x")
    with store.scratch("upload") as mine:
        mine.write_bytes(b"y")
        assert store.stale_temp_files() == [leftover]
    store.remove_temp(leftover)
    assert list(store.temp.iterdir()) == []


def test_probe(store):
    store.probe()


def test_temporary_files_stay_local(store, settings, mode):
    folder = settings.images_dir / ".tmp" if mode == "local" else settings.data_dir / "tmp"
    assert store.temp == folder.resolve()


# --- S3 only: what is really in the bucket ----------------------------------------------------


@pytest.mark.s3
@pytest.mark.parametrize("mode", ["s3"])
def test_objects_carry_type_and_cache_control(store, tmp_path, bucket):
    commit(store, image_bytes("PNG"), b"RIFF-thumbnail", filename=FILENAME)
    commit(store, image_bytes("JPEG"), b"RIFF", filename="StoreContract456.jpg")
    found = objects_in(bucket)
    assert sorted(found) == [
        "StoreContract123.png",
        "StoreContract456.jpg",
        "thumbs/StoreContract123.webp",
        "thumbs/StoreContract456.jpg",  # a JPEG's thumbnail is a JPEG
    ]
    types = {key: head["ContentType"] for key, head in found.items()}
    assert types == {
        "StoreContract123.png": "image/png",
        "StoreContract456.jpg": "image/jpeg",
        "thumbs/StoreContract123.webp": "image/webp",
        "thumbs/StoreContract456.jpg": "image/jpeg",
    }
    assert {head.get("CacheControl") for head in found.values()} == {headers.IMAGE_CACHE}


@pytest.mark.s3
@pytest.mark.parametrize("mode", ["s3"])
def test_big_objects_are_read_in_parts(store, tmp_path, bucket):
    image = bytes(range(256)) * (s3_store.STREAM_PART_BYTES * 5 // 2 // 256)
    commit(store, image, b"thumb")
    opened = store.open_image(FILENAME)
    parts = [bytes(p) for p in opened.chunks]
    assert [len(p) for p in parts] == [
        s3_store.STREAM_PART_BYTES,
        s3_store.STREAM_PART_BYTES,
        len(image) - 2 * s3_store.STREAM_PART_BYTES,
    ]
    assert b"".join(parts) == image


@pytest.mark.s3
def test_start_up_names_the_bad_setting(seaweed, tmp_path):
    base = {"IMAGES_DIR": str(tmp_path / "i"), "DATA_DIR": str(tmp_path / "d")}
    cases = {
        "S3_SECRET_ACCESS_KEY": {"S3_SECRET_ACCESS_KEY": "wrong-secret-value"},
        "S3_BUCKET": {"S3_BUCKET": "no-such-bucket-here"},
        "S3_ENDPOINT_URL": {"S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port_range(1)}"},
    }
    for setting, change in cases.items():
        settings = config.load({**base, **seaweed.settings(), **change}, env_file=None)
        started = time.monotonic()
        with pytest.raises(errors.ConfigError) as refused:
            open_store(settings)
        message = str(refused.value)
        assert setting in message and "\n" not in message, message
        assert "wrong-secret-value" not in message and seaweed.secret_key not in message
        assert time.monotonic() - started < 10


# --- `imagehost serve` with STORAGE=s3 --------------------------------------------------------


@pytest.fixture
def s3_serve(seaweed, tmp_path):
    bucket = empty_bucket(seaweed)
    running = start_stack("serve", tmp_path / "serve", **s3_settings(seaweed, bucket))
    yield running, (seaweed, bucket)
    running.stop()
    empty_bucket(seaweed)


def bucket_bytes(bucket: tuple, key: str) -> bytes:
    seaweed, name = bucket
    return seaweed.boto3_client().get_object(Bucket=name, Key=key)["Body"].read()


@pytest.mark.s3
def test_serve_streams_images_from_the_bucket(s3_serve):
    running, bucket = s3_serve
    image = uploaded(running.url, image_bytes("PNG", seed=3), name="bucket.png")
    big = uploaded(running.url, noise_png((700, 600)), name="big.png")
    assert big["size"] > s3_store.STREAM_PART_BYTES  # sent in parts

    for item in (image, big):
        served = requests.get(item["url"], timeout=10)
        assert served.status_code == 200
        assert served.content == bucket_bytes(bucket, item["filename"])
        assert served.headers["Content-Type"] == "image/png"
        assert served.headers["Content-Length"] == str(item["size"])
        for name, value in api.IMAGE_HEADERS.items():
            assert served.headers[name] == value
        again = requests.get(item["url"], headers={"If-None-Match": served.headers["ETag"]})
        assert again.status_code == 304 and again.content == b""
        thumb = requests.get(item["thumbnail_url"], timeout=10)
        assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
        assert thumb.content == bucket_bytes(bucket, thumbnail_key(item["filename"]))
    head = requests.head(image["url"], timeout=10)
    assert head.status_code == 200 and head.content == b""

    assert {i["filename"] for i in listed(running.url)} == {image["filename"], big["filename"]}
    health = requests.get(f"{running.url}/api/health", timeout=10)
    assert health.status_code == 200
    assert_error(requests.get(f"{running.url}/images/NoSuchImage1234.png"), 404, "not_found")

    gone = requests.delete(
        image["delete_url"], headers={"X-Delete-Token": image["delete_token"]}, timeout=10
    )
    assert gone.status_code == 204
    assert sorted(objects_in(bucket)) == sorted([big["filename"], thumbnail_key(big["filename"])])
    assert_error(requests.get(image["url"], timeout=10), 404, "not_found")
    assert_error(requests.get(image["thumbnail_url"], timeout=10), 404, "not_found")
    assert list((running.data_dir / "tmp").iterdir()) == []


@pytest.mark.s3
def test_s3_down_answers_503_then_recovers(s3_serve):
    running, bucket = s3_serve
    seaweed, _ = bucket
    kept = uploaded(running.url, image_bytes("PNG", seed=4))
    seaweed.stop()
    try:
        started = time.monotonic()
        refused = upload(running.url, image_bytes("PNG", seed=5))
        assert_error(refused, 503, "unavailable")
        assert time.monotonic() - started < 15  # bounded by the client's timeouts
        assert_error(requests.get(f"{running.url}/api/health", timeout=15), 503, "unavailable")
        assert_error(requests.get(kept["url"], timeout=15), 503, "unavailable")
        assert [i["filename"] for i in listed(running.url)] == [kept["filename"]]  # no row
    finally:
        seaweed.start()
    again = uploaded(running.url, image_bytes("PNG", seed=5))  # the same process, no restart
    assert requests.get(again["url"], timeout=10).content == bucket_bytes(bucket, again["filename"])
    assert {i["filename"] for i in listed(running.url)} == {kept["filename"], again["filename"]}
    assert sorted(objects_in(bucket)) == sorted(
        [
            kept["filename"],
            again["filename"],
            thumbnail_key(kept["filename"]),
            thumbnail_key(again["filename"]),
        ]
    )
    assert list((running.data_dir / "tmp").iterdir()) == []


# --- `imagehost check` with STORAGE=s3 --------------------------------------------------------


@pytest.mark.s3
def test_check_repairs_the_bucket_after_the_grace_period(s3_serve):
    running, bucket = s3_serve
    seaweed, name = bucket
    client = seaweed.boto3_client()
    lost = uploaded(running.url, image_bytes("PNG", seed=6))  # its original will vanish
    bare = uploaded(running.url, image_bytes("PNG", seed=7))  # its thumbnail will vanish
    client.delete_object(Bucket=name, Key=lost["filename"])
    client.delete_object(Bucket=name, Key=thumbnail_key(bare["filename"]))
    orphan = "OrphanObject1234.png"  # an object whose row never came (a node killed)
    client.put_object(Bucket=name, Key=orphan, Body=image_bytes("PNG", seed=8, size=(40, 30)))
    junk = "JunkObject123456.jpg"
    client.put_object(Bucket=name, Key=junk, Body=b"<html>not an image</html>")
    client.put_object(Bucket=name, Key="thumbs/OrphanThumb12345.webp", Body=b"RIFF")
    settings = config.load(running.env, env_file=None)

    # With the default grace period, the fresh orphans may be uploads in flight: left alone.
    young = maintenance.check(settings, dry_run=True)
    assert young.unindexed_files == [] and young.orphan_thumbnails == []
    assert young.missing_files == [lost["filename"]]
    assert young.missing_thumbnails == [bare["filename"]]

    shown = running.cli("check", "--dry-run", "--grace", "0")  # the same from the command line
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert f"unindexed file: {orphan}" in shown.stdout and f"unindexed file: {junk}" in shown.stdout
    dry = maintenance.check(settings, dry_run=True, orphan_grace_s=0)
    assert dry.missing_files == [lost["filename"]]
    assert dry.unindexed_files == sorted([junk, orphan])
    # the lost image's thumbnail too: its row goes, so a real run deletes it with the row
    assert set(dry.orphan_thumbnails) == {
        "thumbs/OrphanThumb12345.webp",
        thumbnail_key(lost["filename"]),
    }
    assert len(objects_in(bucket)) == 5  # a dry run changes nothing

    fixed = maintenance.check(settings, orphan_grace_s=0)
    assert fixed.rejected_files == [junk]
    assert (running.data_dir / "rejected" / junk).read_bytes() == b"<html>not an image</html>"
    names = {i["filename"]: i for i in listed(running.url)}
    assert set(names) == {bare["filename"], orphan}
    assert (names[orphan]["width"], names[orphan]["height"]) == (40, 30)
    assert_error(requests.get(lost["url"], timeout=10), 404, "not_found")
    assert requests.get(names[orphan]["thumbnail_url"], timeout=10).status_code == 200
    assert sorted(objects_in(bucket)) == sorted(
        [bare["filename"], orphan, thumbnail_key(bare["filename"]), "thumbs/OrphanObject1234.webp"]
    )
    assert maintenance.check(settings, orphan_grace_s=0).clean
    result = running.cli("check")  # the command, with its default grace period
    assert result.returncode == 0 and "store clean" in result.stdout, result.stdout + result.stderr
