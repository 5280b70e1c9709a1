"""Helpers shared by the HTTP tests: image fixtures made with Pillow, requests, assertions."""

import io
import json
import socket
import subprocess
import sys

import requests
from PIL import Image


def image_bytes(fmt: str = "PNG", size=(64, 48), color=(200, 30, 30), **save) -> bytes:
    """A small image in `fmt` with a gradient so pixel checks mean something."""
    img = Image.new("RGB", size, color)
    for x in range(size[0]):
        img.putpixel((x, 0), (x * 4 % 256, 0, 255 - x * 4 % 256))
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring width×height with a few bytes of pixel data (a decompression 'bomb')."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def upload(
    url: str, data: bytes, name: str = "photo.png", ctype: str = "image/png", **kwargs
) -> requests.Response:
    return requests.post(
        f"{url}/api/upload/", files={"file": (name, data, ctype)}, timeout=30, **kwargs
    )


def assert_error(resp: requests.Response, status: int, code: str) -> dict:
    """Every refusal: the status, a JSON body {"detail", "code"} and nothing that leaks."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code, body
    assert "Traceback" not in resp.text and "/tmp" not in resp.text and ".py" not in resp.text
    return body


def raw_http(port: int, data: bytes, read_timeout: float = 10) -> bytes:
    """Send raw bytes to 127.0.0.1:port and return everything answered until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def response_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body.decode() or "{}")


def check_clean(running) -> None:
    """`imagehost check --dry-run` finds nothing, and no temporary file is left."""
    result = running.cli("check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    leftovers = list((running.images_dir / ".tmp").iterdir())
    assert leftovers == [], leftovers


def tree(root) -> set[str]:
    """Every file under `root`, relative, for 'nothing written outside' checks."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def run_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imagehost", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
