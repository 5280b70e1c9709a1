"""Expiring uploads in the browser (issue 14, item 1), end to end: Debian's Chromium, headless,
driven by Playwright, against the real `imagehost serve`. The "Expires" choice is sent with each
upload and remembered; what MAX_EXPIRY forbids is not offered (and is explained when refused);
upload rows and the Images tab show when an image expires, and an expired image leaves the tab
without a reload. What the server stored is checked through HTTP."""

import datetime
import re

import pytest
import requests
from conftest import need
from playwright.sync_api import expect
from support.browser import SCREENSHOTS, axe_script, js_file, refused
from support.http import listed, upload, uploaded
from support.images import image_bytes
from support.ui import (
    describe,
    drop,
    finished_url,
    image_row,
    image_rows,
    open_upload_page,
    run_axe,
    upload_row,
)

pytestmark = pytest.mark.browser

expect.set_options(timeout=15_000)
EXPIRED_GONE_MS = 20_000  # the Images tab polls every 3 s; an expired image leaves the list at once
ALL_PRESETS = ["Never", "1 hour", "1 day", "1 week", "1 month"]
DAY_S = 86400


def expiry_select(page):
    return page.get_by_label("Expires", exact=True)


def offered(page) -> list[str]:
    return expiry_select(page).locator("option").all_inner_texts()


def metadata(base_url: str, filename: str) -> dict:
    resp = requests.get(f"{base_url}/api/upload/{filename}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def seconds_left(expires_at: str) -> float:
    then = datetime.datetime.fromisoformat(expires_at)
    return (then - datetime.datetime.now(datetime.UTC)).total_seconds()


def uploaded_filename(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_the_chosen_expiry_is_sent_and_remembered_across_a_reload(server, open_page):
    page, console = open_page()
    open_upload_page(page, server.url)
    choice = expiry_select(page)
    assert offered(page) == ALL_PRESETS
    expect(choice).to_have_value("never")  # the server's default: kept until deleted

    choice.select_option(label="1 day")
    drop(page, js_file("for-a-day.png", image_bytes(seed=1)))
    row = upload_row(page, "for-a-day.png")
    filename = uploaded_filename(finished_url(row))
    expires_at = metadata(server.url, filename)["expires_at"]
    assert DAY_S - 120 < seconds_left(expires_at) <= DAY_S
    # The row says when, with the moment itself in a <time> and its full date-time as title.
    note = row.locator(".upload-status time")
    expect(note).to_have_attribute("datetime", expires_at)
    expect(note).to_have_attribute("title", re.compile(r"^Expires \S"))
    expect(row.locator(".upload-status")).to_contain_text(re.compile(r"Expires in 2[34] h"))

    page.reload()
    expect(page.locator("#dropzone-hint")).to_contain_text("up to")
    expect(expiry_select(page)).to_have_value("P1D")
    drop(page, js_file("remembered.png", image_bytes(seed=2)))
    filename = uploaded_filename(finished_url(upload_row(page, "remembered.png")))
    assert DAY_S - 120 < seconds_left(metadata(server.url, filename)["expires_at"]) <= DAY_S

    # "Never": kept until deleted, and remembered too; the row then says nothing about expiring.
    expiry_select(page).select_option(label="Never")
    drop(page, js_file("kept.png", image_bytes(seed=3)))
    row = upload_row(page, "kept.png")
    filename = uploaded_filename(finished_url(row))
    assert metadata(server.url, filename)["expires_at"] is None
    expect(row.locator(".upload-status")).not_to_contain_text("Expires")
    assert page.evaluate("localStorage.getItem('imagehost.uploadExpiry')") == "never"
    console.assert_clean()


def test_what_max_expiry_forbids_is_not_offered(serve_factory, open_page):
    server = serve_factory(MAX_EXPIRY="P1D")
    page, console = open_page()
    # A choice remembered from before the limit: no longer allowed, so the server's default.
    page.goto(f"{server.url}/upload.html")
    page.evaluate("localStorage.setItem('imagehost.uploadExpiry', 'P1W')")
    open_upload_page(page, server.url)
    assert offered(page) == ["1 hour", "1 day"]
    expect(expiry_select(page)).to_have_value("P1D")  # DEFAULT_EXPIRY is MAX_EXPIRY here
    expect(page.locator("#expiry-hint")).to_have_text("This server keeps uploads at most 1 day.")

    expiry_select(page).select_option(label="1 hour")
    drop(page, js_file("an-hour.png", image_bytes(seed=4)))
    row = upload_row(page, "an-hour.png")
    filename = uploaded_filename(finished_url(row))
    assert 3600 - 120 < seconds_left(metadata(server.url, filename)["expires_at"]) <= 3600
    expect(row.locator(".upload-status")).to_contain_text(re.compile(r"Expires in 59 min"))
    console.assert_clean()


def test_an_expiry_the_server_refuses_is_shown_in_words(serve_factory, open_page):
    """A page that still believes there is no maximum (the server restarted with MAX_EXPIRY)
    offers "Never"; the server's 400 invalid_expiry reaches the row in words, and the page asks
    for the limits again."""
    server = serve_factory(MAX_EXPIRY="P1D")
    page, console = open_page()

    def no_maximum(route):
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "max_expiry": None})

    page.route("**/api/config", no_maximum)
    open_upload_page(page, server.url)
    assert offered(page) == ALL_PRESETS
    page.unroute("**/api/config")
    expiry_select(page).select_option(label="Never")
    with page.expect_response("**/api/config"):  # after the refusal it asks again
        drop(page, js_file("forever.png", image_bytes(seed=5)))
    row = upload_row(page, "forever.png")
    expect(row).to_have_attribute("data-state", "error")
    server_says = upload(server.url, image_bytes(seed=5), fields={"expires_in": "never"}).json()
    assert server_says["code"] == "invalid_expiry"
    alert = row.get_by_role("alert")
    expect(alert).to_contain_text("This server does not accept that expiry.")
    expect(alert).to_contain_text(server_says["detail"])
    expect(row.get_by_role("button", name="Try again")).to_have_count(0)
    expect(expiry_select(page).locator("option")).to_have_text(["1 hour", "1 day"])
    expect(expiry_select(page)).to_have_value("P1D")
    assert listed(server.url) == []
    console.assert_clean(refused(400))


def test_a_default_that_is_no_preset_is_offered_as_the_server_default(serve_factory, open_page):
    server = serve_factory(DEFAULT_EXPIRY="PT2H")
    page, console = open_page()
    open_upload_page(page, server.url)
    assert offered(page) == ["Server default (2 hours)", *ALL_PRESETS]
    expect(expiry_select(page)).to_have_value("")
    drop(page, js_file("default.png", image_bytes(seed=6)))
    filename = uploaded_filename(finished_url(upload_row(page, "default.png")))
    assert 7200 - 120 < seconds_left(metadata(server.url, filename)["expires_at"]) <= 7200
    console.assert_clean()


def test_the_images_tab_shows_expiry_and_drops_an_expired_image_without_reload(server, open_page):
    kept = uploaded(server.url, image_bytes(seed=7), "kept.png")
    week = uploaded(server.url, image_bytes(seed=8), "a-week.png", fields={"expires_in": "P1W"})
    page, console = open_page()
    open_upload_page(page, server.url, "#images")
    expect(image_rows(page)).to_have_count(2)

    brief = uploaded(server.url, image_bytes(seed=9), "brief.png", fields={"expires_in": "2"})
    assert 0 < seconds_left(brief["expires_at"]) <= 2
    page.reload()  # at once, rather than at the next poll: the image has only 2 s to be seen
    page.evaluate("window.__sameDocument = true")
    row = image_row(page, "brief.png")
    note = row.locator(".cell-expires time")
    expect(note).to_have_attribute("datetime", brief["expires_at"])
    expect(note).to_have_attribute("title", re.compile(r"^Expire"))
    expect(image_row(page, "kept.png").locator(".cell-expires")).to_have_text("Never")
    later = image_row(page, "a-week.png").locator(".cell-expires time")
    expect(later).to_have_attribute("datetime", week["expires_at"])
    expect(later).not_to_have_text(re.compile(r"^in "))  # far off: a local date-time

    expect(row).to_have_count(0, timeout=EXPIRED_GONE_MS)
    assert page.evaluate("window.__sameDocument") is True  # never reloaded
    expect(image_rows(page)).to_have_count(2)
    expect(page.locator("#images-count")).to_have_text("2 images")
    assert (
        requests.get(f"{server.url}/api/upload/{brief['filename']}", timeout=10).status_code == 404
    )
    assert {i["filename"] for i in listed(server.url)} == {kept["filename"], week["filename"]}
    console.assert_clean()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_with_the_expiry_choice(serve_factory, open_page, color_scheme):
    script = axe_script()
    need(
        "axe-core",
        script is not None,
        "axe-core's axe.min.js not found: pip install axe-playwright-python==0.1.8 "
        "(or set AXE_CORE_JS to an axe.min.js from npm's axe-core)",
    )
    server = serve_factory(MAX_EXPIRY="P1W")
    uploaded(server.url, image_bytes(seed=10), "listed.png", fields={"expires_in": "PT1H"})
    page, console = open_page(color_scheme=color_scheme, bypass_csp=True)
    open_upload_page(page, server.url)
    expect(expiry_select(page)).to_be_visible()
    expect(page.locator("#expiry-hint")).to_be_visible()
    drop(page, js_file("done.png", image_bytes(seed=11)))
    finished_url(upload_row(page, "done.png"))
    found = run_axe(page, script)
    assert found == [], describe(found)

    page.get_by_role("tab", name="Images").click()
    expect(image_row(page, "listed.png").locator(".cell-expires time")).to_be_visible()
    found = run_axe(page, script)
    assert found == [], describe(found)
    page.get_by_role("button", name="Grid").click()
    expect(image_row(page, "listed.png").locator(".cell-expires time")).to_be_visible()
    found = run_axe(page, script)
    assert found == [], describe(found)
    console.assert_clean()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_screenshots_of_the_expiry_choice(serve_factory, open_page, color_scheme):
    """Writes tests/screenshots/upload-expiry-{scheme}-1280.png for a person to see."""
    SCREENSHOTS.mkdir(exist_ok=True)
    server = serve_factory(MAX_EXPIRY="P1M")
    page, console = open_page(color_scheme=color_scheme, width=1280, height=900)
    open_upload_page(page, server.url)
    expiry_select(page).select_option(label="1 day")
    drop(page, js_file("screenshot for today.png", image_bytes("PNG", (800, 600), seed=30)))
    finished_url(upload_row(page, "screenshot for today.png"))
    page.mouse.move(0, 0)
    path = SCREENSHOTS / f"upload-expiry-{color_scheme}-1280.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 0
    console.assert_clean()
