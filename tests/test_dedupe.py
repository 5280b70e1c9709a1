"""Deduplication (issue 14, item 2): the same image uploaded twice is stored once (local files:
hard links), each upload keeping its own id, URL, name, token and expiry; deleting one never
breaks another; `imagehost check` reports the saving and repairs what drifted. In a bucket each
upload keeps its own objects (README, "Deduplication"), and the counts say so."""

import os
import shutil
import sqlite3
from contextlib import closing

import requests
from support.checks import stored_keys
from support.http import upload, uploaded
from support.images import image_bytes, noise_png

from imagehost.store.keys import thumbnail_key


def delete(image: dict) -> int:
    return requests.delete(
        image["delete_url"], headers={"X-Delete-Token": image["delete_token"]}, timeout=10
    ).status_code


def test_two_uploads_of_the_same_bytes_are_stored_once(server):
    data = image_bytes("PNG", (400, 300), seed=1)
    first = uploaded(server.url, data, "first.png")
    second = uploaded(server.url, data, "second.png", fields={"expires_in": "P1D"})
    other = uploaded(server.url, image_bytes("PNG", (400, 300), seed=2), "other.png")
    # each upload is its own: id, URL, name, token, expiry
    assert first["id"] != second["id"] and first["url"] != second["url"]
    assert (first["original_name"], second["original_name"]) == ("first.png", "second.png")
    assert first["delete_token"] != second["delete_token"]
    assert first["expires_at"] is None and second["expires_at"] is not None
    keys = stored_keys(server)
    for image in (first, second, other):
        assert {image["filename"], thumbnail_key(image["filename"])} <= keys
    checked = server.cli("check")
    assert checked.returncode == 0, checked.stdout
    if server.storage == "local":
        folder = server.images_dir
        assert os.path.samefile(folder / first["filename"], folder / second["filename"])
        assert os.path.samefile(
            folder / "thumbs" / f"{first['id']}.webp", folder / "thumbs" / f"{second['id']}.webp"
        )
        assert not os.path.samefile(folder / first["filename"], folder / other["filename"])
        saved = f"deduplication: 1 uploads share a file with another, saving {first['size']} bytes"
        assert saved in checked.stdout
    else:  # a bucket keeps an object per upload: nothing shared, nothing claimed
        assert "deduplication" not in checked.stdout

    # deleting one leaves the other whole: its file, thumbnail and share page
    before = requests.get(second["url"], timeout=10).content
    assert before == requests.get(first["url"], timeout=10).content
    assert delete(first) == 204
    assert requests.get(first["url"], timeout=10).status_code == 404
    served = requests.get(second["url"], timeout=10)
    assert served.status_code == 200 and served.content == before
    assert requests.get(second["thumbnail_url"], timeout=10).status_code == 200
    assert requests.get(second["share_url"], timeout=10).status_code == 200
    assert delete(second) == 204
    assert requests.get(second["url"], timeout=10).status_code == 404
    assert stored_keys(server) == {other["filename"], thumbnail_key(other["filename"])}
    again = server.cli("check")
    assert again.returncode == 0 and "deduplication" not in again.stdout, again.stdout


def test_the_quota_counts_a_shared_file_once(serve_factory):
    server = serve_factory(MAX_STORAGE_MB="1")
    image = noise_png((300, 300))  # ~270 KB: three different ones fit in 1 MiB, four do not
    same = [upload(server.url, image) for _ in range(5)]
    if server.storage == "local":
        assert [r.status_code for r in same] == [201] * 5  # one file, counted once
    else:
        assert [r.status_code for r in same] == [201, 201, 201, 507, 507]  # a copy each


def test_check_links_copies_and_recounts(serve_factory):
    server = serve_factory()
    data = image_bytes("PNG", (200, 200), seed=5)
    first = uploaded(server.url, data, "a.png")
    second = uploaded(server.url, data, "b.png")
    folder = server.images_dir
    # the second becomes a separate copy of the same bytes (as after restoring by hand)
    copy = folder / f"{second['filename']}.copy"
    shutil.copyfile(folder / second["filename"], copy)
    os.replace(copy, folder / second["filename"])
    assert not os.path.samefile(folder / first["filename"], folder / second["filename"])
    # and the catalog's sum drifts
    with closing(sqlite3.connect(server.data_dir / "catalog.sqlite3")) as conn, conn:
        conn.execute("UPDATE counters SET value = 1 WHERE name = 'bytes'")
    dry = server.cli("check", "--dry-run")
    assert dry.returncode == 1 and f"unshared twin: {second['filename']}" in dry.stdout
    fixed = server.cli("check")
    assert fixed.returncode == 1, fixed.stdout
    assert f"stored bytes counted 1, recounted {first['size']}" in fixed.stdout
    assert os.path.samefile(folder / first["filename"], folder / second["filename"])
    clean = server.cli("check")
    assert clean.returncode == 0, clean.stdout
    assert f"saving {first['size']} bytes" in clean.stdout
    served = requests.get(second["url"], timeout=10).content
    assert served == (folder / first["filename"]).read_bytes()
