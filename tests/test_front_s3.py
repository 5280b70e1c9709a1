"""nginx in STORAGE=s3: images proxied from a real bucket (SeaweedFS) and cached, with the same
types, headers and JSON refusals as from local files; nothing of the client reaches the bucket."""

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from conftest import need
from support.http import assert_error
from support.images import image_bytes
from support.seaweed import SEAWEED_MISSING, Seaweed, seaweed_present, start_seaweed
from support.stack import accepts, base_env, free_port_range, wait_for

from imagehost import config, front, headers

pytestmark = pytest.mark.nginx

IMAGE = "AbCdEfGhIjKlMnOp.jpg"
THUMB = "thumbs/AbCdEfGhIjKlMnOp.webp"


@dataclass
class Front:
    url: str
    bucket: Seaweed
    s3: object  # a boto3 client with the owner's keys

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket.bucket, Key=key, Body=data, ContentType=content_type)


@pytest.fixture(scope="module")
def s3_front(tmp_path_factory) -> Iterator[Front]:
    """The rendered nginx (STORAGE=s3, no workers needed for images) before a real bucket."""
    need("SeaweedFS", seaweed_present(), SEAWEED_MISSING)
    root = tmp_path_factory.mktemp("s3front")
    bucket = start_seaweed(root / "seaweed")
    env = base_env(
        root,
        PORT=str(free_port_range(1)),
        WEB_SERVER_START_PORT=str(free_port_range(2)),
        **bucket.settings(),
    )
    settings = config.load(env, env_file=None)
    conf = front.prepare_runtime(settings)
    proc = subprocess.Popen(front.nginx_argv(front.find_nginx(), conf))
    try:
        wait_for(lambda: accepts(settings.port), what="nginx")
        yield Front(f"http://127.0.0.1:{settings.port}", bucket, bucket.boto3_client())
    finally:
        proc.terminate()
        proc.wait(10)
        bucket.stop()


def test_image_comes_from_the_bucket_typed_by_its_extension(s3_front):
    data = image_bytes("JPEG")
    s3_front.put(IMAGE, data, "text/html")  # whatever the bucket says, the name decides
    s3_front.put(THUMB, image_bytes("WEBP"), "application/octet-stream")
    for _ in range(2):  # a miss, then a hit from nginx's cache
        resp = requests.get(f"{s3_front.url}/images/{IMAGE}", timeout=10)
        assert resp.status_code == 200 and resp.content == data
        assert resp.raw.headers.getlist("Content-Type") == ["image/jpeg"]
        for name, value in {**headers.IMAGE, "Cache-Control": headers.IMAGE_CACHE}.items():
            assert resp.raw.headers.getlist(name) == [value], name
        assert not [h for h in resp.headers if h.lower().startswith("x-amz")]
    thumb = requests.get(f"{s3_front.url}/images/{THUMB}", timeout=10)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
    head = requests.head(f"{s3_front.url}/images/{IMAGE}", timeout=10)
    assert head.status_code == 200 and head.content == b""


def test_client_headers_do_not_reach_the_bucket(s3_front):
    data = image_bytes("PNG", seed=3)
    s3_front.put("QrStUvWxYzAbCdEf.png", data, "image/png")
    # A signature the bucket cannot check would be refused (403) if it were passed on.
    resp = requests.get(
        f"{s3_front.url}/images/QrStUvWxYzAbCdEf.png",
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=x/y, Signature=z",
            "Range": "bytes=0-9",
        },
        timeout=10,
    )
    assert resp.status_code == 200 and resp.content == data  # the whole image, no 206


def test_missing_image_and_other_methods_are_our_json(s3_front):
    assert_error(
        requests.get(f"{s3_front.url}/images/NoSuchImage0000.png", timeout=10), 404, "not_found"
    )
    s3_front.put("KeepMeAroundPlz0.png", image_bytes("PNG", seed=4), "image/png")
    for method in ("POST", "PUT", "DELETE"):
        resp = requests.request(method, f"{s3_front.url}/images/KeepMeAroundPlz0.png", timeout=10)
        assert_error(resp, 405, "method_not_allowed")
        assert resp.headers["Allow"] == "GET, HEAD"
    s3_front.s3.head_object(
        Bucket=s3_front.bucket.bucket, Key="KeepMeAroundPlz0.png"
    )  # still there


def test_bucket_down_serves_the_cache_and_answers_503_for_the_rest(s3_front):
    seen, unseen = image_bytes("GIF", seed=5), image_bytes("GIF", seed=6)
    s3_front.put("SeenBeforeDown00.gif", seen, "image/gif")
    s3_front.put("NeverSeenYet0000.gif", unseen, "image/gif")
    assert requests.get(f"{s3_front.url}/images/SeenBeforeDown00.gif", timeout=10).content == seen
    s3_front.bucket.stop()
    try:
        cached = requests.get(f"{s3_front.url}/images/SeenBeforeDown00.gif", timeout=10)
        assert cached.status_code == 200 and cached.content == seen
        down = requests.get(f"{s3_front.url}/images/NeverSeenYet0000.gif", timeout=10)
        assert_error(down, 503, "unavailable")
    finally:
        s3_front.bucket.start()
    back = requests.get(f"{s3_front.url}/images/NeverSeenYet0000.gif", timeout=10)
    assert back.status_code == 200 and back.content == unseen


def _render(tmp_path, **settings: str) -> str:
    env = base_env(tmp_path, PORT="8080", S3_ENDPOINT_URL="http://s3.example:9000", **settings)
    env.update(STORAGE="s3", S3_BUCKET="pics", S3_ACCESS_KEY_ID="k", S3_SECRET_ACCESS_KEY="s")
    return front.render(config.load(env, env_file=None))


def test_path_style_and_virtual_host_style(tmp_path):
    path_style = _render(tmp_path)
    assert "proxy_pass http://imagehost_bucket/pics/$imagehost_file;" in path_style
    assert "proxy_set_header Host s3.example:9000;" in path_style
    assert "server s3.example:9000;" in path_style
    virtual = _render(tmp_path, S3_PATH_STYLE="false")
    assert "proxy_pass http://imagehost_bucket/$imagehost_file;" in virtual
    assert "proxy_set_header Host pics.s3.example:9000;" in virtual
    assert "alias" not in virtual  # no local files in this mode


def test_backends_join_this_nodes_workers(tmp_path):
    text = _render(
        tmp_path,
        WEB_SERVER_START_PORT="8000",
        WEB_SERVER_WORKERS="2",
        BACKENDS="10.0.0.7:9000-9001",
    )
    upstream = text[text.index("upstream imagehost_workers {") :].split("}", 1)[0]
    servers = [
        line.split()[1] for line in upstream.splitlines() if line.strip().startswith("server")
    ]
    assert servers == ["127.0.0.1:8000", "127.0.0.1:8001", "10.0.0.7:9000", "10.0.0.7:9001"]
