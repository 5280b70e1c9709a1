"""Abuse limits and the storage quota (issue 14, item 5): per-client upload rate and uploads at
once — by nginx in `up`, by the server itself in `serve` — answered 429 in our JSON with
Retry-After; the client is the peer unless TRUSTED_PROXIES vouches for X-Forwarded-For;
MAX_STORAGE_MB refuses with 507 before anything is stored; deletes are never limited."""

import http.client
import json
import socket
import time

import pytest
import requests
from support.checks import stored_keys
from support.http import MULTIPART_TYPE, assert_error, listed, multipart, upload
from support.images import image_bytes, noise_png
from support.stack import start_stack, stop_stack

from imagehost import limits

OTHER_ADDRESS = "127.0.0.2"  # a second client: Linux answers all of 127.0.0.0/8 on loopback


def upload_from(url: str, source: str, data: bytes, headers: dict | None = None) -> tuple:
    """(status, headers, JSON) of a multipart upload sent from the local address `source`."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    try:
        body = multipart([("file", "photo.png", data)], part_type="image/png")
        conn.request(
            "POST", "/api/upload/", body, {"Content-Type": MULTIPART_TYPE, **(headers or {})}
        )
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), json.loads(resp.read())
    finally:
        conn.close()


def test_rates_in_nginx_words():
    assert limits.parse_rate("60/minute") == limits.Rate(60, "minute")
    assert limits.parse_rate("2/s").nginx == "2r/s" and limits.parse_rate("off") is None
    assert limits.parse_rate("6/minute").retry_after_s == 10
    for bad in ("fast", "10/hour", "0/minute", "1.5/second"):
        with pytest.raises(ValueError):
            limits.parse_rate(bad)


def assert_one_client_is_limited_and_another_is_not(url: str, admin_key: str) -> None:
    """Burst 2 at 6/minute: three uploads pass, the fourth is refused with Retry-After; a
    second address still uploads; the admin still deletes what the limited client made."""
    made = []
    for n in range(3):
        status, _, body = upload_from(url, "127.0.0.1", image_bytes(seed=n))
        assert status == 201, body
        made.append(body)
    status, headers, body = upload_from(url, "127.0.0.1", image_bytes(seed=9))
    assert status == 429 and body["code"] == "rate_limited", body
    assert int(headers["Retry-After"]) >= 1
    assert set(body) == {"detail", "code"}
    other, _, body = upload_from(url, OTHER_ADDRESS, image_bytes(seed=10))
    assert other == 201, body
    assert len(listed(url)) == 4  # the refused upload left nothing
    for image in made:
        gone = requests.delete(
            image["delete_url"], headers={"Authorization": f"Bearer {admin_key}"}, timeout=10
        )
        assert gone.status_code == 204
    assert len(listed(url)) == 1


LIMITED = {"UPLOAD_RATE": "6/minute", "UPLOAD_BURST": "2"}


def test_serve_limits_one_client_and_not_another(serve_factory):
    server = serve_factory(**LIMITED)
    assert_one_client_is_limited_and_another_is_not(server.url, server.admin_key)


@pytest.mark.nginx
def test_nginx_limits_one_client_and_not_another(tmp_path):
    running = start_stack("up", tmp_path / "up", **LIMITED)
    try:
        assert_one_client_is_limited_and_another_is_not(running.url, running.admin_key)
    finally:
        stop_stack(running)


def test_forwarded_for_counts_only_from_a_trusted_proxy(serve_factory):
    server = serve_factory(**LIMITED, TRUSTED_PROXIES="127.0.0.1")
    # through the trusted proxy (127.0.0.1): each forwarded client has its own bucket
    for client in ("203.0.113.1", "203.0.113.2"):
        for _ in range(3):
            forwarded = {"X-Forwarded-For": f"198.51.100.9, {client}"}  # the proxy appended it
            status, _, body = upload_from(server.url, "127.0.0.1", image_bytes(seed=1), forwarded)
            assert status == 201, body
    status, _, body = upload_from(
        server.url, "127.0.0.1", image_bytes(seed=1), {"X-Forwarded-For": "203.0.113.1"}
    )
    assert status == 429, body
    # from an untrusted peer the header is the client's own claim: ignored
    for n in range(3):
        spoofed = {"X-Forwarded-For": f"192.0.2.{n}"}
        status, _, body = upload_from(server.url, OTHER_ADDRESS, image_bytes(seed=2), spoofed)
        assert status == 201, body
    status, _, body = upload_from(
        server.url, OTHER_ADDRESS, image_bytes(seed=2), {"X-Forwarded-For": "192.0.2.99"}
    )
    assert status == 429 and body["code"] == "rate_limited", body


def test_uploads_at_once_are_limited_per_client(serve_factory):
    server = serve_factory(UPLOAD_CONNECTIONS="1")
    data = multipart([("file", "slow.png", image_bytes(seed=3))], part_type="image/png")
    host, port = "127.0.0.1", server.port
    slow = socket.create_connection((host, port), timeout=30)
    try:
        head = (
            f"POST /api/upload/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: {MULTIPART_TYPE}\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        slow.sendall(head + data[:100])  # the upload is in progress, its body still coming
        time.sleep(0.5)
        refused = upload(server.url, image_bytes(seed=4))
        body = assert_error(refused, 429, "too_many_uploads")
        assert "At most 1 uploads at once" in body["detail"] and refused.headers["Retry-After"]
        status, _, answer = upload_from(server.url, OTHER_ADDRESS, image_bytes(seed=5))
        assert status == 201, answer  # another address is not affected
        slow.sendall(data[100:])
        assert slow.recv(64).startswith(b"HTTP/1.1 201")
    finally:
        slow.close()
    assert upload(server.url, image_bytes(seed=6)).status_code == 201  # the slot is free again


# --- the storage quota -----------------------------------------------------------------------


def test_quota_refuses_before_storing_and_a_delete_makes_room(serve_factory):
    server = serve_factory(MAX_STORAGE_MB="1")
    # ~270 KB each, all different (a shared file counts once: test_dedupe): three fit in 1 MiB
    made = [upload(server.url, noise_png((300, 300))) for _ in range(3)]
    assert [r.status_code for r in made] == [201, 201, 201]
    before = stored_keys(server)
    image = noise_png((300, 300))
    refused = upload(server.url, image)
    body = assert_error(refused, 507, "storage_quota")
    assert "MAX_STORAGE_MB" in body["detail"] and "nothing was stored" in body["detail"]
    assert stored_keys(server) == before and len(listed(server.url)) == 3
    # the admin can still delete; then there is room again
    first = made[0].json()
    gone = requests.delete(
        first["delete_url"], headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=10
    )
    assert gone.status_code == 204
    assert upload(server.url, image).status_code == 201
