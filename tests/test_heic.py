"""iPhone photos over HTTP (issue 14, item 3): a HEIC upload is stored and served as a JPEG, the
right way up, without its GPS position; a HEIC bomb is refused before decoding; ALLOWED_FORMATS
can turn HEIC off. Against a real `serve` (tests/conftest.py's fixtures)."""

import io
import json
import shutil
import subprocess

import pytest
import requests
from conftest import need
from PIL import Image, ImageChops, ImageStat
from support.checks import assert_store_clean, stored_keys
from support.http import UPLOAD_PATH, assert_error, listed, upload
from support.images import gps_exif, heic_bytes, heic_declaring

from imagehost.store.keys import thumbnail_key

EXIFTOOL = shutil.which("exiftool")
EXIFTOOL_MISSING = "exiftool is not installed (Debian: apt-get install libimage-exiftool-perl)"


def sensor_picture(size=(240, 160)) -> Image.Image:
    """What the camera recorded, before any turn: a gradient with a dark block in the top-left
    corner and a light one at the bottom right, so a wrong turn or flip is far off."""
    w, h = size
    im = Image.new("RGB", size)
    im.putdata([(x * 255 // w, y * 255 // h, 128) for y in range(h) for x in range(w)])
    im.paste((0, 0, 0), (0, 0, w // 4, h // 4))
    im.paste((255, 255, 255), (w * 3 // 4, h * 3 // 4, w, h))
    return im


def phone_heic() -> tuple[bytes, Image.Image]:
    """A HEIC as an iPhone writes it — EXIF Orientation 6 (and the same turn as irot), camera,
    GPS — and the picture a viewer must see: the sensor's turned 90° clockwise."""
    sensor = sensor_picture()
    data = heic_bytes(sensor, exif=gps_exif(6).tobytes())
    return data, sensor.transpose(Image.Transpose.ROTATE_270)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0..255."""
    assert a.size == b.size, (a.size, b.size)
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def fetch(url: str, content_type: str) -> bytes:
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200, (url, resp.status_code)
    assert resp.headers["Content-Type"] == content_type
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    return resp.content


def send(url: str, data: bytes, how: str) -> requests.Response:
    """Upload `data` as a phone's browser (multipart, a .HEIC name) or a script (raw body)."""
    if how == "multipart":
        return upload(url, data, "IMG_0042.HEIC", "image/heic")
    return requests.post(
        f"{url}{UPLOAD_PATH}",
        data=data,
        headers={"Content-Type": "image/heic", "X-Filename": "IMG_0042.HEIC"},
        timeout=30,
    )


@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_heic_is_stored_and_served_as_a_right_way_up_jpeg_without_gps(server, how):
    data, shown = phone_heic()
    resp = send(server.url, data, how)
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert image["filename"].endswith(".jpg") and image["url"].endswith(".jpg")
    assert image["content_type"] == "image/jpeg" and image["original_name"] == "IMG_0042.HEIC"
    assert (image["width"], image["height"]) == shown.size == (160, 240)
    assert {k for k in stored_keys(server) if not k.startswith(".tmp/")} == {
        image["filename"],
        thumbnail_key(image["filename"]),
    }

    served = fetch(image["url"], "image/jpeg")
    assert served.startswith(b"\xff\xd8\xff") and len(served) == image["size"]
    with Image.open(io.BytesIO(served)) as jpeg:
        assert jpeg.format == "JPEG" and jpeg.size == shown.size
        assert not jpeg.getexif()
        difference = mean_difference(jpeg, shown)
        # Lossy twice (HEVC, then JPEG): close, where a wrong turn is far off.
        assert difference < 4, difference
        assert mean_difference(jpeg, shown.transpose(Image.Transpose.ROTATE_180)) > 40

    thumbnail = fetch(image["thumbnail_url"], "image/jpeg")  # a JPEG's thumbnail is a JPEG
    with Image.open(io.BytesIO(thumbnail)) as thumb:
        assert thumb.format == "JPEG" and thumb.size == shown.size  # smaller than 320: as is
        assert mean_difference(thumb, shown) < 6
    assert [i["id"] for i in listed(server.url)] == [image["id"]]
    assert_store_clean(server)


def test_exiftool_finds_no_gps_and_no_orientation_in_what_is_served(server, tmp_path):
    need("exiftool", EXIFTOOL is not None, EXIFTOOL_MISSING)
    data, _ = phone_heic()
    sent = tmp_path / "IMG_0042.HEIC"
    sent.write_bytes(data)
    before = exiftool(sent)
    # The check means something: exiftool sees GPS and the orientation in the upload.
    assert any(key.startswith("GPS") for key in before) and before.get("Orientation") == 6

    resp = send(server.url, data, "multipart")
    assert resp.status_code == 201, resp.text
    received = tmp_path / "served.jpg"
    received.write_bytes(fetch(resp.json()["url"], "image/jpeg"))
    tags = exiftool(received)
    assert tags["FileType"] == "JPEG"
    assert [key for key in tags if "GPS" in key.upper()] == []
    assert "Orientation" not in tags and "Make" not in tags
    assert not [key for key in tags if key.startswith("XMP")]


def exiftool(path) -> dict:
    """Every tag exiftool reads in `path`, numeric values (-n), group names off."""
    result = subprocess.run(
        [EXIFTOOL, "-j", "-n", str(path)], capture_output=True, text=True, timeout=30, check=True
    )
    (tags,) = json.loads(result.stdout)
    return tags


def test_heic_bomb_is_refused_and_nothing_is_stored(server):
    """60000 x 60000 declared in a file of a few hundred bytes: 422 from the header."""
    bomb = heic_declaring(60000, 60000)
    assert len(bomb) < 2000
    stored_before = stored_keys(server)
    resp = upload(server.url, bomb, "bomb.heic", "image/heic")
    body = assert_error(resp, 422, "too_many_pixels")
    assert "60000x60000" in body["detail"]
    assert stored_keys(server) == stored_before
    assert listed(server.url) == []
    assert_store_clean(server)


def test_heic_is_refused_when_allowed_formats_leaves_it_out(serve_factory):
    running = serve_factory(ALLOWED_FORMATS="jpeg,png")
    data, _ = phone_heic()
    stored_before = stored_keys(running)
    for how in ("multipart", "raw"):
        assert_error(send(running.url, data, how), 415, "unsupported_type")
    assert stored_keys(running) == stored_before
    assert listed(running.url) == []
    assert_store_clean(running)
