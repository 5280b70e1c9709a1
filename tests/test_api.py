"""The API over real HTTP against `imagehost serve`: every route, every refusal."""

import io
import json
import os
import stat

import pytest
import requests
from PIL import Image
from support.checks import check_clean, tree
from support.http import (
    MULTIPART_TYPE,
    assert_error,
    chunked,
    multipart,
    response_json,
    send_raw,
    upload,
)
from support.images import image_bytes, png_header_only
from support.stack import run_cli


def test_health_and_config(server):
    health = requests.get(f"{server.url}/api/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    config = requests.get(f"{server.url}/api/config/", timeout=5).json()
    assert config["max_upload_bytes"] == 5 * 1024 * 1024
    assert config["allowed_formats"] == ["jpeg", "png", "gif", "webp", "avif", "heic"]
    assert ".jpeg" in config["allowed_extensions"] and config["uploads"] == "open"
    assert {".heic", ".heif"} <= set(config["allowed_extensions"])
    assert {"image/heic", "image/heif"} <= set(config["allowed_types"])


def test_upload_fetch_list_delete(server):
    data = image_bytes("PNG")
    resp = upload(server.url, data, name="holiday.png")
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert set(image) == {
        "id",
        "filename",
        "url",
        "thumbnail_url",
        "share_url",
        "delete_url",
        "delete_token",
        "delete_page_url",
        "original_name",
        "content_type",
        "size",
        "width",
        "height",
        "created_at",
        "expires_at",
    }
    assert image["expires_at"] is None  # kept until deleted: DEFAULT_EXPIRY is unset
    assert image["filename"] == f"{image['id']}.png" and len(image["id"]) >= 10
    assert image["url"] == f"{server.url}/images/{image['filename']}"
    assert image["original_name"] == "holiday.png"
    assert (image["width"], image["height"], image["content_type"]) == (64, 48, "image/png")
    assert resp.headers["Location"] == image["delete_url"]
    assert image["share_url"] == f"{server.url}/i/{image['id']}"
    # name and token in the fragment: a browser never sends it, so no log or Referer sees it
    assert image["delete_page_url"] == (
        f"{server.url}/delete.html#{image['filename']}:{image['delete_token']}"
    )

    served = requests.get(image["url"], timeout=5)
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert (
        Image.open(io.BytesIO(served.content)).tobytes() == Image.open(io.BytesIO(data)).tobytes()
    )
    thumb = requests.get(image["thumbnail_url"], timeout=5)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"

    meta = requests.get(image["delete_url"], timeout=5).json()
    assert meta == {k: v for k, v in image.items() if k not in ("delete_token", "delete_page_url")}
    listing = requests.get(f"{server.url}/api/upload", timeout=5)
    assert listing.json() == [meta] and listing.headers["X-Total-Count"] == "1"

    gone = requests.delete(
        image["delete_url"], timeout=5, headers={"X-Delete-Token": image["delete_token"]}
    )
    assert gone.status_code == 204
    assert_error(requests.get(image["url"], timeout=5), 404, "not_found")
    assert_error(requests.get(image["delete_url"], timeout=5), 404, "not_found")
    assert requests.get(f"{server.url}/api/upload/", timeout=5).json() == []
    assert list(server.images_dir.glob("*.png")) == []
    assert list((server.images_dir / "thumbs").iterdir()) == []
    check_clean(server)


def test_raw_body_upload_keeps_name(server):
    data = image_bytes("JPEG")
    resp = requests.post(
        f"{server.url}/api/upload",
        data=data,
        timeout=10,
        headers={"Content-Type": "image/jpeg", "X-Filename": "caf%C3%A9.jpg"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["original_name"] == "café.jpg"
    assert resp.json()["filename"].endswith(".jpg")


def test_format_follows_content_not_name(server):
    resp = upload(server.url, image_bytes("GIF"), name="looks-like.jpg", ctype="image/jpeg")
    assert resp.status_code == 201
    assert resp.json()["filename"].endswith(".gif")
    assert resp.json()["content_type"] == "image/gif"


def test_listing_pages_etag_and_link(server):
    names = [upload(server.url, image_bytes("PNG", seed=i)).json()["filename"] for i in range(5)]
    first = requests.get(f"{server.url}/api/upload/?limit=2", timeout=5)
    assert [i["filename"] for i in first.json()] == names[::-1][:2]
    assert first.headers["X-Total-Count"] == "5"
    seen = [i["filename"] for i in first.json()]
    link = first.headers["Link"]
    while link:
        url = link.split(";")[0].strip("<>")
        page = requests.get(url, timeout=5)
        seen += [i["filename"] for i in page.json()]
        link = page.headers.get("Link")
    assert seen == names[::-1]

    etag = first.headers["ETag"]
    again = requests.get(
        f"{server.url}/api/upload/?limit=2", timeout=5, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    upload(server.url, image_bytes("PNG"))
    changed = requests.get(
        f"{server.url}/api/upload/?limit=2", timeout=5, headers={"If-None-Match": etag}
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


@pytest.mark.parametrize(
    "query, code",
    [
        ("limit=0", "invalid_parameter"),
        ("limit=201", "invalid_parameter"),
        ("limit=abc", "invalid_parameter"),
        ("cursor=-1", "invalid_parameter"),
        ("cursor=../../etc", "invalid_parameter"),
    ],
    ids=["limit-zero", "limit-too-big", "limit-text", "cursor-negative", "cursor-path"],
)
def test_listing_bad_parameters(server, query, code):
    assert_error(requests.get(f"{server.url}/api/upload/?{query}", timeout=5), 400, code)


PNG = image_bytes("PNG")
REFUSALS = [
    # description, content type, body, status, code
    (
        "no-file-field",
        MULTIPART_TYPE,
        multipart([("title", None, b"hello")]),
        400,
        "missing_file",
    ),
    (
        "two-files",
        MULTIPART_TYPE,
        multipart([("file", "a.png", PNG), ("file", "b.png", PNG)]),
        400,
        "too_many_files",
    ),
    (
        "empty-file",
        MULTIPART_TYPE,
        multipart([("file", "a.png", b"")]),
        400,
        "empty_file",
    ),
    (
        "no-boundary",
        "multipart/form-data",
        multipart([("file", "a.png", PNG)]),
        400,
        "invalid_multipart",
    ),
    (
        "truncated-multipart",
        MULTIPART_TYPE,
        multipart([("file", "a.png", PNG)])[:-30],
        400,
        "invalid_multipart",
    ),
    ("text-body", "text/plain", b"hello", 415, "unsupported_media_type"),
    (
        "html-named-png",
        MULTIPART_TYPE,
        multipart([("file", "x.png", b"<html><script>alert(1)</script></html>")]),
        415,
        "unsupported_type",
    ),
    (
        "svg",
        MULTIPART_TYPE,
        multipart([("file", "x.svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>')]),
        415,
        "unsupported_type",
    ),
    ("pdf-named-jpg", "image/jpeg", b"%PDF-1.4\n1 0 obj<<>>endobj\n", 415, "unsupported_type"),
    ("png-50000x50000", "image/png", png_header_only(50000, 50000), 422, "too_many_pixels"),
    ("truncated-png", "image/png", PNG[: len(PNG) // 2], 422, "corrupt_image"),
    ("empty-raw-body", "image/png", b"", 400, "missing_file"),
]


@pytest.mark.parametrize(
    "ctype, body, status, code", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_leave_nothing(server, ctype, body, status, code):
    before = tree(server.root)
    resp = requests.post(
        f"{server.url}/api/upload/", data=body, timeout=10, headers={"Content-Type": ctype}
    )
    assert_error(resp, status, code)
    assert requests.get(f"{server.url}/api/upload/", timeout=5).json() == []
    assert {p for p in tree(server.root) - before if not p.startswith("logs/")} == set()
    check_clean(server)


def test_content_length_over_limit_refused_before_body(serve_factory):
    running = serve_factory(MAX_UPLOAD_MB="1")
    head = (
        b"POST /api/upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Content-Length: 104857600\r\n\r\n"
    )
    status, body = response_json(send_raw(running.port, head))  # no body sent at all
    assert (status, body["code"]) == (413, "too_large")
    check_clean(running)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("kind", ["raw", "multipart"])
def test_upload_limit_is_exact_for_raw_and_multipart_bodies(serve_factory, kind, framing):
    """A file of MAX_UPLOAD_MB + 1 KiB is refused 413 however it is sent; one of exactly
    MAX_UPLOAD_MB passes the size check (and is then refused as what it is: not an image)."""
    running = serve_factory(MAX_UPLOAD_MB="1")
    limit = 1024 * 1024
    for size, status, code in ((limit + 1024, 413, "too_large"), (limit, 415, "unsupported_type")):
        data = b"\0" * size
        if kind == "raw":
            body, ctype = data, "image/png"
        else:
            body, ctype = multipart([("file", "a.png", data)]), MULTIPART_TYPE
        headers = {"Content-Type": ctype}
        if framing == "chunked":
            resp = requests.post(
                f"{running.url}/api/upload/", data=iter([body]), headers=headers, timeout=30
            )
        else:
            resp = requests.post(
                f"{running.url}/api/upload/", data=body, headers=headers, timeout=30
            )
        assert_error(resp, status, code)
    check_clean(running)


def test_chunked_body_over_limit_is_cut(serve_factory):
    running = serve_factory(MAX_UPLOAD_MB="1")
    body = chunked(b"x" * 65536 * 40)
    head = (
        b"POST /api/upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    status, answer = response_json(send_raw(running.port, head + body))
    assert (status, answer["code"]) == (413, "too_large")
    check_clean(running)


def test_chunked_upload_within_limit(server):
    data = image_bytes("PNG")
    body = chunked(data)
    head = (
        b"POST /api/upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    status, answer = response_json(send_raw(server.port, head + body))
    assert status == 201 and answer["width"] == 64


HOSTILE_NAMES = [
    "../../../etc/passwd.png",
    "/etc/shadow.png",
    "..\\..\\win.ini.png",
    "a\x00b.png",
    "line\r\nbreak.png",
    "x" * 1024 + ".png",
    "<img src=x onerror=alert(1)>.png",
    "\u2215etc\u2215passwd.png",
]


@pytest.mark.parametrize(
    "name",
    HOSTILE_NAMES,
    ids=["dotdot", "absolute", "backslash", "nul", "crlf", "1kb", "html", "lookalike-slash"],
)
def test_hostile_names_are_inert_text(server, name):
    before = tree(server.root)
    resp = upload(server.url, PNG, name=name)
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert "\x00" not in image["original_name"] and "\r" not in image["original_name"]
    assert len(image["original_name"]) <= 255
    added = tree(server.root) - before
    assert {p for p in added if not p.startswith("logs/")} == {
        f"images/{image['filename']}",
        f"images/thumbs/{image['id']}.webp",
    }


def test_delete_rights(server):
    first = upload(server.url, PNG).json()
    second = upload(server.url, PNG).json()
    url = first["delete_url"]
    assert_error(requests.delete(url, timeout=5), 401, "auth_required")
    assert_error(
        requests.delete(url, timeout=5, headers={"X-Delete-Token": second["delete_token"]}),
        403,
        "forbidden",
    )
    assert_error(
        requests.delete(url, timeout=5, headers={"Authorization": "Bearer " + "w" * 43}),
        403,
        "forbidden",
    )
    ok = requests.delete(url, timeout=5, headers={"Authorization": f"Bearer {server.admin_key}"})
    assert ok.status_code == 204
    assert_error(
        requests.delete(url, timeout=5, headers={"Authorization": f"Bearer {server.admin_key}"}),
        404,
        "not_found",
    )
    assert requests.get(second["url"], timeout=5).status_code == 200


def test_admin_key_file_is_private(server):
    path = server.data_dir / "admin_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "upload.html#key=" + server.admin_key in server.console


def test_uploads_key_policy(serve_factory):
    running = serve_factory(UPLOADS="key", ADMIN_KEY="k" * 32)
    assert_error(upload(running.url, PNG), 401, "auth_required")
    assert_error(
        upload(running.url, PNG, headers={"Authorization": "Bearer " + "z" * 32}), 403, "forbidden"
    )
    assert (
        upload(running.url, PNG, headers={"Authorization": "Bearer " + "k" * 32}).status_code == 201
    )
    check_clean(running)


def test_listing_key_policy(serve_factory):
    running = serve_factory(LISTING="key", ADMIN_KEY="k" * 32)
    assert_error(requests.get(f"{running.url}/api/upload/", timeout=5), 401, "auth_required")
    assert_error(
        requests.get(
            f"{running.url}/api/upload/", timeout=5, headers={"Authorization": "Bearer " + "z" * 32}
        ),
        403,
        "forbidden",
    )
    ok = requests.get(
        f"{running.url}/api/upload/", timeout=5, headers={"Authorization": "Bearer " + "k" * 32}
    )
    assert ok.status_code == 200 and ok.json() == []


@pytest.mark.parametrize(
    "method, path, status, code",
    [
        ("PUT", "/api/upload/", 405, "method_not_allowed"),
        ("PATCH", "/api/health", 405, "method_not_allowed"),
        ("GET", "/api/nothing", 404, "not_found"),
        ("GET", "/api/upload/..%2f..%2fetc%2fpasswd", 404, "not_found"),
        ("GET", "/images/../data/catalog.sqlite3", 404, "not_found"),
        ("GET", "/images/.tmp/x.part", 404, "not_found"),
        ("GET", "//api//upload", 404, "not_found"),
        ("DELETE", "/api/upload/short.png", 404, "not_found"),
    ],
    ids=[
        "put-list",
        "patch-health",
        "unknown",
        "encoded-traversal",
        "dotdot-images",
        "temp-file",
        "double-slash",
        "bad-name",
    ],
)
def test_http_refusals(server, method, path, status, code):
    resp = requests.request(method, server.url + path, timeout=5)
    body = assert_error(resp, status, code)
    if status == 405:
        assert "GET" in resp.headers["Allow"] or "POST" in resp.headers["Allow"], body


def test_head_and_query_strings(server):
    image = upload(server.url, PNG).json()
    head = requests.head(image["url"], timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == image["size"]
    assert requests.get(image["url"] + "?v=1&x=<script>", timeout=5).status_code == 200


def test_openapi_matches_routes(server):
    from imagehost.api import _routes

    doc = requests.get(f"{server.url}/api/openapi.json", timeout=5).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    # everything but the frontend's files, which have no summary
    routed = {(r.method, r.pattern) for r in _routes() if r.summary}
    assert {p for _, p in routed} >= {"/api/albums", "/i/{page_id}", "/a/{page_id}"}
    assert documented == routed


@pytest.mark.parametrize("policy", [{}, {"UPLOADS": "key", "LISTING": "key"}])
def test_openapi_passes_a_validator_and_names_every_operation(policy):
    """What code generators and API tools need: a valid 3.1 document (openapi-spec-validator),
    a unique operationId and a declared tag on each operation, and security that names only
    declared schemes."""
    from openapi_spec_validator import validate

    from imagehost import api, config, openapi

    doc = openapi.spec(api._routes(), config.load(policy, env_file=None), "http://127.0.0.1")
    validate(doc)
    operations = [op for ops in doc["paths"].values() for op in ops.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) == len(operations)
    tags = {t["name"] for t in doc["tags"]}
    assert all(len(op["tags"]) == 1 and op["tags"][0] in tags for op in operations)
    schemes = set(doc["components"]["securitySchemes"])
    used = {name for op in operations for req in op.get("security", []) for name in req}
    assert used == schemes == {"adminKey", "deleteToken", "metricsToken"}
    by_id = {op["operationId"]: op for op in operations}
    assert by_id["deleteAlbum"]["security"] == [{"deleteToken": []}, {"adminKey": []}]
    # with UPLOADS=key an upload needs the key; open, anonymous ({}) is one of the options
    anonymous = {} in by_id["uploadImage"]["security"]
    assert anonymous == (policy.get("UPLOADS") != "key")


def test_frontend_pages_have_csp(server):
    page = requests.get(f"{server.url}/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"].split("style-src")[0]


def test_keep_alive_serves_several_requests_on_one_connection(server):
    with requests.Session() as session:
        for _ in range(5):
            assert session.get(f"{server.url}/api/health", timeout=5).status_code == 200


def test_request_id_is_taken_from_header_and_logged(server):
    resp = requests.get(f"{server.url}/api/config", timeout=5, headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    import time

    deadline = time.monotonic() + 5  # the line is written just after the answer is sent
    while "rid=abc-123" not in (log := (server.log_dir / "app.log").read_text()):
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    assert "GET /api/config" in log


def test_json_logs(serve_factory):
    import time

    running = serve_factory(LOG_FORMAT="json")
    upload(running.url, PNG)
    deadline = time.monotonic() + 5  # the request line is written just after the answer
    while True:
        lines = (running.log_dir / "app.log").read_text().splitlines()
        entries = [json.loads(line) for line in lines]
        if any(e.get("status") == 201 and e.get("rid") for e in entries):
            break
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    assert any(e["message"].startswith("uploaded ") for e in entries)


def test_bad_setting_stops_startup_with_one_line(tmp_path):
    env = {**os.environ, "MAX_UPLOAD_MB": "lots", "DATA_DIR": str(tmp_path)}
    result = run_cli(env, "serve")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "imagehost: configuration error: MAX_UPLOAD_MB='lots': is not valid"
    ]


def test_slow_client_is_cut_off(serve_factory):
    import socket

    running = serve_factory(REQUEST_TIMEOUT="2")
    head = (
        b"POST /api/upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Content-Length: 1000\r\n\r\nabc"
    )  # then nothing more: the server must close the connection itself
    with socket.create_connection(("127.0.0.1", running.port), timeout=20) as s:
        s.sendall(head)
        answer = b""
        while chunk := s.recv(65536):  # a TimeoutError here means it was never closed
            answer += chunk
    assert b" 201 " not in answer
    assert requests.get(f"{running.url}/api/health", timeout=5).status_code == 200
    check_clean(running)


def test_unexpected_error_is_a_generic_500_logged_with_its_traceback(server):
    import time

    thumbs = server.images_dir / "thumbs"
    thumbs.rmdir()
    thumbs.write_text("not a folder")  # the commit's rename into thumbs/ now fails unexpectedly
    body = assert_error(upload(server.url, PNG), 500, "internal_error")
    assert body["detail"] == "Something went wrong on our side."
    deadline = time.monotonic() + 5
    while "Traceback" not in (log := (server.log_dir / "app.log").read_text()):
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    assert "NotADirectoryError" in log
    assert sorted(p.name for p in server.images_dir.iterdir()) == [".tmp", "thumbs"]
    assert list((server.images_dir / ".tmp").iterdir()) == []
    assert requests.get(f"{server.url}/api/upload/", timeout=5).json() == []

    thumbs.unlink()
    thumbs.mkdir()
    assert upload(server.url, PNG).status_code == 201  # the worker lives on
