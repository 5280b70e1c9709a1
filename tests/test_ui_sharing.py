"""Sharing in the browser (issue 13), end to end: Debian's Chromium, headless, driven by
Playwright, against the real `imagehost serve`. The delete page, the album lightbox, albums made
from an upload batch and from a selection, search, the grid view, "Delete selected", the ShareX
download; axe in light and dark; screenshots for a person to look at. Every outcome is checked
through HTTP too."""

import json
import re
import time
from pathlib import Path

import pytest
import requests
from conftest import need
from playwright.sync_api import expect
from support.browser import SCREENSHOTS, axe_script, js_file, refused
from support.http import listed, uploaded
from support.images import image_bytes
from support.stack import start_stack, stop_stack
from support.ui import (
    HOSTILE_NAME,
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

# A delete without a token the server accepts: 401 with no token at all, 403 with a wrong one.
REFUSED_DELETE = (refused(401), refused(403))


def make_album(base_url: str, images: list[dict], title: str = "") -> dict:
    """An album of `images` (upload answers), made through the API with their tokens."""
    entries = [{"filename": i["filename"], "delete_token": i["delete_token"]} for i in images]
    resp = requests.post(
        f"{base_url}/api/albums", json={"title": title, "images": entries}, timeout=10
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def album_filenames(base_url: str, album_id: str) -> list[str]:
    resp = requests.get(f"{base_url}/api/albums/{album_id}", timeout=10)
    assert resp.status_code == 200, resp.text
    return [image["filename"] for image in resp.json()["images"]]


def remember_tokens(page, base_url: str, images: list[dict]) -> None:
    """Puts the delete tokens of `images` where this browser keeps its own uploads' tokens, as
    if it had uploaded them earlier."""
    page.goto(f"{base_url}/upload.html")
    page.evaluate(
        "(images) => { for (const [name, token] of images)"
        " localStorage.setItem('imagehost.deleteToken.' + name, token); }",
        [[i["filename"], i["delete_token"]] for i in images],
    )


def wait_loaded(image) -> None:
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("i => i.naturalWidth") > 0


def status_of(url: str) -> int:
    return requests.get(url, timeout=10).status_code


# --- the delete page -----------------------------------------------------------------------


def test_delete_page_deletes_with_its_link_alone(server, open_page):
    image = uploaded(server.url, image_bytes("PNG", (320, 240), seed=1), "to-delete.png")
    token = image["delete_token"]
    link = image["delete_page_url"]
    assert link == f"{server.url}/delete.html#{image['filename']}:{token}"
    page, console = open_page()
    sent = []
    page.on("request", lambda request: sent.append(request))
    page.goto(link)

    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Delete this image?")
    expect(page).to_have_url(f"{server.url}/delete.html")  # the token left the address bar
    assert token not in page.evaluate("location.href")
    expect(page.locator("#delete-name")).to_have_text("to-delete.png")
    wait_loaded(page.locator("#delete-image"))
    expect(page.locator("#delete-status")).to_contain_text("320 × 240")
    expect(page.get_by_role("button")).to_have_count(1)  # one Delete button, nothing else

    page.get_by_role("button", name="Delete").click()
    expect(heading).to_have_text("Deleted")
    expect(page.locator("#delete-status")).to_contain_text("to-delete.png")
    expect(page.get_by_role("button")).to_have_count(0)
    expect(page.locator("#delete-image")).to_be_hidden()
    assert status_of(image["url"]) == 404
    assert status_of(f"{server.url}/api/upload/{image['filename']}") == 404

    # The token travelled in one header only: never in a URL, never in a Referer.
    deletes = [r for r in sent if r.method == "DELETE"]
    assert len(deletes) == 1 and deletes[0].headers["x-delete-token"] == token
    for request in sent:
        assert token not in request.url
        assert not request.headers.get("referer"), request.url  # Playwright shows none as ""
    assert token not in (server.log_dir / "app.log").read_text()

    page.goto(link)  # the same link again: nothing left
    expect(heading).to_have_text("This image is not here")
    expect(page.get_by_role("button")).to_have_count(0)
    console.assert_clean(refused(404))


def test_delete_page_refuses_a_wrong_token_and_explains_a_broken_link(server, open_page):
    image = uploaded(server.url, image_bytes(seed=2), "kept.png")
    page, console = open_page(f"{server.url}/delete.html#{image['filename']}:{'x' * 32}")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Delete this image?")
    page.get_by_role("button", name="Delete").click()
    expect(heading).to_have_text("This link can't delete the image")
    expect(page.locator("#delete-status")).to_contain_text("nothing was deleted")
    assert status_of(image["url"]) == 200

    # Opened over the page, only the fragment changes: the page reads the new one.
    page.goto(f"{server.url}/delete.html#this-is-not-a-delete-link")
    expect(heading).to_have_text("This delete link is not complete")
    expect(page.locator("#delete-status")).to_contain_text("#name:token")
    expect(page.get_by_role("button")).to_have_count(0)
    expect(page).to_have_url(f"{server.url}/delete.html")

    page.goto(f"{server.url}/delete.html#{image['filename']}:")
    expect(heading).to_have_text("This delete link is not complete")
    assert status_of(image["url"]) == 200
    console.assert_clean(refused(403))


@pytest.fixture
def behind_nginx(tmp_path):
    """`imagehost up`: nginx in front of the workers, as deployed."""
    running = start_stack("up", tmp_path / "up", WEB_SERVER_WORKERS="2")
    yield running
    stop_stack(running)


def logged(path: Path, needle: str, timeout_s: float = 15) -> str:
    """The text of the log at `path` once it holds `needle` (nginx flushes its buffer each
    second); fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = path.read_text() if path.exists() else ""
        if needle in text:
            return text
        assert time.monotonic() < deadline, f"{needle!r} never reached {path}"
        time.sleep(0.2)


@pytest.mark.nginx
def test_delete_page_and_album_page_behind_nginx_keep_the_token_out_of_its_log(
    behind_nginx, open_page
):
    server = behind_nginx
    images = [uploaded(server.url, image_bytes(seed=60 + n), f"proxied-{n}.png") for n in range(2)]
    album = make_album(server.url, images)
    page, console = open_page(album["url"])
    page.locator("a.album-link").first.click()  # album.js runs under nginx's CSP
    expect(page.get_by_role("dialog").get_by_role("heading")).to_have_text("proxied-0.png")
    page.keyboard.press("Escape")

    doomed = images[1]
    page.goto(doomed["delete_page_url"])
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Deleted")
    assert status_of(doomed["url"]) == 404
    access = logged(server.log_dir / "nginx" / "access.log", f"/api/upload/{doomed['filename']}")
    assert "/delete.html" in access
    assert doomed["delete_token"] not in access
    assert doomed["delete_token"] not in (server.log_dir / "app.log").read_text()
    console.assert_clean()


# --- the album page ------------------------------------------------------------------------


def test_album_lightbox_opens_steps_with_the_arrows_and_escape_returns_focus(server, open_page):
    names = ["first.png", HOSTILE_NAME, "third.png"]
    images = [
        uploaded(server.url, image_bytes("PNG", (640, 480), seed=10 + n), name)
        for n, name in enumerate(names)
    ]
    album = make_album(server.url, images, "Trip")
    assert album_filenames(server.url, album["id"]) == [i["filename"] for i in images]
    page, console = open_page(album["url"])
    alerts = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    expect(page.get_by_role("heading", level=1)).to_have_text("Trip")
    thumbs = page.locator("a.album-link")
    expect(thumbs).to_have_count(3)

    thumbs.nth(1).click()
    box = page.get_by_role("dialog")
    expect(box).to_be_visible()
    title = box.get_by_role("heading", level=2)
    picture = box.locator("img.lightbox-image")
    share = box.get_by_role("link", name="Open share page")
    expect(title).to_have_text(HOSTILE_NAME)  # text, not markup
    expect(picture).to_have_attribute("src", images[1]["url"])
    expect(share).to_have_attribute("href", images[1]["share_url"])
    expect(box).to_contain_text("2 of 3")
    wait_loaded(picture)
    assert picture.evaluate("i => i.naturalWidth") == 640

    page.keyboard.press("ArrowRight")
    expect(title).to_have_text("third.png")
    expect(box).to_contain_text("3 of 3")
    page.keyboard.press("ArrowRight")  # round to the first
    expect(title).to_have_text("first.png")
    expect(share).to_have_attribute("href", images[0]["share_url"])
    page.keyboard.press("ArrowLeft")
    expect(title).to_have_text("third.png")
    box.get_by_role("button", name="Previous").click()
    expect(title).to_have_text(HOSTILE_NAME)
    box.get_by_role("button", name="Next").click()
    expect(title).to_have_text("third.png")

    page.keyboard.press("Escape")
    expect(box).to_be_hidden()
    expect(thumbs.nth(2)).to_be_focused()  # the thumbnail of the image last shown

    thumbs.nth(0).focus()
    page.keyboard.press("Enter")
    expect(box).to_be_visible()
    expect(title).to_have_text("first.png")
    share.click()
    expect(page).to_have_url(images[0]["share_url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("first.png")
    assert alerts == []
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0

    # Without script a thumbnail is a link to the image's share page.
    plain, _ = open_page(album["url"], java_script_enabled=False)
    plain.locator("a.album-link").nth(2).click()
    expect(plain).to_have_url(images[2]["share_url"])
    console.assert_clean()


# --- albums from the upload page -----------------------------------------------------------


def test_an_upload_batch_becomes_an_album_with_one_button(server, open_page):
    page, console = open_page()
    open_upload_page(page, server.url)
    drop(page, js_file("alone.png", image_bytes(seed=20)))
    alone = finished_url(upload_row(page, "alone.png"))
    expect(page.get_by_role("button", name="Make album")).to_have_count(0)  # one file: no album

    row = upload_row(page, "alone.png")
    filename = alone.rsplit("/", 1)[1]
    share = row.get_by_label("Share link", exact=True)
    expect(share).to_have_value(listed(server.url)[0]["share_url"])
    token = page.evaluate(f"localStorage.getItem('imagehost.deleteToken.{filename}')")
    expect(row.get_by_label("Delete link", exact=True)).to_have_value(
        f"{server.url}/delete.html#{filename}:{token}"
    )

    names = ["one.png", "two.png", "three.png"]
    drop(page, *[js_file(n, image_bytes(seed=21 + i)) for i, n in enumerate(names)])
    urls = [finished_url(upload_row(page, name)) for name in names]
    batch = page.locator("#upload-list > li.upload-batch").first
    expect(batch).to_contain_text("3 images of this batch uploaded")
    batch.get_by_label("Album title (optional)").fill("Beach day")
    batch.get_by_role("button", name="Make album").click()

    link = batch.get_by_label("Album link", exact=True)
    expect(link).to_have_value(re.compile(rf"^{re.escape(server.url)}/a/[A-Za-z0-9_-]{{10,}}$"))
    expect(batch).to_contain_text("Keep this token to change or delete the album")
    expect(batch.get_by_role("button", name="Make album")).to_have_count(0)
    album_id = link.input_value().rsplit("/", 1)[1]
    album_token = batch.get_by_label("Album token", exact=True).input_value()
    answer = requests.get(f"{server.url}/api/albums/{album_id}", timeout=10).json()
    assert answer["title"] == "Beach day"
    assert [i["url"] for i in answer["images"]] == urls  # the order the files were given
    assert page.evaluate(f"localStorage.getItem('imagehost.albumToken.{album_id}')") == album_token

    # The token shown is the album's own: it changes the album.
    renamed = requests.patch(
        f"{server.url}/api/albums/{album_id}",
        json={"title": "Renamed"},
        headers={"X-Delete-Token": album_token},
        timeout=10,
    )
    assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"
    console.assert_clean()


# --- the Images tab ------------------------------------------------------------------------


def test_search_finds_by_part_of_a_name_among_300_images(server, open_page):
    for n in range(300):
        name = f"holiday-{n:03d}.png" if n % 5 == 0 else f"work-{n:03d}.png"
        uploaded(server.url, image_bytes("PNG", (8, 8), seed=n), name)
    page, console = open_page(height=800)
    open_upload_page(page, server.url, "#images")
    count = page.locator("#images-count")
    rows = image_rows(page)
    expect(count).to_have_text("300 images")
    search = page.get_by_role("searchbox", name="Search by name")

    search.fill("HOLIDAY")  # any case, matched by the server
    expect(count).to_have_text("60 matches")
    matches = requests.get(f"{server.url}/api/upload/?limit=1&q=HOLIDAY", timeout=10)
    assert matches.headers["X-Total-Count"] == "60"
    expect(rows).to_have_count(50)  # paged like the list
    rows.last.scroll_into_view_if_needed()
    expect(rows).to_have_count(60)
    expected = [f"holiday-{n:03d}.png" for n in range(295, -1, -5)]
    assert rows.locator(".image-name").all_inner_texts() == expected

    search.fill("day-12")
    expect(count).to_have_text("2 matches")
    expect(rows.locator(".image-name")).to_have_text(["holiday-125.png", "holiday-120.png"])
    search.fill("nothing like this")
    expect(count).to_have_text("0 matches")
    expect(page.locator("#images-no-match")).to_have_text(
        "No image names contain “nothing like this”."
    )
    expect(page.get_by_text("No images yet")).to_be_hidden()
    search.fill("")
    expect(count).to_have_text("300 images")
    expect(rows).to_have_count(50)
    console.assert_clean()


def test_grid_view_is_remembered_across_a_reload(server, open_page):
    for n in range(3):
        uploaded(server.url, image_bytes("PNG", (400, 300), seed=30 + n), f"grid-{n}.png")
    page, console = open_page()
    open_upload_page(page, server.url, "#images")
    table = page.locator("#images-table")
    grid_button = page.get_by_role("button", name="Grid", exact=True)
    table_button = page.get_by_role("button", name="Table", exact=True)
    expect(table).to_have_attribute("data-view", "table")
    expect(table_button).to_have_attribute("aria-pressed", "true")

    grid_button.focus()
    page.keyboard.press("Enter")
    expect(table).to_have_attribute("data-view", "grid")
    expect(grid_button).to_have_attribute("aria-pressed", "true")
    expect(image_rows(page)).to_have_count(3)
    thumb = image_row(page, "grid-0.png").locator("img.thumb")
    wait_loaded(thumb)
    assert thumb.bounding_box()["width"] > 120  # a card's picture, not the table's 64 px

    page.reload()
    expect(table).to_have_attribute("data-view", "grid")
    expect(grid_button).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("localStorage.getItem('imagehost.galleryView')") == "grid"
    table_button.click()
    expect(table).to_have_attribute("data-view", "table")
    page.reload()
    expect(table).to_have_attribute("data-view", "table")
    console.assert_clean()


def test_select_many_and_delete_them_with_one_confirmation(server, open_page):
    mine = [
        uploaded(server.url, image_bytes("PNG", (16, 16), seed=100 + n), f"mine-{n:02d}.png")
        for n in range(20)
    ]
    other = uploaded(server.url, image_bytes(seed=200), "not-mine.png")
    page, console = open_page()
    remember_tokens(page, server.url, mine)
    open_upload_page(page, server.url, "#images")
    rows = image_rows(page)
    expect(rows).to_have_count(21)
    selection = page.locator("#selection-count")
    delete_selected = page.get_by_role("button", name="Delete selected")
    expect(selection).to_have_text("None selected")
    expect(delete_selected).to_be_disabled()

    box = page.get_by_role("checkbox", name="Select mine-19.png")
    box.focus()
    page.keyboard.press("Space")
    expect(box).to_be_checked()
    expect(selection).to_have_text("1 selected")
    page.keyboard.press("Space")
    expect(selection).to_have_text("None selected")

    page.get_by_role("checkbox", name="Select all shown").check()
    expect(selection).to_have_text("21 selected")
    delete_selected.click()
    dialog = page.get_by_role("dialog", name="Delete 21 images?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("no delete token for 1 image")
    dialog.get_by_role("button", name="Delete").click()
    expect(dialog).to_be_hidden()

    expect(rows).to_have_count(1)
    survivor = image_row(page, "not-mine.png")
    expect(survivor).to_contain_text("Not deleted: this browser is not allowed to delete it")
    expect(page.locator("#images-message")).to_have_text(
        "20 images deleted; 1 image not deleted (marked below, still selected)."
    )
    expect(selection).to_have_text("1 selected")
    expect(page.locator("#images-count")).to_have_text("1 image")

    assert [i["filename"] for i in listed(server.url)] == [other["filename"]]
    assert all(status_of(image["url"]) == 404 for image in mine)
    assert status_of(other["url"]) == 200
    console.assert_clean(*REFUSED_DELETE)


def test_make_album_from_a_selection_names_the_images_it_cannot_add(server, open_page):
    mine = [uploaded(server.url, image_bytes(seed=300 + n), f"picked-{n}.png") for n in range(3)]
    other = uploaded(server.url, image_bytes(seed=310), "someone-elses.png")
    page, console = open_page()
    remember_tokens(page, server.url, mine)
    open_upload_page(page, server.url, "#images")
    expect(image_rows(page)).to_have_count(4)
    page.get_by_role("checkbox", name="Select all shown").check()
    page.get_by_role("button", name="Make album").click()

    dialog = page.get_by_role("dialog", name="Make an album of 3 images?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("1 image of the selected can't be added")
    expect(dialog.get_by_role("listitem")).to_have_text(["someone-elses.png"])
    expect(dialog.get_by_label("Title (optional)")).to_be_focused()
    page.keyboard.type("Picked ones")
    dialog.get_by_role("button", name="Make album").click()

    made = page.get_by_role("region", name="New album")
    link = made.get_by_label("Album link", exact=True)
    expect(link).to_have_value(re.compile(rf"^{re.escape(server.url)}/a/"))
    album_id = link.input_value().rsplit("/", 1)[1]
    newest_first = [i["filename"] for i in reversed(mine)]  # the order shown
    assert album_filenames(server.url, album_id) == newest_first
    album_token = made.get_by_label("Album token", exact=True).input_value()
    gone = requests.delete(
        f"{server.url}/api/albums/{album_id}", headers={"X-Delete-Token": album_token}, timeout=10
    )
    assert gone.status_code == 204
    assert all(status_of(image["url"]) == 200 for image in mine)  # the images stay

    # With the admin key every image can go in.
    page.goto(f"{server.url}/upload.html#key={server.admin_key}")
    expect(page.locator("#admin-badge")).to_be_visible()
    page.get_by_role("tab", name="Images").click()
    expect(image_rows(page)).to_have_count(4)
    page.get_by_role("checkbox", name="Select all shown").check()
    page.get_by_role("button", name="Make album").click()
    dialog = page.get_by_role("dialog", name="Make an album of 4 images?")
    expect(dialog.get_by_role("listitem")).to_have_count(0)
    dialog.get_by_role("button", name="Make album").click()
    # The same document (only the fragment changed): the new album replaces the first one.
    expect(link).not_to_have_value(f"{server.url}/a/{album_id}")
    everything = [other["filename"], *newest_first]
    assert album_filenames(server.url, link.input_value().rsplit("/", 1)[1]) == everything
    console.assert_clean()


# --- ShareX --------------------------------------------------------------------------------


def test_sharex_download_carries_the_key_only_when_the_browser_holds_it(serve_factory, open_page):
    server = serve_factory(UPLOADS="key")
    page, console = open_page()
    open_upload_page(page, server.url)
    link = page.get_by_role("link", name="Use with ShareX")
    expect(page.locator("#sharex-hint")).to_contain_text("need the admin key")
    with page.expect_download() as plain:
        link.click()
    without_key = json.loads(Path(plain.value.path()).read_text())
    assert plain.value.suggested_filename.endswith(".sxcu")
    assert without_key["RequestURL"] == f"{server.url}/api/upload/"
    assert without_key["FileFormName"] == "file"
    assert "Headers" not in without_key

    page.goto(f"{server.url}/upload.html#key={server.admin_key}")
    expect(page.locator("#admin-badge")).to_be_visible()
    expect(page.locator("#sharex-hint")).not_to_contain_text("need the admin key")
    with page.expect_download() as keyed:
        link.click()
    sharex = json.loads(Path(keyed.value.path()).read_text())
    assert keyed.value.suggested_filename == f"127.0.0.1-{server.port}.sxcu"
    assert sharex["RequestURL"] == f"{server.url}/api/upload/"
    assert sharex["Headers"] == {"Authorization": f"Bearer {server.admin_key}"}

    # An upload done as the file says, literally.
    sent = requests.request(
        sharex["RequestMethod"],
        sharex["RequestURL"],
        headers=sharex["Headers"],
        files={sharex["FileFormName"]: ("shot.png", image_bytes(seed=40), "image/png")},
        timeout=10,
    )
    assert sent.status_code == 201, sent.text
    field = re.fullmatch(r"\{json:(\w+)\}", sharex["URL"]).group(1)
    assert status_of(sent.json()[field]) == 200
    console.assert_clean()


# --- axe and screenshots -------------------------------------------------------------------


def sharing_scene(base_url: str) -> tuple[list[dict], dict]:
    """Three images and an album of them, as the screenshots and axe see them."""
    names = ["sunset over the bay.png", "harbour at night.png", "lighthouse.png"]
    sizes = [(1200, 800), (640, 960), (800, 600)]
    images = [
        uploaded(base_url, image_bytes("PNG", size, seed=50 + n), name)
        for n, (name, size) in enumerate(zip(names, sizes, strict=True))
    ]
    return images, make_album(base_url, images, "Weekend by the sea")


def show_grid(page, base_url: str, images: list[dict]) -> None:
    remember_tokens(page, base_url, images)
    open_upload_page(page, base_url, "#images")
    page.get_by_role("button", name="Grid", exact=True).click()
    expect(image_rows(page)).to_have_count(len(images))
    for thumb in page.locator("img.thumb").all():
        wait_loaded(thumb)
    page.get_by_role("checkbox", name=f"Select {images[0]['original_name']}").check()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_violations_on_the_sharing_pages(
    server, open_page, color_scheme
):
    script = axe_script()
    need("axe-core", script is not None, "axe-core's axe.min.js not found (see test_ui)")
    images, album = sharing_scene(server.url)
    page, console = open_page(color_scheme=color_scheme, bypass_csp=True)

    def check(where: str) -> None:
        found = run_axe(page, script)
        assert found == [], f"{where}: {describe(found)}"

    page.goto(images[0]["share_url"])
    wait_loaded(page.locator("img.share-image"))
    check("share page")

    page.goto(album["url"])
    page.locator("a.album-link").first.click()
    wait_loaded(page.get_by_role("dialog").locator("img.lightbox-image"))
    check("album page, lightbox open")

    page.goto(images[1]["delete_page_url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete this image?")
    wait_loaded(page.locator("#delete-image"))
    check("delete page")

    page.goto(f"{server.url}/i/no-such-image")
    expect(page.get_by_role("heading", level=1)).to_have_text("This image is not here")
    check("missing page")

    show_grid(page, server.url, images)
    check("images tab, grid view")
    page.get_by_role("button", name="Make album").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    check("images tab, album dialog")
    console.assert_clean(refused(404))


@pytest.mark.parametrize("width", [1280, 375])
@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_screenshots_of_the_sharing_pages(server, open_page, color_scheme, width):
    """Writes tests/screenshots/{share,album,album-lightbox,delete,images-grid,upload-album}-
    {scheme}-{width}.png for a person to see."""
    SCREENSHOTS.mkdir(exist_ok=True)
    images, album = sharing_scene(server.url)
    page, console = open_page(color_scheme=color_scheme, width=width, height=900)
    suffix = f"{color_scheme}-{width}"
    shots = []

    def shoot(name: str, full_page: bool = True) -> None:
        page.mouse.move(0, 0)
        path = SCREENSHOTS / f"{name}-{suffix}.png"
        page.screenshot(path=path, full_page=full_page)
        shots.append(path)

    page.goto(images[0]["share_url"])
    wait_loaded(page.locator("img.share-image"))
    shoot("share")

    page.goto(album["url"])
    for thumb in page.locator("img.album-thumb").all():
        wait_loaded(thumb)
    shoot("album")
    page.locator("a.album-link").nth(1).click()
    wait_loaded(page.get_by_role("dialog").locator("img.lightbox-image"))
    shoot("album-lightbox", full_page=False)

    page.goto(images[2]["delete_page_url"])
    wait_loaded(page.locator("#delete-image"))
    shoot("delete")

    show_grid(page, server.url, images)
    shoot("images-grid")

    page.get_by_role("tab", name="Upload").click()
    drop(page, *[js_file(f"beach-{n}.png", image_bytes("PNG", (400, 300), seed=n)) for n in (1, 2)])
    for n in (1, 2):
        finished_url(upload_row(page, f"beach-{n}.png"))
    page.get_by_role("button", name="Make album").click()
    expect(page.get_by_label("Album link", exact=True)).to_have_value(re.compile("/a/"))
    shoot("upload-album")
    assert all(path.stat().st_size > 0 for path in shots)
    console.assert_clean()
