"""pytest's side of the test helpers: need(), the server fixtures and the hooks for the markers.

Everything that does not need pytest (starting servers, image bytes, HTTP, store checks) is in
tests/support/, which the benchmark uses too.
"""

import os
from collections.abc import Iterator

import pytest
from support.stack import NGINX_MISSING, Running, nginx_present, start_stack

REQUIRE_ALL = os.environ.get("IMAGEHOST_REQUIRE_ALL") == "1"


def need(what: str, present: bool, reason: str) -> None:
    """Skip when a system part (nginx, chromium, podman) is missing; fail instead in CI."""
    if present:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{what} is required here (IMAGEHOST_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


@pytest.fixture
def serve_factory(tmp_path) -> Iterator:
    """Start `imagehost serve` with extra settings: serve_factory(UPLOADS="key")."""
    started: list[Running] = []

    def make(**overrides: str) -> Running:
        running = start_stack("serve", tmp_path / f"serve{len(started)}", **overrides)
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
