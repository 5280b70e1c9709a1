"""The multi-node compose stack (issue 12, item 7): docker-compose.yml + docker-compose.scale.yml
built and run for real with podman — PostgreSQL, an S3 server (SeaweedFS), two backend nodes
with no shared image folder, one nginx over both. The official postgres and seaweedfs images
cannot be pulled here: the base-image parameters point at local stand-ins built by
`scripts/compose-env.sh setup` (scripts/standins/). When it runs: see the `podman` fixture.
"""

import io
import json
import re
import time
from collections.abc import Iterator

import pytest
import requests
from PIL import Image
from support.compose import FIRST_WORKER_PORT, HTTP_TIMEOUT, Stack, compose_up
from support.http import uploaded
from support.images import image_bytes

from imagehost.store.keys import thumbnail_key

pytestmark = pytest.mark.compose

PROJECT = "imagehost-scale"
FILES = ("docker-compose.yml", "docker-compose.scale.yml")
SERVICES = ("postgres", "s3", "backend", "backend-b", "nginx")
WORKERS = 2  # per node; node B's count is fixed at 2 in docker-compose.scale.yml
DOTENV = (
    f"WEB_SERVER_WORKERS={WORKERS}\n"
    "POSTGRES_PASSWORD=scaleTestPassw0rd\n"
    "S3_ACCESS_KEY_ID=scaleTestKey\n"
    "S3_SECRET_ACCESS_KEY=scaleTestSecret0123456789\n"
)
UPLOADS = 12  # round-robin over 4 workers: each node takes some


@pytest.fixture(scope="module")
def stack(tmp_path_factory, podman) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("compose-scale")
    with compose_up(root, podman, PROJECT, FILES, DOTENV, SERVICES, WORKERS) as s:
        yield s


@pytest.fixture(scope="module")
def images(stack) -> list[dict]:
    """UPLOADS images uploaded through nginx."""
    return [
        uploaded(stack.url, image_bytes("PNG", seed=100 + i), f"scale-{i}.png")
        for i in range(UPLOADS)
    ]


def on_node(stack: Stack, service: str, path: str) -> tuple[int, str]:
    """GET a path from the first worker of a node, inside its container (no port is published)."""
    script = (
        "import sys, urllib.request, urllib.error\n"
        f"url = 'http://127.0.0.1:{FIRST_WORKER_PORT}' + sys.argv[1]\n"
        "try:\n"
        "    r = urllib.request.urlopen(url, timeout=10)\n"
        "except urllib.error.HTTPError as e:\n"
        "    r = e\n"
        "print(r.status)\n"
        "print(r.read().decode())\n"
    )
    status, _, body = stack.exec(service, "python3", "-c", script, path).partition("\n")
    return int(status), body


def in_bucket(stack: Stack, key: str) -> int:
    """The status of an anonymous GET of `key` from the S3 server, as nginx sees it."""
    out = stack.exec(
        "nginx",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"http://s3:8333/images/{key}",
    )
    return int(out)


def catalog(stack: Stack, sql: str) -> list[str]:
    out = stack.exec("postgres", "psql", "-U", "imagehost", "-d", "imagehost", "-tAc", sql)
    return out.split()


def test_uploads_are_spread_over_both_nodes_and_stored_in_the_bucket(stack, images):
    logs = {"backend": stack.folder / "logs", "backend-b": stack.folder / "logs-b"}
    for service, folder in logs.items():
        text = (folder / "app.log").read_text()
        assert "POST /api/upload/" in text, f"{service} took no upload"
    names = set(catalog(stack, "SELECT filename FROM images"))
    for i, image in enumerate(images):
        assert image["filename"] in names
        served = requests.get(image["url"], timeout=HTTP_TIMEOUT)
        assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
        sent = image_bytes("PNG", seed=100 + i)
        with Image.open(io.BytesIO(served.content)) as got, Image.open(io.BytesIO(sent)) as im:
            assert got.tobytes() == im.convert(got.mode).tobytes()
        assert in_bucket(stack, image["filename"]) == 200
        assert in_bucket(stack, thumbnail_key(image["filename"])) == 200
    # no node keeps images on a disk of its own
    assert not (stack.folder / "images").exists()
    for service in ("backend", "backend-b"):
        stack.exec(service, "test", "!", "-e", "/srv/images/" + images[0]["filename"])


def test_each_node_answers_for_every_image(stack, images):
    for service in ("backend", "backend-b"):
        status, body = on_node(stack, service, "/api/upload/?limit=100")
        assert status == 200
        listed = {item["filename"] for item in json.loads(body)}
        assert {image["filename"] for image in images} <= listed
        status, body = on_node(stack, service, f"/api/upload/{images[0]['filename']}")
        assert status == 200 and json.loads(body)["original_name"] == "scale-0.png"


def test_the_nodes_share_one_admin_key(stack):
    """Without ADMIN_KEY the first node generates it and keeps it in the catalog; both use it."""
    keys = set()
    for folder in ("logs", "logs-b"):
        text = (stack.folder / folder / "app.log").read_text()
        keys.update(re.findall(r"upload\.html#key=(\S+)", text))
    assert len(keys) == 1, keys
    (key,) = keys
    listing = requests.get(
        f"{stack.url}/api/upload/", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert listing.status_code == 200


def test_a_delete_reaches_the_catalog_and_the_bucket(stack):
    image = uploaded(stack.url, image_bytes("PNG", seed=7), "gone.png")  # never fetched: uncached
    thumb = thumbnail_key(image["filename"])
    gone = requests.delete(
        image["delete_url"], headers={"X-Delete-Token": image["delete_token"]}, timeout=30
    )
    assert gone.status_code == 204, gone.text
    assert image["filename"] not in catalog(stack, "SELECT filename FROM images")
    for service in ("backend", "backend-b"):
        assert on_node(stack, service, f"/api/upload/{image['filename']}")[0] == 404
    # the objects go in the delete's own request, or within seconds by the sweeper
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and {
        in_bucket(stack, k) for k in (image["filename"], thumb)
    } != {404}:
        time.sleep(1)
    assert in_bucket(stack, image["filename"]) == 404 and in_bucket(stack, thumb) == 404
    missing = requests.get(image["url"], timeout=HTTP_TIMEOUT)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_nginx_lists_both_nodes_workers(stack):
    conf = stack.exec("nginx", "cat", "/etc/imagehost/nginx.conf")
    servers = re.findall(r"^\s*server (\S+) max_fails=0;", conf, re.M)
    ports = [FIRST_WORKER_PORT + i for i in range(WORKERS)]
    assert servers == [f"backend:{p}" for p in ports] + [f"backend-b:{p}" for p in ports]


def test_down_leaves_nothing_behind_but_the_data(stack, images):
    stack.podman_compose("down", "-v")
    assert stack.ours("container") == []
    assert stack.ours("network") == []
    assert stack.ours("volume") == []
    for folder in ("postgres", "s3", "data", "data-b"):
        assert any((stack.folder / folder).iterdir()), f"{folder}/ is empty"
