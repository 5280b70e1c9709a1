"""Helpers for the hostile-input, fuzz, fault and load tests (issue 7).

Stacks (`serve`, or `up` with real nginx), hostile bytes built in a few lines (polyglots,
bombs, a 100,000-frame GIF), raw HTTP on a socket, and a fast "store clean" check.
"""

import contextlib
import io
import os
import signal
import socket
import struct
import time
import zlib
from pathlib import Path

import requests
from conftest import Running, have, need, start
from PIL import Image

from imagehost import config, maintenance, workers

NGINX_MISSING = "nginx is not installed (apt-get install nginx)"
# nginx's own error pages (for requests it refuses before any location applies) are HTML.
NGINX_PAGE = "nginx-page"
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"}


# --- stacks --------------------------------------------------------------------------------


def nginx_present() -> bool:
    return have("nginx") or Path("/usr/sbin/nginx").exists()


def descendants(pid: int) -> set[int]:
    return set(workers.descendants(pid))


def worker_ports(running: Running) -> list[int]:
    first = int(running.env["WEB_SERVER_START_PORT"])
    return [first + i for i in range(int(running.env["WEB_SERVER_WORKERS"]))]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_stack(kind: str, root: Path, **settings: str) -> Running:
    """`imagehost serve`, or `imagehost up` (nginx + 2 workers) answering on every worker."""
    if kind == "serve":
        running = start("serve", root, "/api/health", **settings)
    else:
        need("nginx", nginx_present(), NGINX_MISSING)
        settings.setdefault("WEB_SERVER_WORKERS", "2")
        running = start("up", root, "/api/health", **settings)
        deadline = time.monotonic() + 20
        while not all(_accepts(p) for p in worker_ports(running)):
            assert time.monotonic() < deadline, "the workers never listened"
            time.sleep(0.05)
    running.kind = kind
    running.port = int(running.env["PORT"])
    return running


def stop_stack(running: Running) -> None:
    """Stop it; any process it started that outlived it (a failure already) is ended too."""
    family = descendants(running.proc.pid)
    running.stop()
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


def assert_store_clean(running: Running) -> None:
    """What `imagehost check --dry-run` reports (run in-process: fast), and no temp file left.

    helpers.check_clean runs the real command; this is for the many-cases tables.
    """
    settings = config.load(running.env, env_file=None)
    report = maintenance.check(settings, dry_run=True)
    assert report.clean, report.lines()
    leftovers = list((running.images_dir / ".tmp").iterdir())
    assert leftovers == [], leftovers
    body_temp = running.data_dir / "run" / "nginx" / "temp" / "client_body"
    if body_temp.exists():  # nginx's buffered request bodies are gone once answered
        assert list(body_temp.iterdir()) == []


def listing(running: Running, **headers: str) -> list[dict]:
    resp = requests.get(f"{running.url}/api/upload/?limit=200", timeout=10, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


# --- raw HTTP ------------------------------------------------------------------------------


def http_request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """A whole HTTP/1.1 request with Host, Content-Length (unless chunked) and Connection: close."""
    head = {"Host": "127.0.0.1", "Connection": "close", **(headers or {})}
    if body and "Transfer-Encoding" not in head:
        head.setdefault("Content-Length", str(len(body)))
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 65536) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def send_raw(port: int, data: bytes, timeout: float = 15, half_close: bool = False) -> bytes:
    """Send `data` and read the answer until the server closes.

    `half_close` ends our side after sending: `serve` then stops draining a refused body at
    once; nginx, though, takes it for a client that gave up (499) and answers nothing.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused early and closed; its answer is still to be read
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """The first response in `raw`: status, headers (lower-case names), body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return status, headers, body


# --- multipart -----------------------------------------------------------------------------


def multipart(
    parts: list[tuple[str, str | None, bytes]], boundary: str = "hostile-b0undary"
) -> bytes:
    """A multipart/form-data body from (field name, file name or None, content)."""
    out = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode("utf-8", "surrogateescape")
            + content
            + b"\r\n"
        )
    return b"".join(out) + f"--{boundary}--\r\n".encode()


MULTIPART_TYPE = "multipart/form-data; boundary=hostile-b0undary"


# --- hostile bytes -------------------------------------------------------------------------


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.mode, im.size, im.convert("RGBA").tobytes()


def noise_png(size: tuple[int, int]) -> bytes:
    """A PNG that does not compress (random pixels): its size on disk is ~3 bytes a pixel."""
    img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=0)
    return out.getvalue()


def small_image(fmt: str, index: int, size=(24, 16)) -> bytes:
    """A tiny image whose pixels encode `index`, so each one is recognisable after a round trip."""
    img = Image.new("RGB", size, (index % 256, (index // 256) % 256, 77))
    img.putpixel((0, 0), (255 - index % 256, 3, (index * 7) % 256))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def upload_small(url: str, name: str, index: int) -> dict:
    """Upload small_image("PNG", index) as `name`; the 201 answer (asserted)."""
    resp = requests.post(
        f"{url}/api/upload/",
        files={"file": (name, small_image("PNG", index), "image/png")},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


SCRIPT = b"<html><body><script>alert(document.domain)</script></body></html>"


def png_polyglot() -> bytes:
    """A valid PNG carrying HTML/JS in a text chunk and again after IEND."""
    png = small_image("PNG", 1)
    iend = png.rindex(b"IEND") - 4
    text = _png_chunk(b"tEXt", b"Comment\x00" + SCRIPT)
    return png[:iend] + text + png[iend:] + SCRIPT


def jpeg_polyglot() -> bytes:
    """A valid JPEG carrying HTML/JS in a COM segment and after EOI."""
    jpeg = small_image("JPEG", 2)
    com = b"\xff\xfe" + struct.pack(">H", len(SCRIPT) + 2) + SCRIPT
    return jpeg[:2] + com + jpeg[2:] + SCRIPT


def gif_polyglot() -> bytes:
    """A valid GIF carrying HTML/JS in a comment extension and after the trailer."""
    gif = small_image("GIF", 3)
    comment = b"\x21\xfe" + bytes([len(SCRIPT[:255])]) + SCRIPT[:255] + b"\x00"
    screen_end = 13 + (3 * 2 ** ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)
    return gif[:screen_end] + comment + gif[screen_end:] + SCRIPT


def html_then_png() -> bytes:
    """HTML first, PNG after: a browser sniffing it would see HTML, so we must refuse it."""
    return SCRIPT + small_image("PNG", 4)


def gif_with_frames(frames: int) -> bytes:
    """A 1x1 GIF with `frames` frames, ~15 bytes each (100,000 frames ≈ 1.5 MB)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    # image descriptor 1x1, LZW minimum code size 2, one sub-block: clear, pixel 0, end.
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame * frames + b"\x3b"


def gif_screen(width: int, height: int) -> bytes:
    """A GIF whose logical screen and single frame declare width x height, with one pixel."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00" * 6
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame + b"\x3b"


def jpeg_declaring(width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) declares width x height; the scan is one real tiny one."""
    jpeg = bytearray(small_image("JPEG", 5, size=(8, 8)))
    sof = jpeg.index(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, sof + 5, height, width)
    return bytes(jpeg)


def webp_canvas(width: int, height: int) -> bytes:
    """A WebP with an extended (VP8X) header declaring a width x height canvas."""
    img = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(img, "WEBP", lossless=True)
    inner = img.getvalue()[12:]  # the VP8L chunk
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


def jpeg_with_huge_exif(segments: int = 16) -> bytes:
    """A JPEG with an EXIF block (GPS included) padded to 64 KB, plus `segments` more 64 KB
    APP1 blocks: about (segments + 1) × 64 KB of metadata around a tiny picture."""
    img = Image.new("RGB", (32, 32), (10, 200, 10))
    exif = Image.Exif()
    exif[0x010E] = "x" * 60000  # ImageDescription
    exif[0x0131] = "hostile-camera"  # Software
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes())
    data = out.getvalue()
    filler = b"Exif\x00\x00" + b"MM\x00\x2a" + b"\x00" * (65533 - 2 - 10)
    extra = (b"\xff\xe1" + struct.pack(">H", len(filler) + 2) + filler) * segments
    return data[:2] + extra + data[2:]


def svg() -> bytes:
    return (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
        b"<script>alert(document.cookie)</script></svg>"
    )


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
