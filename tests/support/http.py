"""Talking to a running server: raw HTTP on a socket, multipart bodies, the upload and listing
calls, and assert_error, the one check of a refusal's shape."""

import contextlib
import json
import socket

import requests

from imagehost.formats import STORED

UPLOAD_PATH = "/api/upload/"
IMAGE_TYPES = {f.content_type for f in STORED.values()}  # what a stored image is served as
BOUNDARY = "test-b0undary"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


# --- the API through requests ----------------------------------------------------------------


def upload(
    url: str,
    data: bytes,
    name: str = "photo.png",
    ctype: str = "image/png",
    timeout: float = 30,
    fields: dict[str, str] | None = None,
    **kwargs,
) -> requests.Response:
    """POST `data` as the multipart field `file` (and `fields`, e.g. expires_in, beside it) to
    `url`/api/upload/; the answer, unchecked."""
    return requests.post(
        f"{url}{UPLOAD_PATH}",
        files={"file": (name, data, ctype)},
        data=fields,
        timeout=timeout,
        **kwargs,
    )


def uploaded(
    url: str, data: bytes, name: str = "photo.png", ctype: str = "image/png", **kwargs
) -> dict:
    """upload(), asserted 201: the image object (id, filename, url, delete_url, …)."""
    resp = upload(url, data, name, ctype, **kwargs)
    assert resp.status_code == 201, (resp.status_code, resp.text[:300])
    return resp.json()


def listing(url: str, **headers: str) -> requests.Response:
    """GET the first 200 images of the listing; the answer, unchecked."""
    return requests.get(f"{url}{UPLOAD_PATH}?limit=200", headers=headers, timeout=30)


def listed(url: str, **headers: str) -> list[dict]:
    """listing(), asserted 200: the image objects, newest first."""
    resp = listing(url, **headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def assert_error(resp: requests.Response, status: int, code: str) -> dict:
    """Every refusal: the status, a JSON body {"detail", "code"} and nothing that leaks."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code, body
    assert "Traceback" not in resp.text and "/tmp" not in resp.text and ".py" not in resp.text
    return body


# --- bodies ----------------------------------------------------------------------------------


def multipart(
    parts: list[tuple[str, str | None, bytes]],
    boundary: str = BOUNDARY,
    part_type: str = "application/octet-stream",
) -> bytes:
    """A multipart/form-data body from (field name, file name or None, content), each part
    declaring `part_type` as a browser declares a file's type."""
    out = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {part_type}\r\n\r\n".encode("utf-8", "surrogateescape")
            + content
            + b"\r\n"
        )
    return b"".join(out) + f"--{boundary}--\r\n".encode()


def chunked(body: bytes, size: int = 65536) -> bytes:
    """`body` in the chunked transfer coding, `size` bytes a chunk, with the last chunk."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


# --- raw HTTP --------------------------------------------------------------------------------


def http_request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """A whole HTTP/1.1 request with Host, Content-Length (unless chunked) and Connection: close."""
    head = {"Host": "127.0.0.1", "Connection": "close", **(headers or {})}
    if body and "Transfer-Encoding" not in head:
        head.setdefault("Content-Length", str(len(body)))
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def send_raw(port: int, data: bytes, timeout: float = 15, half_close: bool = False) -> bytes:
    """Send `data` to 127.0.0.1:port and read the answer until the server closes (or for
    `timeout` seconds of silence).

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
        with contextlib.suppress(ConnectionResetError, TimeoutError):
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


def response_json(raw: bytes) -> tuple[int, dict]:
    """The status and JSON body of the first response in `raw`."""
    status, _, body = parse_response(raw)
    return status, json.loads(body.decode() or "{}")
