"""Prometheus metrics (issue 14, item 4): GET /api/metrics with the admin key or METRICS_TOKEN,
summed over a node's workers, changing as expected after an upload, a refusal and a delete,
accepted by `promtool check metrics`, with no series twice."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from conftest import need
from prometheus_client.parser import text_string_to_metric_families
from support.http import assert_error, upload, uploaded
from support.images import image_bytes
from support.stack import start_stack, stop_stack

TOKEN = "scraper-token-0123456789"
# .ci/run unpacks Debian's prometheus package here (promtool without the daemon)
PROMTOOL = os.environ.get("IMAGEHOST_PROMTOOL", "/var/tmp/imagehost-tools/root/usr/bin/promtool")


def scrape(url: str, token: str = TOKEN) -> requests.Response:
    return requests.get(
        f"{url}/api/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def samples(text: str) -> dict[str, float]:
    """{"name{labels}": value} of every sample, read by prometheus_client's own parser;
    asserts none appears twice."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            key = f"{sample.name}{{{labels}}}"
            assert key not in out, f"duplicated series: {key}"
            out[key] = sample.value
    return out


def value(seen: dict[str, float], name: str, **labels: str) -> float:
    """The sample `name` whose labels include `labels` (0 when there is none)."""
    for key, number in seen.items():
        metric, _, rest = key.partition("{")
        if metric == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return number
    return 0.0


def promtool_check(text: str) -> None:
    found = Path(PROMTOOL).is_file() or shutil.which("promtool")
    need(
        "promtool",
        bool(found),
        f"promtool not at {PROMTOOL}: apt-get download prometheus && dpkg-deb -x (see .ci/run)",
    )
    tool = PROMTOOL if Path(PROMTOOL).is_file() else shutil.which("promtool")
    checked = subprocess.run(
        [tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def assert_metrics_follow_the_traffic(url: str, admin_key: str) -> None:
    before = samples(scrape(url).text)
    image = uploaded(url, image_bytes(seed=1), "counted.png")
    assert_error(upload(url, b"not an image", "notes.txt", "text/plain"), 415, "unsupported_type")
    gone = requests.delete(
        image["delete_url"], headers={"X-Delete-Token": image["delete_token"]}, timeout=10
    )
    assert gone.status_code == 204
    kept = uploaded(url, image_bytes(seed=2), "kept.png")
    resp = scrape(url)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    after = samples(resp.text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/api/upload/"
    assert grew("imagehost_http_requests_total", route=route, method="POST", status="201") == 2
    assert grew("imagehost_http_requests_total", route=route, method="POST", status="415") == 1
    delete_route = "/api/upload/{filename}"
    assert grew("imagehost_http_requests_total", route=delete_route, status="204") == 1
    assert grew("imagehost_refusals_total", code="unsupported_type") == 1
    assert grew("imagehost_uploads_total") == 2
    assert grew("imagehost_upload_bytes_total") == image["size"] + kept["size"]
    assert grew("imagehost_http_request_duration_seconds_count", route=route) == 3
    assert grew("imagehost_pipeline_step_seconds_count", step="process") >= 2
    assert value(after, "imagehost_images") == 1
    assert value(after, "imagehost_stored_bytes") == kept["size"]
    assert value(after, "imagehost_node_info") == 1
    promtool_check(resp.text)
    # the admin key reads them too; nothing else does
    assert scrape(url, admin_key).status_code == 200
    assert_error(requests.get(f"{url}/api/metrics", timeout=10), 401, "auth_required")
    assert_error(scrape(url, "wrong-token-0123456789"), 403, "forbidden")


def test_serve_counts_requests_uploads_refusals_and_deletes(serve_factory):
    server = serve_factory(METRICS_TOKEN=TOKEN)
    assert_metrics_follow_the_traffic(server.url, server.admin_key)


@pytest.mark.nginx
def test_up_sums_every_worker(tmp_path):
    """Through nginx, with 4 workers: whichever worker answers the scrape adds up all four."""
    running = start_stack("up", tmp_path / "up", METRICS_TOKEN=TOKEN, WEB_SERVER_WORKERS="4")
    try:
        assert_metrics_follow_the_traffic(running.url, running.admin_key)
        for n in range(12):  # spread over the workers by nginx
            uploaded(running.url, image_bytes(seed=10 + n), f"spread-{n}.png")
        totals = set()
        for _ in range(8):  # each scrape may come from another worker: all say the same
            seen = samples(scrape(running.url).text)
            totals.add(value(seen, "imagehost_uploads_total"))
        assert totals == {14.0}, totals
        files = list((running.data_dir / "run" / "metrics").glob("*.db"))
        assert len({f.name.rsplit("_", 1)[-1] for f in files}) >= 2  # several processes wrote
    finally:
        stop_stack(running)


def test_metrics_can_be_off(serve_factory):
    server = serve_factory(METRICS="false")
    assert_error(scrape(server.url, server.admin_key), 404, "not_found")
    assert uploaded(server.url, image_bytes(seed=3))["size"] > 0
