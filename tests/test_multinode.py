"""Scaling out (issue 12): node A (`imagehost up`: nginx and two workers, BACKENDS = node B's
workers) and node B (`imagehost workers`, two workers) share one PostgreSQL database and one
bucket (a real SeaweedFS), each with its own DATA_DIR, and agree on everything an image is.

Which node answered a request through nginx is read from that node's app.log (`rid=` is the
request id nginx hands back). An independent S3 client (boto3) looks into the bucket.
"""

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests
from conftest import need
from support.http import UPLOAD_PATH, assert_error, listed, upload, uploaded
from support.images import image_bytes, pixels
from support.nodes import ADMIN_KEY, Nodes, start_nodes
from support.postgres import Cluster
from support.seaweed import SEAWEED_MISSING, Seaweed, seaweed_present, start_seaweed
from support.stack import accepts, base_env, free_port_range, terminate, wait_for, worker_pids

from imagehost import config, front, headers, maintenance
from imagehost.catalog.base import migrations
from imagehost.store.keys import thumbnail_key

pytestmark = [pytest.mark.multinode, pytest.mark.nginx, pytest.mark.postgres, pytest.mark.s3]


@pytest.fixture
def nodes(tmp_path, postgres, shared_bucket) -> Iterator[Nodes]:
    """Node B, then node A, on a new database and the session's (emptied) bucket."""
    running = start_nodes(tmp_path, postgres(), shared_bucket)
    yield running
    running.stop()


@pytest.fixture
def short_cache_front(nodes, tmp_path, monkeypatch) -> Iterator[str]:
    """A second nginx before the same bucket, rendered from the product's template as `up`
    renders it but with S3_CACHE_VALID=1s (its /api/ upstream, node B, is not used): its URL."""
    port = free_port_range(1)
    env = base_env(
        tmp_path / "short-cache",
        PORT=str(port),
        WEB_SERVER_START_PORT=nodes.b.env["WEB_SERVER_START_PORT"],
        **nodes.bucket.settings(),
    )
    monkeypatch.setattr(front, "S3_CACHE_VALID", "1s")  # read by render()
    conf = front.prepare_runtime(config.load(env, env_file=None))
    assert "proxy_cache_valid 200 1s;" in conf.read_text()
    proc = subprocess.Popen(front.nginx_argv(front.find_nginx(), conf))
    try:
        wait_for(lambda: accepts(port), 10, "the short-cache nginx")
        yield f"http://127.0.0.1:{port}"
    finally:
        terminate(proc, 10)


# --- helpers ---------------------------------------------------------------------------------


def node_of(nodes: Nodes, request_id: str) -> str:
    """ "a" or "b": the node whose worker logged the request (waits for the line)."""

    def find() -> str | None:
        for name, node in (("a", nodes.a), ("b", nodes.b)):
            log = node.log_dir / "app.log"
            text = log.read_text() if log.exists() else ""
            if re.search(rf"\brole=worker:\d+ .*\brid={re.escape(request_id)}\b", text):
                return name
        return None

    return wait_for(find, 10, f"request {request_id} in a node's app.log")


def upload_landing_on(nodes: Nodes, wanted: str, seed: int) -> tuple[dict, bytes]:
    """Upload through nginx until one lands on node `wanted`: (its image, its bytes). Bounded:
    nginx balances over all four workers, so a few tries reach either node."""
    for attempt in range(16):
        data = image_bytes("PNG", seed=seed * 100 + attempt)
        resp = upload(nodes.front, data, name=f"from-{wanted}.png")
        assert resp.status_code == 201, resp.text
        if node_of(nodes, resp.headers["X-Request-ID"]) == wanted:
            return resp.json(), data
    raise AssertionError(f"16 uploads through nginx, none reached node {wanted}")


def metadata(image: dict) -> dict:
    """What the API answers for an image: the upload's answer without what only it has."""
    return {k: v for k, v in image.items() if k not in ("delete_token", "delete_page_url")}


def all_listed(url: str) -> list[dict]:
    """Every image of the listing at `url`, following its Link pages."""
    found, next_url = [], f"{url}/api/upload/?limit=200"
    while next_url:
        resp = requests.get(next_url, timeout=30)
        assert resp.status_code == 200, resp.text
        found += resp.json()
        next_url = resp.headers.get("Link", "").split(";")[0].strip("<>") or None
    return found


def bucket_object(nodes: Nodes, key: str) -> dict:
    """boto3's get_object of `key`, its body read into "bytes"."""
    found = nodes.bucket.boto3_client().get_object(Bucket=nodes.bucket.bucket, Key=key)
    return {**found, "bytes": found["Body"].read()}


def keys_of(image: dict) -> set[str]:
    """The bucket keys of an image the API described: its original and its thumbnail."""
    return {image["filename"], thumbnail_key(image["filename"])}


def error_code(resp: requests.Response) -> str:
    """The `code` of one of our JSON refusals, or what else the body was."""
    try:
        return resp.json()["code"]
    except (ValueError, KeyError, TypeError):
        return f"not our JSON: {resp.text[:100]!r}"


# --- 2. an upload on one node is the other node's image too ----------------------------------


def test_an_upload_on_node_a_is_listed_by_node_b_and_served_from_the_bucket(nodes):
    """One catalog, one bucket: what one node stored the other lists and describes alike, and
    nginx serves the bucket's bytes, which carry their own Content-Type and Cache-Control."""
    image, data = upload_landing_on(nodes, "a", seed=1)
    b = nodes.worker_url(nodes.b)
    assert metadata(image) in listed(b)
    meta = requests.get(f"{b}/api/upload/{image['filename']}", timeout=10)
    assert meta.status_code == 200 and meta.json() == metadata(image)
    assert image["url"] == f"{nodes.front}/images/{image['filename']}"  # PUBLIC_URL: nginx

    assert nodes.objects() >= keys_of(image)
    original = bucket_object(nodes, image["filename"])
    assert original["ContentType"] == "image/png"
    assert original["CacheControl"] == headers.IMAGE_CACHE
    thumb = bucket_object(nodes, thumbnail_key(image["filename"]))
    assert thumb["ContentType"] == "image/webp"  # a PNG's
    assert thumb["CacheControl"] == headers.IMAGE_CACHE

    for _ in range(2):  # a cache miss (from the bucket), then a hit (nginx's copy)
        served = requests.get(image["url"], timeout=10)
        assert served.status_code == 200 and served.content == original["bytes"]
        assert served.headers["Content-Type"] == "image/png"
        assert served.headers["Cache-Control"] == headers.IMAGE_CACHE
    assert pixels(served.content) == pixels(data)
    served_thumb = requests.get(image["thumbnail_url"], timeout=10)
    assert served_thumb.status_code == 200 and served_thumb.content == thumb["bytes"]
    # node B streams the same bytes itself, from the bucket (as `serve` does)
    assert requests.get(f"{b}/images/{image['filename']}", timeout=10).content == served.content

    # and the other way round: what node B stored, node A answers
    other, _ = upload_landing_on(nodes, "b", seed=2)
    a = nodes.worker_url(nodes.a)
    assert requests.get(f"{a}/api/upload/{other['filename']}", timeout=10).json() == metadata(other)
    assert metadata(other) in listed(a) and metadata(image) in listed(nodes.front)


# --- 3. a delete on the other node ------------------------------------------------------------


def test_a_delete_on_node_b_with_node_a_s_token_removes_the_image_everywhere(
    nodes, short_cache_front
):
    """Both objects leave the bucket at once. nginx answers 404 at once for an image it had not
    cached (a miss asks the bucket, anonymously, as after the cache time); one it had cached it
    serves until front.S3_CACHE_VALID has passed (the README says so) — shown with a second
    nginx rendered from the same template with a 1 s validity, not by waiting 60 s."""
    cached, _ = upload_landing_on(nodes, "a", seed=3)
    never_fetched, _ = upload_landing_on(nodes, "a", seed=4)
    for base in (nodes.front, short_cache_front):
        url = f"{base}/images/{cached['filename']}"
        assert requests.get(url, timeout=10).status_code == 200  # now in the cache
    fetched_at = time.monotonic()

    b = nodes.worker_url(nodes.b)
    for image in (cached, never_fetched):
        gone = requests.delete(
            f"{b}/api/upload/{image['filename']}",
            headers={"X-Delete-Token": image["delete_token"]},
            timeout=10,
        )
        assert gone.status_code == 204, gone.text
    deleted = keys_of(cached) | keys_of(never_fetched)
    objects = nodes.objects()  # (other uploads landed on node B on the way)
    assert not deleted & objects and objects == nodes.catalog_objects()
    client = nodes.bucket.boto3_client()
    for key in deleted:
        with pytest.raises(client.exceptions.ClientError):
            client.head_object(Bucket=nodes.bucket.bucket, Key=key)

    a = nodes.worker_url(nodes.a)
    for image in (cached, never_fetched):
        assert_error(
            requests.get(f"{a}/api/upload/{image['filename']}", timeout=10), 404, "not_found"
        )
        # the nodes themselves (no cache) answer 404 for the image and its thumbnail
        for url in (
            f"{b}/images/{image['filename']}",
            image["thumbnail_url"].replace(nodes.front, a),
        ):
            assert_error(requests.get(url, timeout=10), 404, "not_found")
    names = {image["filename"] for image in listed(nodes.front)}
    assert not names & {cached["filename"], never_fetched["filename"]}

    # through nginx: a miss asks the bucket and finds nothing …
    assert_error(requests.get(never_fetched["url"], timeout=10), 404, "not_found")
    assert_error(requests.get(never_fetched["thumbnail_url"], timeout=10), 404, "not_found")
    # … a cached copy is still served (for up to S3_CACHE_VALID = 60 s) …
    still = requests.get(cached["url"], timeout=10)
    assert still.status_code == 200 and time.monotonic() - fetched_at < 60

    # … and once its validity has passed nginx asks the bucket again and answers 404
    # (nginx counts whole seconds: "1s" ends 1 to 2 s after the fetch)
    def expired() -> list[requests.Response]:  # (a 404 Response is false: in a list)
        resp = requests.get(f"{short_cache_front}/images/{cached['filename']}", timeout=10)
        return [resp] if resp.status_code != 200 else []

    assert_error(wait_for(expired, 5, "the cached copy to expire")[0], 404, "not_found")
    assert time.monotonic() - fetched_at > 1


# --- 4. many uploads while node A's workers are killed ----------------------------------------

UPLOADS = 500
CLIENTS = 16
KILL_AFTER = 150  # acknowledged uploads before node A's workers are SIGKILLed


def test_uploads_survive_killed_workers_on_node_a(nodes):
    """Every acknowledged upload is listed and served pixel-identical; after `imagehost check`
    the bucket holds exactly the catalog's objects (originals and thumbnails)."""
    sources = {i: image_bytes("PNG", seed=i) for i in range(UPLOADS)}
    acked: dict[int, dict] = {}
    refused: dict[int, tuple[int, str]] = {}  # upload → (status, error code or exception)
    lock = threading.Lock()
    enough = threading.Event()
    local = threading.local()  # one keep-alive session per client thread
    sessions: list[requests.Session] = []

    def one(i: int) -> None:
        if not hasattr(local, "http"):
            local.http = requests.Session()
            with lock:
                sessions.append(local.http)
        try:
            resp = local.http.post(
                f"{nodes.front}{UPLOAD_PATH}",
                files={"file": (f"load-{i}.png", sources[i], "image/png")},
                timeout=30,
            )
        except requests.RequestException as exc:
            with lock:
                refused[i] = (0, type(exc).__name__)
            return
        with lock:
            if resp.status_code == 201:
                acked[i] = resp.json()
                if len(acked) >= KILL_AFTER:
                    enough.set()
            else:
                refused[i] = (resp.status_code, error_code(resp))

    victims = worker_pids(nodes.a)
    assert len(victims) == 2
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(one, i) for i in range(UPLOADS)]
        assert enough.wait(60), f"only {len(acked)} uploads acknowledged in 60 s: {refused}"
        for pid in victims.values():
            os.kill(pid, signal.SIGKILL)
        for future in futures:
            future.result(timeout=120)
    took = time.monotonic() - started
    for session in sessions:
        session.close()
    assert len(acked) + len(refused) == UPLOADS
    # Only what was in flight on the killed workers may fail: nginx's 502 (a POST is never
    # passed to a second worker), always in our JSON.
    assert len(refused) <= CLIENTS, refused
    assert {answer for answer in refused.values()} <= {(502, "bad_gateway")}, refused
    # the supervisor restarted both
    wait_for(
        lambda: (
            len(worker_pids(nodes.a)) == 2
            and not set(worker_pids(nodes.a).values()) & set(victims.values())
        ),
        what="node A's workers restarted",
    )

    names = [image["filename"] for image in all_listed(nodes.front)]
    acked_names = {image["filename"] for image in acked.values()}
    assert len(names) == len(set(names)) and acked_names <= set(names)
    # listed without a 201: a row committed just before its worker died
    assert len(set(names) - acked_names) <= len(refused)
    with ThreadPoolExecutor(CLIENTS) as pool:
        fetched = pool.map(lambda image: requests.get(image["url"], timeout=30), acked.values())
        served = dict(zip(acked, fetched, strict=True))
    for i, resp in served.items():
        assert resp.status_code == 200, (acked[i], resp.status_code)
        assert pixels(resp.content) == pixels(sources[i]), acked[i]

    result = nodes.a.cli("check", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    objects, rows = nodes.objects(), nodes.catalog_objects()
    assert rows <= objects  # no row without its original and thumbnail
    # Objects a killed upload wrote without its row are left by `check` for ORPHAN_GRACE_S (they
    # could be an upload in flight on another node); what check does after that hour, now:
    leftovers = objects - rows
    assert len(leftovers) <= 2 * len(refused), leftovers
    settings = config.load(nodes.a.env, env_file=None)
    maintenance.check(settings, orphan_grace_s=0)
    assert nodes.objects() == nodes.catalog_objects()
    assert acked_names <= nodes.objects()
    print(f"{UPLOADS} uploads in {took:.1f} s, {len(refused)} refused, {len(leftovers)} orphans")


# --- 5. both nodes start at once on an empty database -----------------------------------------


def test_nodes_starting_together_apply_the_migrations_once(tmp_path, postgres, shared_bucket):
    """Both nodes' start-up checks (`up` on A, `workers` on B) migrate the empty database at
    the same moment, then their four workers open it: none fails, and each migration is
    recorded, and run, once."""
    database_url = postgres()
    nodes = start_nodes(tmp_path, database_url, shared_bucket, together=True)
    try:
        with psycopg.connect(database_url) as conn:
            applied = conn.execute(
                "SELECT version, applied_at FROM schema_migrations ORDER BY version"
            ).fetchall()
            counters = conn.execute("SELECT count(*) FROM counters").fetchone()[0]
        assert [version for version, _ in applied] == [n for n, _ in migrations("postgres")]
        assert len({at for _, at in applied}) == 1  # in one transaction, by one process
        assert counters == 4  # total, version, epoch (001) and bytes (006), inserted once
        image = uploaded(nodes.worker_url(nodes.b), image_bytes("PNG", seed=5))
        assert metadata(image) in listed(nodes.worker_url(nodes.a))
        assert requests.get(image["url"], timeout=10).status_code == 200  # nginx on node A
    finally:
        nodes.stop()


# --- 6. the S3 server and PostgreSQL go away and come back ------------------------------------


@pytest.fixture
def own_nodes(tmp_path, postgres_cluster) -> Iterator[tuple[Nodes, Seaweed, Cluster]]:
    """The two nodes on a SeaweedFS and a PostgreSQL cluster of this test's own, to stop and
    start again: (nodes, the S3 server, the cluster)."""
    need("SeaweedFS", seaweed_present(), SEAWEED_MISSING)
    cluster = postgres_cluster()
    weed = start_seaweed(tmp_path / "seaweed")
    try:
        nodes = start_nodes(tmp_path, cluster.new_database(), weed)
        try:
            yield nodes, weed, cluster
        finally:
            nodes.stop()
    finally:
        weed.stop()


def test_outages_of_the_bucket_and_the_database_end_without_a_restart(own_nodes):
    """S3 down: uploads 503 in our JSON, cached images served, no row without its objects.
    PostgreSQL down: the API 503, images served. Both back: the same processes work again."""
    nodes, weed, cluster = own_nodes
    a, b = nodes.worker_url(nodes.a), nodes.worker_url(nodes.b)
    pids = {**worker_pids(nodes.a), **worker_pids(nodes.b)}
    seen = uploaded(nodes.front, image_bytes("PNG", seed=10), name="seen.png")
    unseen = uploaded(nodes.front, image_bytes("PNG", seed=11), name="unseen.png")
    kept = uploaded(nodes.front, image_bytes("PNG", seed=12), name="kept.png")
    seen_bytes = requests.get(seen["url"], timeout=10).content
    assert requests.get(seen["thumbnail_url"], timeout=10).status_code == 200
    before = nodes.objects()

    # The S3 server is down: uploads are refused in our JSON on every node, nginx serves what
    # it has cached and our 503 for the rest; the catalog gains no row.
    weed.stop()
    for url in (nodes.front, a, b):
        started = time.monotonic()
        assert_error(upload(url, image_bytes("PNG", seed=13)), 503, "unavailable")
        assert time.monotonic() - started < 15  # CONNECT_TIMEOUT_S and a few retries
    cached = requests.get(seen["url"], timeout=10)
    assert cached.status_code == 200 and cached.content == seen_bytes
    assert requests.get(seen["thumbnail_url"], timeout=10).status_code == 200
    assert_error(requests.get(unseen["url"], timeout=10), 503, "unavailable")
    assert_error(requests.get(f"{a}/api/health", timeout=10), 503, "unavailable")
    assert len(listed(b)) == 3  # the catalog still answers, with no new row
    weed.start()
    assert nodes.objects() == before == nodes.catalog_objects()

    # PostgreSQL is down: the API answers 503 (after the pool's timeout), images are served
    # from the bucket without it, even one nginx never fetched; a refused upload leaves nothing.
    cluster.stop()
    calls = {
        "upload through nginx": lambda: upload(nodes.front, image_bytes("PNG", seed=14)),
        "upload on node B": lambda: upload(b, image_bytes("PNG", seed=15)),
        "listing on node A": lambda: requests.get(f"{a}/api/upload/", timeout=30),
        "metadata on node B": lambda: requests.get(
            f"{b}/api/upload/{kept['filename']}", timeout=30
        ),
        "delete on node A": lambda: requests.delete(
            f"{a}/api/upload/{kept['filename']}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        ),
        "health on node B": lambda: requests.get(f"{b}/api/health", timeout=30),
    }
    started = time.monotonic()
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = dict(zip(calls, pool.map(lambda call: call(), calls.values()), strict=True))
    assert time.monotonic() - started < 25
    for what, resp in answers.items():
        assert resp.status_code == 503, (what, resp.status_code, resp.text)
        assert_error(resp, 503, "unavailable")
    first_fetch = requests.get(unseen["url"], timeout=10)
    assert first_fetch.status_code == 200 and first_fetch.headers["Content-Type"] == "image/png"
    assert requests.get(seen["url"], timeout=10).content == seen_bytes
    assert nodes.objects() == before
    cluster.start()

    # Both back: the same processes work again, on both nodes and through nginx.
    def upload_works() -> dict | None:
        resp = upload(nodes.front, image_bytes("PNG", seed=16), name="after.png")
        return resp.json() if resp.status_code == 201 else None

    after = wait_for(upload_works, 30, "an upload once PostgreSQL is back")
    assert metadata(after) in listed(b) and metadata(after) in listed(a)
    gone = requests.delete(
        f"{b}/api/upload/{kept['filename']}",
        headers={"X-Delete-Token": kept["delete_token"]},
        timeout=10,
    )
    assert gone.status_code == 204
    assert requests.get(f"{a}/api/health", timeout=10).status_code == 200
    assert {**worker_pids(nodes.a), **worker_pids(nodes.b)} == pids  # nothing was restarted
    assert nodes.objects() == nodes.catalog_objects()
    assert keys_of(after) <= nodes.objects() and not keys_of(kept) & nodes.objects()
