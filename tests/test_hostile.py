"""The hostile-input suite (issue 7): what strangers send, against `serve` and `up` with nginx.

Each case is one row: what is sent, and the status and error code each stack answers. After each
one the store is clean: `imagehost check --dry-run` finds nothing to repair and no temp file is
left. Where nginx answers a request itself the row says so: it normalises paths before choosing
a location, owns the size limit, and refuses malformed HTTP itself — in our JSON error shape too.
"""

import ast
import hashlib
import inspect
import io
import json
from pathlib import Path

import pytest
import requests
from PIL import Image
from support.checks import (
    assert_store_clean,
    check_clean,
    put_by_hand,
    remove_by_hand,
    stored_keys,
    tree,
)
from support.http import (
    BOUNDARY,
    IMAGE_TYPES,
    MULTIPART_TYPE,
    assert_error,
    chunked,
    http_request,
    listed,
    multipart,
    parse_response,
    send_raw,
    upload,
    uploaded,
)
from support.images import (
    gif_polyglot,
    gif_screen,
    gif_with_frames,
    html_then_png,
    image_bytes,
    jpeg_declaring,
    jpeg_polyglot,
    jpeg_with_huge_exif,
    pdf,
    png_header_only,
    png_polyglot,
    svg,
    webp_canvas,
)
from support.stack import start_stack, stop_stack

import imagehost
from imagehost import formats, rights
from imagehost.store.keys import thumbnail_key, thumbnail_name, thumbnail_type

REMOTE = [pytest.mark.postgres, pytest.mark.s3]
# (command, storage mode): `serve` and `up`, each with local files + SQLite and with a bucket +
# PostgreSQL (issue 12, test 1): the same rows, the same answers, the same "nothing left" checks.
KINDS = [
    pytest.param(("serve", "local"), id="serve"),
    pytest.param(("up", "local"), id="up", marks=pytest.mark.nginx),
    pytest.param(("serve", "pg+s3"), id="serve-pg+s3", marks=REMOTE),
    pytest.param(("up", "pg+s3"), id="up-pg+s3", marks=[pytest.mark.nginx, *REMOTE]),
]
ADMIN_KEY = "hostile-admin-key-" + "k" * 24
MAX_UPLOAD_MB = 2
# nginx's own error pages (for requests it refuses before any location applies) are HTML.


@pytest.fixture(scope="module", params=KINDS)
def stack(request, tmp_path_factory, mode_settings):
    """One stack per kind for the whole module, MAX_UPLOAD_MB=2, default (open) policies."""
    command, mode = request.param
    with mode_settings(mode) as settings:
        root = tmp_path_factory.mktemp(f"hostile-{command}-{mode}")
        running = start_stack(command, root, MAX_UPLOAD_MB=str(MAX_UPLOAD_MB), **settings)
        yield running
        stop_stack(running)


@pytest.fixture(scope="module", params=KINDS)
def locked(request, tmp_path_factory, mode_settings):
    """A stack where listing and uploading need the admin key."""
    command, mode = request.param
    with mode_settings(mode) as settings:
        root = tmp_path_factory.mktemp(f"locked-{command}-{mode}")
        policy = {"LISTING": "key", "UPLOADS": "key", "ADMIN_KEY": ADMIN_KEY}
        running = start_stack(command, root, **policy, **settings)
        yield running
        stop_stack(running)


@pytest.fixture(scope="module")
def stored(stack) -> dict:
    """One image uploaded to `stack`, for the tests that need something to aim at."""
    return uploaded(stack.url, image_bytes("PNG", seed=42), "target.png")


def table(rows) -> list:
    """Table rows (id first, or a pytest.param whose first value is the id) as pytest params."""
    out = []
    for row in rows:
        values, marks = (row.values, row.marks) if hasattr(row, "marks") else (row, ())
        out.append(pytest.param(*values[1:], id=values[0], marks=marks))
    return out


def expect_answer(raw: bytes, status, code: str | None, method: str = "GET") -> None:
    """`raw` is the answer expected: a JSON error with `code`, nginx's own page, or success
    (code None: the status only; `status` may be a tuple of allowed ones)."""
    if status is None:  # the client went away first: closed without an answer
        assert raw == b"", raw[:300]
        return
    assert raw, "the connection was closed without an answer"
    got, headers, body = parse_response(raw)
    assert got in (status if isinstance(status, tuple) else (status,)), (got, raw[:400])
    assert b"Traceback" not in body and b"/tmp" not in body and b".py" not in body
    if method == "HEAD" or code is None:
        return
    ctype = headers.get("content-type", "")
    assert ctype.startswith("application/json"), raw[:400]
    answer = json.loads(body)
    assert set(answer) == {"detail", "code"} and answer["code"] == code, answer


def thumbnail_type_of(image: dict) -> str:
    """The type the thumbnail of an uploaded image is served as: JPEG for JPEGs, else WebP."""
    return thumbnail_type(thumbnail_name(image["filename"]))


def assert_served_as_image(url: str, content_type: str) -> bytes:
    """GET and HEAD: exactly `content_type`, nosniff and the sandbox CSP; returns the bytes."""
    got = requests.get(url, timeout=10)
    head = requests.head(url, timeout=10)
    for resp in (got, head):
        assert resp.status_code == 200, (resp.status_code, url)
        assert resp.headers["Content-Type"] == content_type
        assert resp.headers["Content-Type"] in IMAGE_TYPES
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        csp = resp.headers["Content-Security-Policy"]
        assert "sandbox" in csp and "default-src 'none'" in csp, csp
    assert int(head.headers["Content-Length"]) == len(got.content)
    return got.content


def not_outside_images(before: set[str], after: set[str]) -> set[str]:
    """Files that appeared anywhere but IMAGES_DIR, the logs and DATA_DIR (the catalog's own
    files; with STORAGE=s3 the store's temporary files, which assert_store_clean checks)."""
    return {p for p in after - before if not p.startswith(("images/", "logs/", "data/"))}


# --- contents ------------------------------------------------------------------------------

CONTENTS = [
    # id, bytes, file name, declared type, status, code (None: accepted)
    ("png-html-polyglot", png_polyglot, "x.png", "image/png", 201, None),
    ("jpeg-html-polyglot", jpeg_polyglot, "x.jpg", "image/jpeg", 201, None),
    ("gif-html-polyglot", gif_polyglot, "x.gif", "image/gif", 201, None),
    ("html-then-png", html_then_png, "x.png", "image/png", 415, "unsupported_type"),
    ("svg-with-script", svg, "x.svg", "image/svg+xml", 415, "unsupported_type"),
    ("svg-named-png", svg, "x.png", "image/png", 415, "unsupported_type"),
    ("pdf-named-jpg", pdf, "x.jpg", "image/jpeg", 415, "unsupported_type"),
    (
        "truncated-jpeg",
        lambda: image_bytes("JPEG", (200, 200), seed=6)[:400],
        "t.jpg",
        "image/jpeg",
        422,
        "corrupt_image",
    ),
    (
        "truncated-gif",
        lambda: image_bytes("GIF", (200, 200), seed=7)[:300],
        "t.gif",
        "image/gif",
        422,
        "corrupt_image",
    ),
    (
        "truncated-webp",
        lambda: image_bytes("WEBP", (200, 200), seed=8)[:60],
        "t.webp",
        "image/webp",
        422,
        "corrupt_image",
    ),
    (
        "signature-only-png",
        lambda: b"\x89PNG\r\n\x1a\n",
        "s.png",
        "image/png",
        422,
        "corrupt_image",
    ),
    (
        "png-50000x50000",
        lambda: png_header_only(50000, 50000),
        "bomb.png",
        "image/png",
        422,
        "too_many_pixels",
    ),
    (
        "gif-65535x65535",
        lambda: gif_screen(65535, 65535),
        "bomb.gif",
        "image/gif",
        422,
        "too_many_pixels",
    ),
    (
        "jpeg-65000x65000",
        lambda: jpeg_declaring(65000, 65000),
        "bomb.jpg",
        "image/jpeg",
        422,
        "too_many_pixels",
    ),
    (
        "webp-canvas-16384",
        lambda: webp_canvas(16384, 16384),
        "bomb.webp",
        "image/webp",
        422,
        "too_many_pixels",
    ),
    (
        "gif-100000-frames",
        lambda: gif_with_frames(100_000),
        "frames.gif",
        "image/gif",
        422,
        "too_many_frames",
    ),
    ("jpeg-1mb-exif", jpeg_with_huge_exif, "exif.jpg", "image/jpeg", 201, None),
]


@pytest.mark.parametrize("build, name, ctype, status, code", table(CONTENTS))
def test_contents(stack, build, name, ctype, status, code):
    data = build()
    before, images_before = tree(stack.root), {i["filename"] for i in listed(stack.url)}
    stored_before = stored_keys(stack)
    resp = upload(stack.url, data, name, ctype)
    if code is not None:
        assert_error(resp, status, code)
        assert {i["filename"] for i in listed(stack.url)} == images_before
        added = stored_keys(stack) - stored_before
        assert added == set(), added
    else:
        assert resp.status_code == 201, resp.text
        image = resp.json()
        assert image["content_type"] in IMAGE_TYPES
        served = assert_served_as_image(image["url"], image["content_type"])
        assert_served_as_image(image["thumbnail_url"], thumbnail_type_of(image))
        # Defence in depth: the script in comments, text chunks and trailing bytes is gone.
        assert b"<script" not in served and b"alert(" not in served
        with Image.open(io.BytesIO(served)) as im:
            im.load()
            exif = im.getexif()
            assert 0x010E not in exif and 0x8825 not in exif  # description, GPS
        assert len(served) < 16 * 1024
    assert not_outside_images(before, tree(stack.root)) == set()
    assert_store_clean(stack)


# --- bodies --------------------------------------------------------------------------------

_PNG = image_bytes("PNG", seed=9)
_OVER = b"\x89PNG\r\n\x1a\n" + b"\x00" * (MAX_UPLOAD_MB * 1024 * 1024 + 200 * 1024)
_LONG_BOUNDARY = "b" * 71
# nginx's own refusal of oversized headers, mapped to the API's JSON 431 (nginx.conf.template).
NGINX_HEADERS_TOO_LARGE = (431, "headers_too_large")


def _post(headers: dict, body: bytes) -> bytes:
    return http_request("POST", "/api/upload/", headers, body)


BODIES = [
    # id, request bytes, serve (status, code), up (status, code)
    (
        "over-limit-with-content-length",
        _post({"Content-Type": MULTIPART_TYPE}, multipart([("file", "a.png", _OVER)])),
        (413, "too_large"),
        (413, "too_large"),
    ),
    (
        "over-limit-chunked",
        _post(
            {"Content-Type": MULTIPART_TYPE, "Transfer-Encoding": "chunked"},
            chunked(multipart([("file", "a.png", _OVER)])),
        ),
        (413, "too_large"),
        (413, "too_large"),
    ),
    (
        "over-limit-raw-chunked",
        _post({"Content-Type": "image/png", "Transfer-Encoding": "chunked"}, chunked(_OVER)),
        (413, "too_large"),
        (413, "too_large"),
    ),
    (
        "chunked-within-limit",
        _post(
            {"Content-Type": MULTIPART_TYPE, "Transfer-Encoding": "chunked"},
            chunked(multipart([("file", "a.png", _PNG)]), size=100),
        ),
        (201, None),
        (201, None),
    ),
    (
        "empty-body",
        _post({"Content-Type": MULTIPART_TYPE, "Content-Length": "0"}, b""),
        (400, "missing_file"),
        (400, "missing_file"),
    ),
    (
        "empty-chunked-body",
        _post({"Content-Type": MULTIPART_TYPE, "Transfer-Encoding": "chunked"}, b"0\r\n\r\n"),
        (400, "invalid_multipart"),
        (400, "missing_file"),  # nginx passes an empty chunked body on as Content-Length: 0
    ),
    (
        "missing-boundary",
        _post({"Content-Type": "multipart/form-data"}, multipart([("file", "a.png", _PNG)])),
        (400, "invalid_multipart"),
        (400, "invalid_multipart"),
    ),
    (
        "boundary-71-chars",
        _post(
            {"Content-Type": f"multipart/form-data; boundary={_LONG_BOUNDARY}"},
            multipart([("file", "a.png", _PNG)], boundary=_LONG_BOUNDARY),
        ),
        (400, "invalid_multipart"),
        (400, "invalid_multipart"),
    ),
    (
        "wrong-boundary",
        _post(
            {"Content-Type": "multipart/form-data; boundary=other"},
            multipart([("file", "a.png", _PNG)]),
        ),
        (400, "invalid_multipart"),
        (400, "invalid_multipart"),
    ),
    (
        "two-file-parts",
        _post(
            {"Content-Type": MULTIPART_TYPE},
            multipart([("file", "a.png", _PNG), ("other", "b.png", _PNG)]),
        ),
        (400, "too_many_files"),
        (400, "too_many_files"),
    ),
    (
        "10000-form-fields",
        _post(
            {"Content-Type": MULTIPART_TYPE},
            multipart([(f"f{i}", None, b"v") for i in range(10_000)] + [("file", "a.png", _PNG)]),
        ),
        (400, "too_many_parts"),
        (400, "too_many_parts"),
    ),
    (
        "part-with-100-headers",
        _post(
            {"Content-Type": MULTIPART_TYPE},
            f"--{BOUNDARY}\r\n".encode()
            + b"".join(b"X-H%d: v\r\n" % i for i in range(100))
            + b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            + _PNG
            + f"\r\n--{BOUNDARY}--\r\n".encode(),
        ),
        (400, "invalid_multipart"),
        (400, "invalid_multipart"),
    ),
    (
        "field-of-1mb",
        _post(
            {"Content-Type": MULTIPART_TYPE},
            multipart([("title", None, b"t" * 1024 * 1024), ("file", "a.png", _PNG)]),
        ),
        (400, "invalid_multipart"),
        (400, "invalid_multipart"),
    ),
    (
        "header-line-1mb",
        http_request("GET", "/api/health", {"X-Pad": "a" * 1024 * 1024}),
        (431, "headers_too_large"),
        NGINX_HEADERS_TOO_LARGE,
    ),
    (
        "request-line-1mb",
        http_request("GET", "/api/health?" + "a" * 1024 * 1024),
        (414, "uri_too_long"),
        (414, "uri_too_long"),
    ),
    (
        "10000-headers",
        http_request("GET", "/api/health", {f"X-H{i}": "v" for i in range(10_000)}),
        (431, "headers_too_large"),
        NGINX_HEADERS_TOO_LARGE,
    ),
    (
        "http10-body-without-length",
        b"POST /api/upload/ HTTP/1.0\r\nHost: x\r\nContent-Type: image/png\r\n\r\n" + _PNG,
        (400, "missing_file"),
        (400, "missing_file"),
    ),
    (
        "negative-content-length",
        _post({"Content-Type": "image/png", "Content-Length": "-5"}, b""),
        (400, "bad_length"),
        (400, "bad_request"),
    ),
    (
        "content-length-not-a-number",
        _post({"Content-Type": "image/png", "Content-Length": "12abc"}, b""),
        (400, "bad_length"),
        (400, "bad_request"),
    ),
    (
        "bad-chunk-size",
        _post({"Content-Type": "image/png", "Transfer-Encoding": "chunked"}, b"zz\r\nabc\r\n"),
        (400, "bad_chunked"),
        (400, "bad_request"),
    ),
    (
        "text-body",
        _post({"Content-Type": "text/html"}, b"<script>alert(1)</script>"),
        (415, "unsupported_media_type"),
        (415, "unsupported_media_type"),
    ),
]


@pytest.mark.parametrize("request_bytes, on_serve, on_up", table(BODIES))
def test_bodies(stack, request_bytes, on_serve, on_up):
    before = tree(stack.root)
    # serve: half-close after sending so an early refusal does not wait out the linger; nginx
    # would take a half-close for a client that gave up (499), so it gets Connection: close.
    raw = send_raw(stack.port, request_bytes, half_close=stack.command == "serve")
    expect_answer(raw, *(on_serve if stack.command == "serve" else on_up))
    assert not_outside_images(before, tree(stack.root)) == set()
    assert_store_clean(stack)
    assert requests.get(f"{stack.url}/api/health", timeout=5).status_code == 200


def test_body_cut_short(stack):
    """Less body than Content-Length, then the client goes: nothing stored, nothing left."""
    raw = send_raw(
        stack.port,
        _post({"Content-Type": "image/png", "Content-Length": "100000"}, _PNG),
        half_close=True,
    )
    if stack.command == "serve":
        expect_answer(raw, 400, "incomplete")
    else:
        expect_answer(raw, None, None)  # nginx drops a request whose client went away (499)
    assert_store_clean(stack)


# --- HTTP ----------------------------------------------------------------------------------

HTTP = [
    # id, method, target ({image}, {id}: a stored image), serve (status, code), up (status, code)
    ("put-on-list", "PUT", "/api/upload/", (405, "method_not_allowed"), None),
    ("delete-on-list", "DELETE", "/api/upload/", (405, "method_not_allowed"), None),
    ("post-on-metadata", "POST", "/api/upload/{image}", (405, "method_not_allowed"), None),
    ("options-on-health", "OPTIONS", "/api/health", (405, "method_not_allowed"), None),
    ("made-up-method", "BREW", "/api/health", (405, "method_not_allowed"), None),
    # nginx answers these itself, in JSON too: test_front_ends_own_refusals_are_json
    ("trace-on-health", "TRACE", "/api/health", (405, "method_not_allowed"), (405, None)),
    ("post-on-image", "POST", "/images/{image}", (405, "method_not_allowed"), (405, None)),
    ("delete-on-image", "DELETE", "/images/{image}", (405, "method_not_allowed"), (405, None)),
    ("head-on-list", "HEAD", "/api/upload/", (200, None), None),
    ("head-on-image", "HEAD", "/images/{image}", (200, None), None),
    ("head-on-unknown", "HEAD", "/api/nothing", (404, None), None),
    ("unknown-api-route", "GET", "/api/nothing", (404, "not_found"), None),
    ("api-root", "GET", "/api/", (404, "not_found"), None),
    ("below-metadata", "GET", "/api/upload/{image}/x", (404, "not_found"), None),
    ("uppercase-extension", "GET", "/api/upload/{id}.PNG", (404, "not_found"), None),
    ("svg-name", "GET", "/images/{id}.svg", (404, "not_found"), None),
    ("html-name", "GET", "/images/{id}.html", (404, "not_found"), None),
    ("short-id", "GET", "/images/abc.png", (404, "not_found"), None),
    ("thumb-as-png", "GET", "/images/thumbs/{id}.png", (404, "not_found"), None),
    ("query-on-health", "GET", "/api/health?x=%3Cscript%3E&y=%00&y=", (200, None), None),
    ("query-on-image", "GET", "/images/{image}?download=1&x=%3Cscript%3E", (200, None), None),
    ("repeated-limit", "GET", "/api/upload/?limit=5&limit=500", (400, "invalid_parameter"), None),
    (
        "cursor-20-digits",
        "GET",
        "/api/upload/?cursor=" + "9" * 20,
        (400, "invalid_parameter"),
        None,
    ),
    ("limit-nul", "GET", "/api/upload/?limit=%00", (400, "invalid_parameter"), None),
    pytest.param(
        "limit-unicode-digit",
        "GET",
        "/api/upload/?limit=%D9%A3",  # ARABIC-INDIC DIGIT THREE: str.isdigit() says yes
        (400, "invalid_parameter"),
        None,
    ),
    (
        "encoded-traversal-api",
        "GET",
        "/api/upload/..%2f..%2fdata%2fcatalog.sqlite3",
        (404, "not_found"),
        (404, "not_found"),  # nginx decodes and resolves it to /data/…, the frontend's 404
    ),
    (
        "encoded-traversal-images",
        "GET",
        "/images/..%2f..%2fdata%2fcatalog.sqlite3",
        (404, "not_found"),
        (400, "bad_request"),  # resolves above the root: nginx refuses it
    ),
    (
        "encoded-dots-images",
        "GET",
        "/images/%2e%2e/%2e%2e/data/admin_key",
        (404, "not_found"),
        (400, "bad_request"),
    ),
    ("dotdot-above-root", "GET", "/../../etc/passwd", (404, "not_found"), (400, "bad_request")),
    (
        "backslash-traversal",
        "GET",
        "/images/..\\..\\data\\admin_key",
        (404, "not_found"),
        (404, "not_found"),  # nginx: a "/." anywhere is a dotfile: 404
    ),
    ("nul-in-name", "GET", "/images/%00{image}", (404, "not_found"), (400, "bad_request")),
    ("double-slash-api", "GET", "//api//upload", (404, "not_found"), None),
    ("double-slash-image", "GET", "/images//{image}", (404, "not_found"), (200, None)),
    ("temp-folder", "GET", "/images/.tmp/", (404, "not_found"), (404, "not_found")),
    ("catalog-file", "GET", "/data/catalog.sqlite3", (404, "not_found"), (404, "not_found")),
    ("admin-key-file", "GET", "/data/admin_key", (404, "not_found"), (404, "not_found")),
    ("dotfile", "GET", "/.env", (404, "not_found"), (404, "not_found")),
    ("source-file", "GET", "/api.py", (404, "not_found"), (404, "not_found")),
]


@pytest.mark.parametrize("method, target, on_serve, on_up", table(HTTP))
def test_http(stack, stored, method, target, on_serve, on_up):
    target = target.format(image=stored["filename"], id=stored["id"])
    raw = send_raw(stack.port, http_request(method, target), half_close=stack.command == "serve")
    expected = on_serve if stack.command == "serve" or on_up is None else on_up
    expect_answer(raw, *expected, method=method)
    status, headers, body = parse_response(raw)
    assert b"alert" not in body and b"BEGIN" not in body  # nothing of a secret file
    if status == 405 and expected[1] is not None:
        assert headers["allow"]
    if method == "HEAD":
        assert body == b""
    assert headers.get("content-type", "").split(";")[0] not in ("image/svg+xml",)
    assert_store_clean(stack)


ABSURD_RANGES = [
    ("500-ranges", "bytes=" + ",".join(f"{i}-{i}" for i in range(500))),
    ("overflowing-start", "bytes=99999999999999999999999-"),
    ("unsatisfiable", "bytes=1000000-2000000"),
    ("inverted", "bytes=50-10"),
    ("garbage", "bytes=abc"),
    ("negative-suffix-zero", "bytes=-0"),
]


@pytest.mark.parametrize("range_header", table(ABSURD_RANGES))
def test_absurd_range_headers_get_the_whole_image(request, stack, stored, range_header):
    """An image answer is always the image: never a multipart/byteranges body or an HTML 416.

    serve answers `Accept-Ranges: none` and ignores Range; nginx should do the same.
    """
    whole = requests.get(stored["url"], timeout=10).content
    resp = requests.get(stored["url"], headers={"Range": range_header}, timeout=10)
    assert resp.status_code == 200, (resp.status_code, resp.headers.get("Content-Type"))
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.content == whole


def test_front_ends_own_refusals_are_json(request, stack, stored):
    """A wrong method on an image and oversized headers get the API's JSON, from serve and from
    nginx alike.

    (Malformed request lines and chunk framing stay nginx's own 400/414 page: an error_page for
    those would send a request nginx could not parse to a named location, which answers 500.)
    """
    probes = {
        "post-on-image": http_request("POST", f"/images/{stored['filename']}"),
        "delete-on-image": http_request("DELETE", f"/images/{stored['filename']}"),
        "trace": http_request("TRACE", "/api/health"),
        "header-line-1mb": http_request("GET", "/api/health", {"X-Pad": "a" * 1024 * 1024}),
    }
    not_json = {}
    for name, data in probes.items():
        _, headers, _ = parse_response(send_raw(stack.port, data))
        if not headers.get("content-type", "").startswith("application/json"):
            not_json[name] = headers.get("content-type")
    assert not_json == {}


def test_ambiguous_framing_is_refused_and_the_connection_closed(request, stack):
    """Content-Length with chunked, or an unknown transfer coding (RFC 9112 §6.1, §6.3): the
    request is refused and the connection closed, so a request smuggled behind it is never read.
    """
    smuggled = b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for framing in (
        {"Content-Length": "5", "Transfer-Encoding": "chunked"},
        {"Transfer-Encoding": "gzip"},
    ):
        head = "".join(f"{k}: {v}\r\n" for k, v in framing.items())
        data = (
            (
                f"POST /api/upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n{head}\r\n"
            ).encode()
            + b"0\r\n\r\n"
            + smuggled
        )
        raw = send_raw(stack.port, data)
        status, _, _ = parse_response(raw)
        assert status in (400, 501), raw[:300]
        assert raw.count(b"HTTP/1.1 ") == 1, raw[:600]
    assert_store_clean(stack)


# --- names ---------------------------------------------------------------------------------

HOSTILE_NAMES = [
    ("dotdot", "../../../../etc/cron.d/x.png"),
    ("absolute", "/etc/passwd.png"),
    ("backslashes", "..\\..\\windows\\win.ini.png"),
    ("nul", "evil.php\x00.png"),
    ("crlf-log-injection", "a.png\r\n2026-01-01 INFO FAKE-LOG-LINE admin logged in"),
    ("1kb", "n" * 1024 + ".png"),
    ("lookalike-slash", "\u2215etc\u2215passwd.png"),
    ("right-to-left-override", "photo\u202egnp.exe"),
    ("zero-width", "a\u200b\u200d\ufeff.png"),
    ("html", '<img src=x onerror="alert(1)">.png'),
    ("script", "</script><script>alert(1)</script>.png"),
    ("dot", "."),
    ("empty", ""),
    ("dos-device", "CON.png"),
]


@pytest.mark.parametrize("name", table(HOSTILE_NAMES))
@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_hostile_names_are_inert_text(stack, name, how):
    before, stored_before = tree(stack.root), stored_keys(stack)
    if how == "multipart":
        resp = upload(stack.url, _PNG, name, timeout=10)
    else:
        from urllib.parse import quote

        resp = requests.post(
            f"{stack.url}/api/upload/",
            data=_PNG,
            headers={"Content-Type": "image/png", "X-Filename": quote(name)},
            timeout=10,
        )
    assert resp.status_code == 201, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    image = resp.json()
    original = image["original_name"]
    assert len(original) <= 255 and original
    assert not any(ord(c) < 32 or ord(c) == 127 for c in original), original
    assert not any(c in original for c in "\u202e\u200b\u200d\ufeff")
    assert stored_keys(stack) - stored_before == {
        image["filename"],
        thumbnail_key(image["filename"]),
    }
    assert not_outside_images(before, tree(stack.root)) == set()
    meta = requests.get(image["delete_url"], timeout=10)
    assert meta.headers["Content-Type"] == "application/json"
    assert meta.json()["original_name"] == original
    log = (stack.log_dir / "app.log").read_text()
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())
    assert_store_clean(stack)


def test_hostile_host_header_stays_out_of_urls(stack, stored):
    """Handed-out URLs follow the Host header (no PUBLIC_URL), but only a well-formed one."""
    for host in ("<script>alert(1)</script>", "evil.example/path?x=", 'a" onload="x'):
        raw = send_raw(
            stack.port,
            http_request("GET", f"/api/upload/{stored['filename']}", {"Host": host}),
            half_close=stack.command == "serve",
        )
        status, _, body = parse_response(raw)
        if stack.command == "up" and status == 400:
            continue  # nginx refuses a Host that is not a host name
        assert status == 200, raw[:300]
        image = json.loads(body)
        for field in ("url", "thumbnail_url", "delete_url"):
            assert image[field].startswith(f"http://127.0.0.1:{stack.port}/"), image[field]


# --- rights --------------------------------------------------------------------------------

RIGHTS = [
    # id, headers (from: admin key, other image's token, own token), status, code
    ("no-credentials", lambda k, other, own: {}, 401, "auth_required"),
    ("other-images-token", lambda k, other, own: {"X-Delete-Token": other}, 403, "forbidden"),
    (
        "wrong-admin-key",
        lambda k, other, own: {"Authorization": "Bearer " + "w" * 43},
        403,
        "forbidden",
    ),
    (
        "admin-key-minus-one",
        lambda k, other, own: {"Authorization": f"Bearer {k[:-1]}"},
        403,
        "forbidden",
    ),
    (
        "admin-key-plus-one",
        lambda k, other, own: {"Authorization": f"Bearer {k}x"},
        403,
        "forbidden",
    ),
    ("empty-bearer", lambda k, other, own: {"Authorization": "Bearer "}, 401, "auth_required"),
    (
        "basic-auth",
        lambda k, other, own: {"Authorization": "Basic YWRtaW46YWRtaW4="},
        401,
        "auth_required",
    ),
    ("token-as-bearer", lambda k, other, own: {"Authorization": f"Bearer {own}"}, 403, "forbidden"),
    ("admin-key-as-token", lambda k, other, own: {"X-Delete-Token": k}, 403, "forbidden"),
    (
        "token-hash-as-token",
        lambda k, other, own: {"X-Delete-Token": hashlib.sha256(own.encode()).hexdigest()},
        403,
        "forbidden",
    ),
    ("token-8kb", lambda k, other, own: {"X-Delete-Token": "t" * 8000}, 403, "forbidden"),
    ("token-latin1", lambda k, other, own: {"X-Delete-Token": "é" * 32}, 403, "forbidden"),
    ("empty-token", lambda k, other, own: {"X-Delete-Token": ""}, 401, "auth_required"),
]


@pytest.mark.parametrize("headers, status, code", table(RIGHTS))
def test_delete_rights(stack, headers, status, code):
    mine = upload(stack.url, _PNG, "m.png", timeout=10).json()
    other = upload(stack.url, _PNG, "o.png", timeout=10).json()
    sent = headers(stack.admin_key, other["delete_token"], mine["delete_token"])
    resp = requests.delete(mine["delete_url"], headers=sent, timeout=10)
    assert_error(resp, status, code)
    assert requests.get(mine["url"], timeout=10).status_code == 200  # still there
    assert requests.get(mine["delete_url"], timeout=10).status_code == 200
    for image in (mine, other):  # tidy up with the right token
        gone = requests.delete(
            image["delete_url"], headers={"X-Delete-Token": image["delete_token"]}, timeout=10
        )
        assert gone.status_code == 204
    assert_store_clean(stack)


LOCKED = [
    # id, method, path, Authorization, status, code
    ("list-without-key", "GET", "/api/upload/", None, 401, "auth_required"),
    ("list-wrong-key", "GET", "/api/upload/", "Bearer " + "z" * 40, 403, "forbidden"),
    ("list-head-without-key", "HEAD", "/api/upload/", None, 401, None),
    ("upload-without-key", "POST", "/api/upload/", None, 401, "auth_required"),
    ("upload-wrong-key", "POST", "/api/upload/", "Bearer " + "z" * 40, 403, "forbidden"),
    ("upload-key-in-basic", "POST", "/api/upload/", "Basic " + ADMIN_KEY, 401, "auth_required"),
    ("list-with-key", "GET", "/api/upload/", f"Bearer {ADMIN_KEY}", 200, None),
    ("upload-with-key", "POST", "/api/upload/", f"Bearer {ADMIN_KEY}", 201, None),
]


@pytest.mark.parametrize("method, path, auth, status, code", table(LOCKED))
def test_key_policies(locked, method, path, auth, status, code):
    headers = {"Authorization": auth} if auth else {}
    files = {"file": ("a.png", _PNG, "image/png")} if method == "POST" else None
    count_before = len(listed(locked.url, Authorization=f"Bearer {ADMIN_KEY}"))
    resp = requests.request(method, locked.url + path, headers=headers, files=files, timeout=10)
    if code:
        assert_error(resp, status, code)
    assert resp.status_code == status
    count_after = len(listed(locked.url, Authorization=f"Bearer {ADMIN_KEY}"))
    assert count_after == count_before + (1 if status == 201 else 0)
    if method == "GET" and status != 200:
        # the ETag of the list is no way around the key
        etag = requests.get(
            locked.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
        ).headers["ETag"]
        again = requests.get(locked.url + path, headers={"If-None-Match": etag}, timeout=10)
        assert again.status_code == 401
    assert_store_clean(locked)


def test_locked_config_says_so(locked):
    config = requests.get(f"{locked.url}/api/config", timeout=10).json()
    assert (config["uploads"], config["listing"]) == ("key", "key")


def test_secret_comparisons_are_timing_safe():
    """Every comparison of a key or token goes through hmac.compare_digest; none uses ==.

    Read from the source rather than measured: timing tests are noise on a shared machine.
    """
    source = inspect.getsource(rights)
    tree_ = ast.parse(source)
    functions = {f.name: f for f in ast.walk(tree_) if isinstance(f, ast.FunctionDef)}
    for name in ("is_admin", "check_delete"):
        calls = [ast.unparse(c.func) for c in ast.walk(functions[name]) if isinstance(c, ast.Call)]
        assert "hmac.compare_digest" in calls, name
    secretish = ("key", "token", "hash", "given", "secret")
    package = Path(imagehost.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                continue
            names = [
                n.id if isinstance(n, ast.Name) else n.attr
                for side in (node.left, *node.comparators)
                for n in ast.walk(side)
                if isinstance(n, (ast.Name, ast.Attribute))
            ]
            leaked = [n for n in names if any(s in n.lower() for s in secretish)]
            assert not leaked, f"{path.name}:{node.lineno}: {ast.unparse(node)}"


# --- served files --------------------------------------------------------------------------

FORMATS = [(f.pil_name, f.content_type) for f in formats.STORED.values()]  # HEIC: test_heic


def test_every_image_answer_is_an_image(stack):
    """Each format, and the polyglots, come back as exactly their image type with nosniff and
    the sandbox CSP; a thumbnail as JPEG (a JPEG's) or WebP; nothing as text/html or
    image/svg+xml."""
    sources = [image_bytes(fmt, seed=10 + i) for i, (fmt, _) in enumerate(FORMATS)]
    sources += [png_polyglot(), jpeg_polyglot(), gif_polyglot()]
    expected = [ctype for _, ctype in FORMATS] + ["image/png", "image/jpeg", "image/gif"]
    for data, ctype in zip(sources, expected, strict=True):
        # declared as HTML under an .html name: neither may pick the served type
        resp = upload(stack.url, data, "page.html", "text/html", timeout=10)
        assert resp.status_code == 201, resp.text
        image = resp.json()
        assert image["content_type"] == ctype
        assert_served_as_image(image["url"], ctype)
        assert_served_as_image(image["thumbnail_url"], thumbnail_type_of(image))
    for image in listed(stack.url):
        for url in (image["url"], image["thumbnail_url"]):
            ctype = requests.head(url, timeout=10).headers["Content-Type"]
            assert ctype in IMAGE_TYPES, (url, ctype)


def test_a_stored_name_is_served_by_its_extension_only(stack):
    """Even HTML dropped into the store (IMAGES_DIR or the bucket) under a stored name comes
    back as an image with nosniff and a sandbox, never as a page; other names are not served
    at all."""
    html = b"<html><script>alert('dropped by hand')</script></html>"
    put_by_hand(stack, "DroppedByHand123.png", html)
    put_by_hand(stack, "DroppedByHand123.html", html)
    put_by_hand(stack, "DroppedByHand123.svg", svg())
    try:
        assert_served_as_image(f"{stack.url}/images/DroppedByHand123.png", "image/png")
        for name in ("DroppedByHand123.html", "DroppedByHand123.svg"):
            resp = requests.get(f"{stack.url}/images/{name}", timeout=10)
            assert_error(resp, 404, "not_found")
    finally:
        for name in ("DroppedByHand123.png", "DroppedByHand123.html", "DroppedByHand123.svg"):
            remove_by_hand(stack, name)


def test_store_is_clean_by_the_real_command(stack):
    """`imagehost check --dry-run`, the command itself, after all of the above."""
    check_clean(stack)
