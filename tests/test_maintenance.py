"""`imagehost check` and `imagehost reindex` on a real store, next to a running server."""

import requests
from PIL import Image
from support.checks import check_clean
from support.http import upload
from support.images import image_bytes


def test_reindex_adopts_dropped_files_and_rejects_the_rest(server):
    (server.images_dir / "cat photo.png").write_bytes(image_bytes("PNG", size=(80, 60)))
    (server.images_dir / "notes.txt").write_text("not an image")
    (server.images_dir / "fake.jpg").write_bytes(b"<html><script>alert(1)</script></html>")

    dry = server.cli("check", "--dry-run")
    assert dry.returncode == 0, dry.stdout  # check ignores foreign names: only reindex adopts
    result = server.cli("reindex")
    assert result.returncode == 1, result.stdout + result.stderr  # something was found
    assert "renamed file: cat photo.png" in result.stdout
    assert "rejected file: notes.txt" in result.stdout
    assert "rejected file: fake.jpg" in result.stdout

    listing = requests.get(f"{server.url}/api/upload/", timeout=5).json()
    assert [(i["original_name"], i["width"], i["height"]) for i in listing] == [
        ("cat photo.png", 80, 60)
    ]
    image = listing[0]
    assert requests.get(image["url"], timeout=5).status_code == 200
    assert requests.get(image["thumbnail_url"], timeout=5).status_code == 200
    assert sorted(p.name for p in (server.data_dir / "rejected").iterdir()) == [
        "fake.jpg",
        "notes.txt",
    ]
    assert not (server.images_dir / "notes.txt").exists()
    check_clean(server)


def test_check_remakes_missing_thumbnails_and_drops_orphans(server):
    image = upload(server.url, image_bytes("PNG")).json()
    thumb = server.images_dir / "thumbs" / f"{image['id']}.webp"
    thumb.unlink()
    orphan = server.images_dir / "thumbs" / "AAAAAAAAAAAAAAAA.webp"
    orphan.write_bytes(b"RIFF")

    dry = server.cli("check", "--dry-run")
    assert dry.returncode == 1
    assert f"missing thumbnail: {image['filename']}" in dry.stdout
    assert "orphan thumbnail: thumbs/AAAAAAAAAAAAAAAA.webp" in dry.stdout
    assert not thumb.exists() and orphan.exists()  # a dry run changes nothing

    assert server.cli("check").returncode == 1
    assert thumb.exists() and not orphan.exists()
    assert requests.get(image["thumbnail_url"], timeout=5).headers["Content-Type"] == "image/webp"
    clean = server.cli("check")
    assert clean.returncode == 0 and "store clean" in clean.stdout


def test_check_upgrades_a_jpeg_s_webp_thumbnail_to_a_jpeg_one(server):
    """A store from before JPEG thumbnails: a JPEG original whose thumbnail is `{id}.webp`.
    check makes its `{id}.jpg` and removes the `.webp`, which no image has any more."""
    photo = image_bytes("JPEG", size=(640, 480), seed=5)
    image = upload(server.url, photo, "photo.jpg", "image/jpeg").json()
    thumbs = server.images_dir / "thumbs"
    new, old = thumbs / f"{image['id']}.jpg", thumbs / f"{image['id']}.webp"
    assert image["thumbnail_url"].endswith(f"/thumbs/{new.name}")
    new.rename(old)  # as an older version left it (the bytes matter not)

    assert server.cli("check").returncode == 1
    assert new.exists() and not old.exists()
    with Image.open(new) as made:
        assert made.format == "JPEG" and made.size == (320, 240)
    clean = server.cli("check")
    assert clean.returncode == 0 and "store clean" in clean.stdout


def test_check_remakes_an_empty_thumbnail(server):
    """Thumbnails are not fsynced: after a power cut the name can be there without its bytes."""
    image = upload(server.url, image_bytes("PNG", size=(400, 300), seed=7)).json()
    thumb = server.images_dir / "thumbs" / f"{image['id']}.webp"
    thumb.write_bytes(b"")
    dry = server.cli("check", "--dry-run")
    assert f"missing thumbnail: {image['filename']}" in dry.stdout
    assert server.cli("check").returncode == 1
    with Image.open(thumb) as made:
        assert made.format == "WEBP" and made.size == (320, 240)
