"""pytest's side of the test helpers: need(), the server fixtures and the hooks for the markers.

Everything that does not need pytest (starting servers, image bytes, HTTP, store checks) is in
tests/support/, which the benchmark uses too.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from support.browser import CHROMIUM, CHROMIUM_ARGS, ConsoleWatch
from support.stack import NGINX_MISSING, Running, nginx_present, start_stack

REQUIRE_ALL = os.environ.get("IMAGEHOST_REQUIRE_ALL") == "1"


def need(what: str, present: bool, reason: str) -> None:
    """Skip when a system part (nginx, chromium, podman) is missing; fail instead in CI."""
    if present:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{what} is required here (IMAGEHOST_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


# Issue 12, test 1: the tests of these modules that start `serve` (fixtures `server`,
# `serve_factory`) run twice — "local" (IMAGES_DIR + SQLite, the default) and "pg+s3" (a fresh
# PostgreSQL database and the session's bucket, emptied around the test) — except the tests
# named under a module, which look at local files: their pg+s3 run is skipped with the reason.
BOTH_MODES = {
    "test_api.py": {
        "test_upload_fetch_list_delete": "looks for the deleted files in IMAGES_DIR "
        "(test_multinode checks the bucket after a delete)",
        "test_hostile_names_are_inert_text": "compares the files added under IMAGES_DIR",
        "test_unexpected_error_is_a_generic_500_logged_with_its_traceback": "makes the commit "
        "fail by replacing IMAGES_DIR/thumbs with a file",
        "test_admin_key_file_is_private": "with DATABASE_URL the generated key is kept in "
        "PostgreSQL, not in DATA_DIR (test_migrate: the nodes agree on it)",
    },
    "test_sharing.py": {},
    "test_expiry.py": {},
    "test_limits.py": {},
    "test_metrics.py": {},
    "test_heic.py": {},
    "test_dedupe.py": {
        "test_check_links_copies_and_recounts": "hard links in IMAGES_DIR and the SQLite file "
        "(a bucket has no links; the recount in PostgreSQL is in test_catalog)",
    },
}


# The two modes of a module's own stack (fixture `mode_settings`), as pytest parameters.
STACK_MODES = [
    pytest.param("local"),
    pytest.param("pg+s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
]


def pytest_generate_tests(metafunc):
    """Run the `serve` tests of the modules in BOTH_MODES in both modes."""
    local_only = BOTH_MODES.get(Path(metafunc.definition.fspath).name)
    if local_only is None or "serve_factory" not in metafunc.fixturenames:
        return
    reason = local_only.get(metafunc.definition.originalname)
    remote = [pytest.mark.postgres, pytest.mark.s3]  # so `-m "not s3"` leaves the local run
    if reason:
        remote.append(pytest.mark.skip(reason=f"local files only: {reason}"))
    params = [pytest.param("local"), pytest.param("pg+s3", marks=remote)]
    metafunc.parametrize("serve_mode", params, indirect=True)


@pytest.fixture
def serve_mode(request) -> str:
    """The mode `serve_factory` starts `serve` in: "local" unless parametrized."""
    return getattr(request, "param", "local")


@pytest.fixture
def serve_settings(serve_mode, request) -> dict[str, str]:
    """The settings of `serve_mode`: none for local; DATABASE_URL (a new database, shared by
    every `serve` of the test) and the S3 settings for pg+s3."""
    return {} if serve_mode == "local" else request.getfixturevalue("remote_settings")


@pytest.fixture
def remote_settings(postgres, shared_bucket) -> dict[str, str]:
    """The pg+s3 settings of one test: a new database and the session's bucket (emptied)."""
    return {"DATABASE_URL": postgres(), **shared_bucket.settings()}


@pytest.fixture
def serve_factory(tmp_path, serve_settings) -> Iterator:
    """Start `imagehost serve` with extra settings: serve_factory(UPLOADS="key")."""
    started: list[Running] = []

    def make(**overrides: str) -> Running:
        settings = {**serve_settings, **overrides}
        running = start_stack("serve", tmp_path / f"serve{len(started)}", **settings)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def server(serve_factory) -> Running:
    """A fresh `imagehost serve` with default settings and empty folders."""
    return serve_factory()


def pytest_runtest_setup(item):
    """A test marked `nginx` needs the binary `up` runs: skipped without it (failed in CI).

    (Called after the skip marks are evaluated and before any fixture starts a server.)"""
    if item.get_closest_marker("nginx"):
        need("nginx", nginx_present(), NGINX_MISSING)


def pytest_collection_modifyitems(config, items):
    """Long load tests run only when IMAGEHOST_LOAD=1 (as .ci/run sets)."""
    if os.environ.get("IMAGEHOST_LOAD") == "1":
        return
    skip = pytest.mark.skip(reason="load test: set IMAGEHOST_LOAD=1 to run it (CI does)")
    for item in items:
        if "load" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory) -> Iterator:
    """One real S3 server (SeaweedFS `weed mini`) for the session, with an `images` bucket;
    skipped without the binary (failed when IMAGEHOST_REQUIRE_ALL=1)."""
    from support.seaweed import SEAWEED_MISSING, seaweed_present, start_seaweed

    need("SeaweedFS", seaweed_present(), SEAWEED_MISSING)
    running = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    yield running
    running.stop()


@pytest.fixture
def shared_bucket(seaweed) -> Iterator:
    """The session's SeaweedFS (`seaweed`), its bucket emptied before and after the test, so
    the test sees only its own objects. Never a bucket per test: SeaweedFS gives each bucket
    volumes of its own, and `-volume.max=4` allows few."""
    seaweed.empty()
    yield seaweed
    seaweed.empty()


@pytest.fixture(scope="session")
def mode_settings(request, tmp_path_factory):
    """mode_settings(mode): a context manager giving the settings of a stack a module starts
    for itself (a module-scoped `stack` parametrized "local" / "pg+s3"): none for local; for
    pg+s3 a new database and a SeaweedFS of the stack's own, stopped afterwards — two module
    stacks may be alive at once, and in one bucket each would see the other's objects as
    orphans."""

    @contextlib.contextmanager
    def settings(mode: str) -> Iterator[dict[str, str]]:
        if mode == "local":
            yield {}
            return
        from support.seaweed import SEAWEED_MISSING, seaweed_present, start_seaweed

        database = request.getfixturevalue("postgres")()
        need("SeaweedFS", seaweed_present(), SEAWEED_MISSING)
        weed = start_seaweed(tmp_path_factory.mktemp("seaweed"))
        try:
            yield {"DATABASE_URL": database, **weed.settings()}
        finally:
            weed.stop()

    return settings


@pytest.fixture(scope="session")
def postgres() -> Iterator:
    """A factory of DATABASE_URLs, each a new empty database in one throwaway PostgreSQL
    cluster for the session; skipped without Debian's postgresql (failed when
    IMAGEHOST_REQUIRE_ALL=1)."""
    from support.postgres import POSTGRES_MISSING, postgres_present, start_cluster

    need("PostgreSQL", postgres_present(), POSTGRES_MISSING)
    cluster = start_cluster()
    yield cluster.new_database
    cluster.remove()


@pytest.fixture
def postgres_cluster() -> Iterator:
    """A factory of PostgreSQL clusters of the test's own (to stop and start), each removed
    afterwards; same skip rule as `postgres`."""
    from support.postgres import POSTGRES_MISSING, postgres_present, start_cluster

    need("PostgreSQL", postgres_present(), POSTGRES_MISSING)
    started = []

    def make():
        started.append(start_cluster())
        return started[-1]

    yield make
    for cluster in started:
        cluster.remove()


@pytest.fixture(scope="session")
def podman() -> dict[str, str]:
    """The podman settings for the compose tests (support/compose.py). They run only with
    IMAGEHOST_COMPOSE=1 (set by .ci/run after `scripts/compose-env.sh setup`); a plain local
    run skips them, saying how to run them. With IMAGEHOST_COMPOSE=1, a missing podman,
    podman-compose or base image skips too, and fails under IMAGEHOST_REQUIRE_ALL=1."""
    import shutil
    import subprocess

    from support.compose import IMAGE_PARAMETERS, podman_settings

    if os.environ.get("IMAGEHOST_COMPOSE") != "1":
        pytest.skip(
            "the Docker Compose tests run with IMAGEHOST_COMPOSE=1 after "
            "`sudo scripts/compose-env.sh setup` (podman, podman-compose, local base images)"
        )
    need("root", os.geteuid() == 0, "the compose tests run rootful podman: run them as root")
    setup = "run `scripts/compose-env.sh setup`"
    need("podman", shutil.which("podman") is not None, f"podman is not installed: {setup}")
    settings = podman_settings()
    for path in (settings["PODMAN_COMPOSE"], settings["CONTAINERS_CONF"]):
        need("podman set-up", os.access(path, os.R_OK), f"{path} is missing: {setup}")
    env = {**os.environ, **settings}
    for image in (settings[name] for name in IMAGE_PARAMETERS):
        present = subprocess.run(["podman", "image", "exists", image], env=env, timeout=60)
        need("base image", present.returncode == 0, f"{image} is missing: {setup}")
    return settings


# --- the browser (test_ui, test_ui_sharing) ---------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium, headless, under Playwright (never a downloaded browser)."""
    need(
        "chromium",
        CHROMIUM.exists(),
        f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium):
    """open_page(url, color_scheme=, width=, ...) → (page, console watch) in a fresh context."""
    contexts = []

    def make(url=None, *, color_scheme="light", width=1280, height=800, **context_options):
        context = chromium.new_context(
            viewport={"width": width, "height": height},
            color_scheme=color_scheme,
            **context_options,
        )
        contexts.append(context)
        page = context.new_page()
        watch = ConsoleWatch(page)
        if url:
            page.goto(url)
        return page, watch

    yield make
    for context in contexts:
        context.close()
