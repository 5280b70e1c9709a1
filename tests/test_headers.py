"""Security headers come from one source (headers.py): `serve` and nginx (`up`) send the same
ones, name by name, for every kind of response — pages, images, thumbnails, API JSON, errors."""

import pytest
import requests
from support.http import upload
from support.images import image_bytes
from support.stack import start_stack, stop_stack

from imagehost import headers

SECURITY = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "X-Frame-Options",
)
MISSING_IMAGE = "/images/AbCdEfGhIjKlMnOp.png"

# kind -> (path, expected status, the headers both fronts must send)
KINDS = {
    "start page": ("/", 200, {**headers.PAGE, "Cache-Control": headers.PAGE_CACHE}),
    "upload page": ("/upload.html", 200, {**headers.PAGE, "Cache-Control": headers.PAGE_CACHE}),
    "script": ("/js/api.js", 200, {**headers.PAGE, "Cache-Control": headers.PAGE_CACHE}),
    "image": ("{url}", 200, {**headers.IMAGE, "Cache-Control": headers.IMAGE_CACHE}),
    "thumbnail": ("{thumbnail_url}", 200, {**headers.IMAGE, "Cache-Control": headers.IMAGE_CACHE}),
    "API list": ("/api/upload/", 200, headers.API),
    "API metadata": ("/api/upload/{filename}", 200, headers.API),
    "API config": ("/api/config", 200, headers.API),
    "API error": ("/api/upload/AbCdEfGhIjKlMnOp.png", 404, headers.API),
    "missing image": (MISSING_IMAGE, 404, headers.API),
}


@pytest.fixture(scope="module")
def fronts(tmp_path_factory):
    """One `serve` and one `up`, each with one stored image: (running, upload answer)."""
    started = {}
    try:
        for command in ("serve", "up"):
            running = start_stack(command, tmp_path_factory.mktemp(command))
            answer = upload(running.url, image_bytes("PNG"))
            assert answer.status_code == 201, answer.text
            started[command] = (running, answer.json())
        yield started
    finally:
        for running, _ in started.values():
            stop_stack(running)


def _security(resp: requests.Response) -> dict[str, str]:
    return {name: resp.headers[name] for name in SECURITY if name in resp.headers}


@pytest.mark.nginx
@pytest.mark.parametrize("kind", list(KINDS))
def test_serve_and_nginx_send_the_same_security_headers(fronts, kind):
    path, status, expected = KINDS[kind]
    seen = {}
    for command, (running, stored) in fronts.items():
        target = path.format(**stored)
        resp = requests.get(
            target if target.startswith("http") else running.url + target, timeout=10
        )
        assert resp.status_code == status, (command, resp.status_code, resp.text[:200])
        for name, value in expected.items():
            assert resp.headers.get(name) == value, (command, name, resp.headers.get(name))
        # each header sent once: nginx adding one the worker sent already would double it
        for name in SECURITY:
            assert len(resp.raw.headers.getlist(name)) <= 1, (command, name)
        seen[command] = _security(resp)
    assert seen["serve"] == seen["up"]


def test_api_json_is_never_sniffed():
    assert headers.API["X-Content-Type-Options"] == "nosniff"
    assert headers.PAGE["Referrer-Policy"] == "no-referrer"  # stricter of the two that drifted
