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
