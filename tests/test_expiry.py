"""Expiring uploads (issue 14, item 1): the lifetime an upload asks for, within MAX_EXPIRY; gone
for every reader from its expiry on; its files removed by the one sweeper of the installation
within a round; nginx stops serving it within the bound the README states."""

import datetime
import threading
import time

import pytest
import requests
from support.checks import stored_keys
from support.http import assert_error, listing, upload, uploaded
from support.images import image_bytes
from support.rows import image_row
from support.stack import start_stack, stop_stack, wait_for
from test_sweeper import KINDS, settings_of

from imagehost import expiry, sweeper
from imagehost.catalog import open_catalog
from imagehost.catalog.base import timestamp
from imagehost.store import LocalStore
from imagehost.store.keys import thumbnail_key

SHORT_S = 2  # the lifetime of the images that expire during a test
# From an image's expiry, its files are gone within one sweeper round; slack for a busy CI.
SWEPT_WITHIN_S = sweeper.SWEEP_INTERVAL_S + 10


def when(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def wait_until_expired(image: dict) -> None:
    left = (when(image["expires_at"]) - datetime.datetime.now(datetime.UTC)).total_seconds()
    time.sleep(max(0.0, left) + 0.2)


# --- the lifetime of a request ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, seconds",
    [("3600", 3600), ("PT1H", 3600), ("P1D", 86400), ("P1W", 7 * 86400), ("P2DT3H", 183600)],
)
def test_lifetimes_in_seconds_or_iso_8601(raw, seconds):
    assert expiry.parse(raw) == seconds
    assert expiry.parse("never") is None and expiry.parse(" NEVER ") is None


def test_a_month_is_a_calendar_month():
    january = datetime.datetime(2027, 1, 15, tzinfo=datetime.UTC)
    february = datetime.datetime(2027, 2, 15, tzinfo=datetime.UTC)
    assert expiry.parse("P1M", january) == 31 * 86400
    assert expiry.parse("P1M", february) == 28 * 86400


@pytest.mark.parametrize("raw", ["", "0", "-5", "1.5", "soon", "PT", "P1000Y", "1" * 30, "PT-1H"])
def test_what_is_not_a_lifetime(raw):
    with pytest.raises(ValueError, match="must be"):
        expiry.parse(raw)


def test_an_upload_keeps_the_lifetime_it_asks_for(server):
    before = datetime.datetime.now(datetime.UTC)
    asked = uploaded(server.url, image_bytes(seed=1), "day.png", fields={"expires_in": "P1D"})
    raw = requests.post(
        f"{server.url}/api/upload/",
        data=image_bytes(seed=2),
        headers={"Content-Type": "image/png", "X-Expires-In": "3600"},
        timeout=10,
    )
    assert raw.status_code == 201, raw.text
    kept = uploaded(server.url, image_bytes(seed=3), "kept.png")
    day = when(asked["expires_at"]) - before
    hour = when(raw.json()["expires_at"]) - before
    assert 86400 <= day.total_seconds() < 86400 + 30
    assert 3600 <= hour.total_seconds() < 3600 + 30
    assert kept["expires_at"] is None
    meta = requests.get(asked["delete_url"], timeout=10).json()
    assert meta["expires_at"] == asked["expires_at"]  # the API shows it, as the list does
    assert {i["filename"]: i["expires_at"] for i in listing(server.url).json()} == {
        asked["filename"]: asked["expires_at"],
        raw.json()["filename"]: raw.json()["expires_at"],
        kept["filename"]: None,
    }


def test_over_the_maximum_is_refused_and_nothing_is_stored(serve_factory):
    server = serve_factory(MAX_EXPIRY="PT1H")
    config = requests.get(f"{server.url}/api/config", timeout=10).json()
    assert (config["default_expiry"], config["max_expiry"]) == (3600, 3600)
    for value in ("3601", "P1D", "never"):
        refused = upload(server.url, image_bytes(seed=4), fields={"expires_in": value})
        body = assert_error(refused, 400, "invalid_expiry")
        assert "at most 3600 s (1 h)" in body["detail"] and "MAX_EXPIRY" in body["detail"]
    header = requests.post(
        f"{server.url}/api/upload/",
        data=image_bytes(seed=5),
        headers={"Content-Type": "image/png", "X-Expires-In": "P1W"},
        timeout=10,
    )
    assert_error(header, 400, "invalid_expiry")
    bad = upload(server.url, image_bytes(seed=6), fields={"expires_in": "tomorrow"})
    assert "ISO 8601" in assert_error(bad, 400, "invalid_expiry")["detail"]
    assert listing(server.url).json() == [] and stored_keys(server) == set()
    # no lifetime asked: the default (here the maximum); the form field wins over the header
    # (which is checked on its own first, before the body is read)
    default = uploaded(server.url, image_bytes(seed=7), "default.png")
    lived = when(default["expires_at"]) - when(default["created_at"])
    assert 3599 <= lived.total_seconds() <= 3601
    both = uploaded(
        server.url,
        image_bytes(seed=8),
        "both.png",
        fields={"expires_in": "60"},
        headers={"X-Expires-In": "120"},
    )
    assert (when(both["expires_at"]) - when(both["created_at"])).total_seconds() <= 61


# --- gone at once, swept within a round ------------------------------------------------------


def test_an_expired_image_is_gone_at_once_and_its_files_within_a_round(server):
    short = uploaded(server.url, image_bytes(seed=10), "short.png", fields={"expires_in": "2"})
    kept = uploaded(server.url, image_bytes(seed=11), "kept.png")
    proofs = [{"filename": i["filename"], "delete_token": i["delete_token"]} for i in (short, kept)]
    album = requests.post(f"{server.url}/api/albums", json={"images": proofs}, timeout=10).json()
    before = listing(server.url)
    assert before.headers["X-Total-Count"] == "2"
    share = requests.get(short["share_url"], timeout=10)
    assert share.status_code == 200
    max_age = int(share.headers["Cache-Control"].split("max-age=")[1])
    assert max_age <= SHORT_S  # no cache may keep the page past the expiry

    wait_until_expired(short)
    assert_error(requests.get(short["delete_url"], timeout=10), 404, "not_found")
    after = listing(server.url)
    assert [i["filename"] for i in after.json()] == [kept["filename"]]
    assert after.headers["X-Total-Count"] == "1"
    assert after.headers["ETag"] != before.headers["ETag"]
    assert requests.get(short["share_url"], timeout=10).status_code == 404
    in_album = requests.get(album["api_url"], timeout=10).json()
    assert [i["filename"] for i in in_album["images"]] == [kept["filename"]]
    assert short["url"] not in requests.get(album["url"], timeout=10).text
    oembed = requests.get(
        f"{server.url}/api/oembed", params={"url": short["share_url"]}, timeout=10
    )
    assert_error(oembed, 404, "not_found")
    owner = requests.delete(
        short["delete_url"], headers={"X-Delete-Token": short["delete_token"]}, timeout=10
    )
    assert_error(owner, 404, "not_found")  # nothing to delete: it is gone already

    gone = {short["filename"], thumbnail_key(short["filename"])}
    wait_for(lambda: not (gone & stored_keys(server)), SWEPT_WITHIN_S, "the sweeper")
    assert {kept["filename"], thumbnail_key(kept["filename"])} <= stored_keys(server)
    assert "removed 1 expired images" in (server.log_dir / "app.log").read_text()
    checked = server.cli("check")
    assert checked.returncode == 0 and "clean" in checked.stdout, checked.stdout
    assert requests.get(kept["url"], timeout=10).status_code == 200


@pytest.mark.parametrize("kind", KINDS)
def test_two_sweepers_remove_each_expired_image_once(kind, tmp_path, request):
    """Two sweepers on one catalog (as two workers or two nodes have), racing for many rounds:
    every expired image is removed by exactly one of them, the others are left alone."""
    settings = settings_of(kind, tmp_path, request)
    catalogs = [open_catalog(settings), open_catalog(settings)]
    store = LocalStore(settings.images_dir)
    past = timestamp(datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1))
    future = timestamp(datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
    expired = [image_row(n, "expired", expires_at=past) for n in range(60)]
    later = [image_row(n, "later", expires_at=future) for n in range(5)]
    catalogs[0].add_many(expired + later + [image_row(0, "kept")])
    for row in expired + later:
        for path in (store.image_path(row.filename), store.thumbnail_path(row.filename)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
    removed: list[list[str]] = [[], []]
    failures: list[BaseException] = []

    start = threading.Barrier(2)

    def run(n: int) -> None:
        one = sweeper.Sweeper(catalogs[n], store, limit=7)  # several rounds each
        try:
            start.wait(10)
            for _ in range(2000):  # until a round that held the lock found nothing left
                done = one.sweep_once()
                if done == []:
                    return
                removed[n] += done or []
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures, failures
        both = removed[0] + removed[1]
        assert sorted(both) == sorted(r.filename for r in expired)  # each once, no other
        assert not any(store.image_path(r.filename).exists() for r in expired)
        assert all(store.image_path(r.filename).exists() for r in later)
        assert catalogs[1].counters().total == len(later) + 1
        assert catalogs[1].pending_deletes(0, 100) == []
    finally:
        for catalog in catalogs:
            catalog.close()


@pytest.mark.nginx
def test_nginx_stops_serving_an_expired_file_within_a_round(tmp_path):
    running = start_stack("up", tmp_path / "up")
    try:
        short = uploaded(running.url, image_bytes(seed=20), "short.png", fields={"expires_in": "2"})
        assert requests.get(short["url"], timeout=10).status_code == 200
        wait_until_expired(short)
        expired_at = time.monotonic()
        assert_error(requests.get(short["delete_url"], timeout=10), 404, "not_found")
        wait_for(
            lambda: requests.get(short["url"], timeout=10).status_code == 404,
            SWEPT_WITHIN_S,
            "nginx to stop serving the expired file",
        )
        print(f"nginx served the expired file {time.monotonic() - expired_at:.1f} s longer")
        thumb = requests.get(short["thumbnail_url"], timeout=10)
        assert_error(thumb, 404, "not_found")
    finally:
        stop_stack(running)
