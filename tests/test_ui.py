"""The browser UI end to end: Debian's Chromium, headless, driven by Playwright, against the real
`imagehost serve`. Each test follows one "Done when" point of issue 4."""

import re

import pytest
import requests
from conftest import need
from playwright.sync_api import expect
from support.browser import (
    DRAG_OVER_JS,
    PASTE_FILES_JS,
    SCREENSHOTS,
    axe_script,
    file_payload,
    js_file,
    refused,
)
from support.http import listed, listing, upload, uploaded
from support.images import image_bytes, noise_png
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

# Generous: a first page load starts Chromium's renderer; polls come every 3 s.
expect.set_options(timeout=15_000)
POLL_WAIT_MS = 20_000


def test_start_page_button_leads_to_upload_page(server, open_page):
    page, console = open_page(f"{server.url}/")
    expect(page).to_have_title("Image Host")
    expect(page.get_by_role("heading", level=1)).to_have_text("Image Host")
    illustration = page.locator("#illustration")
    expect(illustration).to_have_attribute("src", re.compile(r"^img/[1-5]\.svg$"))
    page.wait_for_function(
        "() => { const i = document.getElementById('illustration');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    for n in range(1, 6):
        art = requests.get(f"{server.url}/img/{n}.svg", timeout=10)
        assert art.status_code == 200 and art.headers["Content-Type"].startswith("image/svg+xml")
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert requests.get(f"{server.url}/{icon}", timeout=10).status_code == 200

    page.get_by_role("link", name="Upload images").click()
    expect(page).to_have_url(f"{server.url}/upload.html")
    expect(page.get_by_role("tab", name="Upload")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tabpanel", name="Upload")).to_be_visible()
    console.assert_clean()


def test_upload_through_the_file_chooser_with_the_keyboard(serve_factory, open_page):
    server = serve_factory(STRIP_METADATA="false")
    page, console = open_page()
    data = image_bytes(seed=1)
    # A listener from before the page loads: the file chooser interception is surely in place
    # when the key is pressed (one set up right before a key press can miss the event).
    page.on("filechooser", lambda chooser: None)
    open_upload_page(page, server.url)
    zone = page.get_by_role("button", name=re.compile("Drag and drop images here"))
    zone.focus()
    expect(zone).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()
    chooser.value.set_files(file_payload("chosen.png", data))

    url = finished_url(upload_row(page, "chosen.png"))
    served = requests.get(url, timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/png"
    assert served.content == data
    console.assert_clean()


def test_upload_through_a_drop_event(serve_factory, open_page):
    server = serve_factory(STRIP_METADATA="false")
    page, console = open_page()
    open_upload_page(page, server.url)
    zone = page.locator("#dropzone")
    page.evaluate(DRAG_OVER_JS, "#dropzone")
    expect(zone).to_have_class(re.compile(r"\bis-dragover\b"))

    data = image_bytes(seed=2)
    drop(page, js_file("dropped.png", data))
    expect(zone).not_to_have_class(re.compile(r"\bis-dragover\b"))
    url = finished_url(upload_row(page, "dropped.png"))
    assert requests.get(url, timeout=10).content == data
    console.assert_clean()


def test_three_files_at_once_each_reach_100_percent_and_serve_the_same_bytes(
    serve_factory, open_page
):
    server = serve_factory(STRIP_METADATA="false")
    page, console = open_page()
    open_upload_page(page, server.url)
    files = {
        "first.png": noise_png((400, 300)),
        "second.png": image_bytes("PNG", (320, 200), seed=3),
        "third.png": image_bytes("PNG", (100, 100), seed=4),
    }
    with page.expect_file_chooser() as chooser:
        page.locator("#dropzone").click()
    chooser.value.set_files([file_payload(name, data) for name, data in files.items()])

    expect(page.locator("#upload-list > li.upload-item")).to_have_count(3)
    for name, data in files.items():
        url = finished_url(upload_row(page, name))
        assert requests.get(url, timeout=10).content == data, name
    assert listing(server.url).headers["X-Total-Count"] == "3"
    console.assert_clean()


def test_paste_from_the_clipboard_uploads_an_image(server, open_page):
    page, console = open_page()
    open_upload_page(page, server.url, "#images")
    expect(page.get_by_role("tab", name="Images")).to_have_attribute("aria-selected", "true")

    page.evaluate(PASTE_FILES_JS, [js_file("pasted.png", image_bytes(seed=5))])
    # The pasted file is shown where its progress can be seen.
    expect(page.get_by_role("tab", name="Upload")).to_have_attribute("aria-selected", "true")
    url = finished_url(upload_row(page, "pasted.png"))
    assert requests.get(url, timeout=10).status_code == 200
    console.assert_clean()


def test_wrong_type_and_too_large_show_their_error_and_upload_nothing(serve_factory, open_page):
    server = serve_factory(MAX_UPLOAD_MB="1")
    page, console = open_page()
    open_upload_page(page, server.url)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    text = b"Just some notes, not a picture at all.\n" * 20
    big = noise_png((700, 700))  # ~1.4 MB, over the 1 MB limit
    assert len(big) > 1024 * 1024
    with page.expect_file_chooser() as chooser:
        page.locator("#dropzone").click()
    chooser.value.set_files(
        [
            file_payload("notes.png", text),  # a .txt renamed .png: only the server can tell
            file_payload("huge.png", big),
            file_payload("readme.txt", text, "text/plain"),
        ]
    )

    renamed = upload_row(page, "notes.png")
    expect(renamed).to_have_attribute("data-state", "error")
    server_says = upload(server.url, text, "notes.png", timeout=10).json()
    assert server_says["code"] == "unsupported_type"
    expect(renamed.get_by_role("alert")).to_contain_text("Not an image this server accepts.")
    expect(renamed.get_by_role("alert")).to_contain_text(server_says["detail"])

    too_large = upload_row(page, "huge.png")
    expect(too_large).to_have_attribute("data-state", "error")
    expect(too_large.get_by_role("alert")).to_contain_text("Too large.")
    expect(too_large.get_by_role("alert")).to_contain_text("the limit is 1 MB")

    wrong_type = upload_row(page, "readme.txt")
    expect(wrong_type).to_have_attribute("data-state", "error")
    expect(wrong_type.get_by_role("alert")).to_contain_text(
        "Allowed: JPEG, PNG, GIF, WebP, AVIF or HEIC"
    )

    # Only the renamed file went to the server (the other two were stopped in the browser),
    # and nothing was stored.
    assert len(posts) == 1
    answer = listing(server.url)
    assert answer.json() == [] and answer.headers["X-Total-Count"] == "0"
    stored = [p for p in server.images_dir.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert stored == []
    console.assert_clean(refused(415))


def test_a_too_large_refusal_from_the_server_is_shown(serve_factory, open_page):
    """When the browser's own check is passed (here: a config claiming a larger limit), the
    server's 413 reaches the row as "Too large." with its detail, not as a network error."""
    server = serve_factory(MAX_UPLOAD_MB="1")
    page, console = open_page()

    def larger_limit(route):
        answer = route.fetch()
        config = {**answer.json(), "max_upload_bytes": 50 * 1024 * 1024}
        route.fulfill(response=answer, json=config)

    page.route("**/api/config", larger_limit)
    open_upload_page(page, server.url)
    drop(page, js_file("oversized.png", noise_png((800, 800))))
    row = upload_row(page, "oversized.png")
    expect(row.get_by_role("alert")).to_contain_text("Too large.")
    assert listing(server.url).headers["X-Total-Count"] == "0"
    console.assert_clean(refused(413))


def test_network_failure_is_shown_and_can_be_retried(server, open_page):
    page, console = open_page()
    open_upload_page(page, server.url)
    page.route("**/api/upload/", lambda route: route.abort("internetdisconnected"))
    drop(page, js_file("offline.png", image_bytes(seed=6)))
    row = upload_row(page, "offline.png")
    expect(row.get_by_role("alert")).to_contain_text("Could not reach the server.")
    page.unroute("**/api/upload/")
    row.get_by_role("button", name="Try again").click()
    finished_url(row)
    console.assert_clean(r"net::ERR_INTERNET_DISCONNECTED")


def test_copy_puts_the_url_on_the_clipboard(server, open_page):
    page, console = open_page(permissions=["clipboard-read", "clipboard-write"])
    open_upload_page(page, server.url)
    drop(page, js_file("copied.png", image_bytes(seed=7)))
    row = upload_row(page, "copied.png")
    url = finished_url(row)

    copy = row.get_by_role("button", name=re.compile(r"^Cop(y|ied) URL$"))
    copy.click()
    expect(copy).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == url

    # The snippets show the image and link to its share page.
    share = row.get_by_label("Share link", exact=True).input_value()
    assert share == listed(server.url)[0]["share_url"]
    row.get_by_role("button", name="Copy share link").click()
    assert page.evaluate("navigator.clipboard.readText()") == share
    row.get_by_role("button", name="Copy Markdown").click()
    assert page.evaluate("navigator.clipboard.readText()") == f"[![copied]({url})]({share})"
    row.get_by_role("button", name="Copy HTML").click()
    assert page.evaluate("navigator.clipboard.readText()") == (
        f'<a href="{share}"><img src="{url}" alt="copied"></a>'
    )
    row.get_by_role("button", name="Copy BBCode").click()
    assert page.evaluate("navigator.clipboard.readText()") == f"[url={share}][img]{url}[/img][/url]"

    page.get_by_role("tab", name="Images").click()
    image_row(page, "copied.png").get_by_role("button", name="Copy URL of copied.png").click()
    assert page.evaluate("navigator.clipboard.readText()") == url
    listed_row = image_row(page, "copied.png")
    listed_row.get_by_role("button", name="Copy share link of copied.png").click()
    assert page.evaluate("navigator.clipboard.readText()") == share
    console.assert_clean()


def test_images_tab_lists_a_new_upload_without_reload_and_delete_removes_it(server, open_page):
    page, console = open_page()
    open_upload_page(page, server.url, "#images")
    expect(page.get_by_text("No images yet")).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    upload_tab = page.get_by_role("tab", name="Upload")
    upload_tab.click()
    expect(page).to_have_url(f"{server.url}/upload.html#upload")
    drop(page, js_file("fresh.png", image_bytes(seed=8)))
    url = finished_url(upload_row(page, "fresh.png"))

    upload_tab.focus()
    page.keyboard.press("ArrowRight")  # tabs follow the arrow keys
    images_tab = page.get_by_role("tab", name="Images")
    expect(images_tab).to_be_focused()
    expect(images_tab).to_have_attribute("aria-selected", "true")
    expect(page).to_have_url(f"{server.url}/upload.html#images")
    row = image_row(page, "fresh.png")
    expect(row).to_be_visible()
    expect(row).to_contain_text(url)
    expect(row.locator("img.thumb")).to_have_js_property("complete", True)
    assert page.evaluate("window.__sameDocument") is True  # never reloaded

    delete = row.get_by_role("button", name="Delete fresh.png")
    delete.click()
    dialog = page.get_by_role("dialog", name="Delete this image?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(row).to_be_visible()

    delete.click()
    dialog.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    expect(page.get_by_text("No images yet")).to_be_visible()
    assert requests.get(url, timeout=10).status_code == 404
    assert listing(server.url).headers["X-Total-Count"] == "0"
    console.assert_clean()


def test_hostile_file_name_is_shown_as_text_and_runs_nothing(server, open_page):
    page, console = open_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_upload_page(page, server.url)
    page.locator("#file-input").set_input_files(file_payload(HOSTILE_NAME, image_bytes(seed=9)))

    row = upload_row(page, HOSTILE_NAME)
    finished_url(row)
    expect(row.locator(".upload-name")).to_have_text(HOSTILE_NAME)
    expect(row.get_by_text(HOSTILE_NAME, exact=True)).to_be_visible()
    expect(row.get_by_label("HTML", exact=True)).to_have_value(
        re.compile(re.escape('alt="&lt;img src=x onerror=alert(1)&gt;"'))
    )

    page.get_by_role("tab", name="Images").click()
    listed = image_row(page, HOSTILE_NAME)
    expect(listed).to_be_visible()
    expect(listed.get_by_text(HOSTILE_NAME, exact=True)).to_be_visible()
    listed.get_by_role("button", name=f"Delete {HOSTILE_NAME}").click()
    expect(page.locator("#confirm-text")).to_contain_text(HOSTILE_NAME)
    page.get_by_role("button", name="Cancel").click()

    assert page.locator('img[src="x"]').count() == 0
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    assert dialogs == []
    console.assert_clean()


def test_many_images_load_on_scroll_and_others_changes_appear(server, open_page):
    names = [f"bulk-{n:03d}.png" for n in range(120)]
    for n, name in enumerate(names):
        uploaded(server.url, image_bytes("PNG", (16, 16), seed=n), name)
    page, console = open_page(height=800)
    open_upload_page(page, server.url, "#images")

    rows = image_rows(page)
    expect(rows).to_have_count(50)
    expect(page.locator("#images-count")).to_have_text("120 images")
    expect(rows.first).to_contain_text("bulk-119.png")  # newest first
    rows.last.scroll_into_view_if_needed()
    expect(rows).to_have_count(100)
    rows.last.scroll_into_view_if_needed()
    expect(rows).to_have_count(120)
    expect(rows.last).to_contain_text("bulk-000.png")
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    # While the tab is open it asks cheaply whether anything changed: 304 while nothing did.
    page.wait_for_event(
        "response",
        lambda r: "/api/upload/?limit=" in r.url and r.status == 304,
        timeout=POLL_WAIT_MS,
    )
    other = uploaded(server.url, image_bytes(seed=500), "from-elsewhere.png")
    arrived = image_row(page, "from-elsewhere.png")
    expect(arrived).to_be_visible(timeout=POLL_WAIT_MS)
    expect(rows.first).to_contain_text("from-elsewhere.png")
    expect(page.locator("#images-count")).to_have_text("121 images")
    expect(rows).to_have_count(121)

    gone = requests.delete(
        other["delete_url"], headers={"X-Delete-Token": other["delete_token"]}, timeout=10
    )
    assert gone.status_code == 204
    expect(arrived).to_have_count(0, timeout=POLL_WAIT_MS)
    expect(page.locator("#images-count")).to_have_text("120 images")
    console.assert_clean()


def test_management_link_enables_deleting_an_image_uploaded_elsewhere(server, open_page):
    elsewhere = uploaded(server.url, image_bytes(seed=10), "elsewhere.png")
    page, console = open_page()
    open_upload_page(page, server.url, "#images")
    row = image_row(page, "elsewhere.png")
    expect(row).to_be_visible()
    expect(row.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)

    page.goto(f"{server.url}/upload.html#key={server.admin_key}")
    expect(page.locator("#admin-badge")).to_be_visible()
    expect(page).to_have_url(f"{server.url}/upload.html")  # the key left the address bar
    assert server.admin_key not in page.evaluate("location.href")
    assert page.evaluate("localStorage.getItem('imagehost.adminKey')") == server.admin_key

    page.get_by_role("tab", name="Images").click()
    row = image_row(page, "elsewhere.png")
    row.get_by_role("button", name="Delete elsewhere.png").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert requests.get(elsewhere["url"], timeout=10).status_code == 404

    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#admin-badge")).to_be_hidden()
    assert page.evaluate("localStorage.getItem('imagehost.adminKey')") is None
    console.assert_clean()


def test_key_only_server_explains_itself_until_the_management_link_is_opened(
    serve_factory, open_page
):
    server = serve_factory(UPLOADS="key", LISTING="key")
    page, console = open_page()
    open_upload_page(page, server.url)
    expect(page.locator("#upload-notice")).to_contain_text("need the admin key")
    drop(page, js_file("locked.png", image_bytes(seed=11)))
    expect(upload_row(page, "locked.png").get_by_role("alert")).to_contain_text(
        "Uploads on this server need the admin key."
    )
    page.get_by_role("tab", name="Images").click()
    expect(page.locator("#images-message")).to_contain_text(
        "The image list on this server is private"
    )
    expect(page.get_by_text("No images yet")).to_be_hidden()

    page.goto(f"{server.url}/upload.html#key={server.admin_key}")
    expect(page.locator("#upload-notice")).to_be_hidden()
    drop(page, js_file("unlocked.png", image_bytes(seed=12)))
    finished_url(upload_row(page, "unlocked.png"))
    page.get_by_role("tab", name="Images").click()
    expect(image_row(page, "unlocked.png")).to_be_visible()
    expect(page.locator("#images-message")).to_be_hidden()
    console.assert_clean(refused(401))


@pytest.fixture
def behind_nginx(tmp_path):
    """`imagehost up`: nginx in front of two workers, as deployed, with MAX_UPLOAD_MB=1."""
    running = start_stack("up", tmp_path / "up", WEB_SERVER_WORKERS="2", MAX_UPLOAD_MB="1")
    yield running
    stop_stack(running)


@pytest.mark.nginx
def test_the_ui_works_behind_nginx(behind_nginx, open_page):
    """Pages, modules and icons served by nginx with its CSP; uploads and the listing through it
    to the workers; nginx's own 413 shown like the server's."""
    server = behind_nginx
    page, console = open_page(f"{server.url}/")
    page.get_by_role("link", name="Upload images").click()
    expect(page.locator("#dropzone-hint")).to_contain_text("up to 1 MB")
    drop(page, js_file("through-nginx.png", image_bytes(seed=40)))
    url = finished_url(upload_row(page, "through-nginx.png"))
    assert requests.get(url, timeout=10).status_code == 200

    page.get_by_role("tab", name="Images").click()
    row = image_row(page, "through-nginx.png")
    expect(row.locator("img.thumb")).to_have_js_property("naturalWidth", 64)
    row.get_by_role("button", name="Delete through-nginx.png").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert requests.get(url, timeout=10).status_code == 404

    def larger_limit(route):
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "max_upload_bytes": 50 << 20})

    page.route("**/api/config", larger_limit)
    page.reload()
    expect(page.locator("#dropzone-hint")).to_contain_text("up to 50 MB")
    drop(page, js_file("oversized.png", noise_png((900, 900))))
    expect(upload_row(page, "oversized.png").get_by_role("alert")).to_contain_text("Too large.")
    console.assert_clean(refused(413))


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_violations(server, open_page, color_scheme):
    script = axe_script()
    need(
        "axe-core",
        script is not None,
        "axe-core's axe.min.js not found: pip install axe-playwright-python==0.1.8 "
        "(or set AXE_CORE_JS to an axe.min.js from npm's axe-core)",
    )
    uploaded(server.url, image_bytes(seed=13), "listed.png")
    # The page's CSP forbids inline scripts, which is how axe gets injected: bypass it here only.
    page, console = open_page(color_scheme=color_scheme, bypass_csp=True)

    page.goto(f"{server.url}/")
    expect(page.locator("#illustration")).to_be_visible()
    found = run_axe(page, script)
    assert found == [], describe(found)

    open_upload_page(page, server.url)
    drop(page, js_file("done.png", image_bytes(seed=14)), js_file("bad.txt", b"no", "text/plain"))
    finished_url(upload_row(page, "done.png"))
    expect(upload_row(page, "bad.txt").get_by_role("alert")).to_be_visible()
    found = run_axe(page, script)
    assert found == [], describe(found)

    page.get_by_role("tab", name="Images").click()
    expect(image_row(page, "listed.png")).to_be_visible()
    found = run_axe(page, script)
    assert found == [], describe(found)

    image_row(page, "done.png").get_by_role("button", name="Delete done.png").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    found = run_axe(page, script)
    assert found == [], describe(found)
    console.assert_clean()


@pytest.mark.parametrize("width", [1280, 375])
@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_screenshots_of_both_pages(server, open_page, color_scheme, width):
    """Writes tests/screenshots/{start,upload,images}-{scheme}-{width}.png for a person to see."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for n in range(3):
        uploaded(
            server.url, image_bytes("PNG", (640, 480), seed=20 + n), f"holiday-photo-{n + 1}.png"
        )
    page, console = open_page(color_scheme=color_scheme, width=width, height=900)
    suffix = f"{color_scheme}-{width}"

    page.goto(f"{server.url}/")
    page.wait_for_function(
        "() => { const i = document.getElementById('illustration');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    page.screenshot(path=SCREENSHOTS / f"start-{suffix}.png", full_page=True)

    open_upload_page(page, server.url)
    drop(
        page,
        js_file("sunset over the bay.png", image_bytes("PNG", (800, 600), seed=30)),
        js_file("notes.txt", b"not an image", "text/plain"),
    )
    finished_url(upload_row(page, "sunset over the bay.png"))
    expect(upload_row(page, "notes.txt").get_by_role("alert")).to_be_visible()
    page.mouse.move(0, 0)
    page.screenshot(path=SCREENSHOTS / f"upload-{suffix}.png", full_page=True)

    page.get_by_role("tab", name="Images").click()
    expect(image_rows(page)).to_have_count(4)
    for thumb in page.locator("img.thumb").all():
        expect(thumb).to_have_js_property("complete", True)
    page.mouse.move(0, 0)
    page.screenshot(path=SCREENSHOTS / f"images-{suffix}.png", full_page=True)
    for name in ("start", "upload", "images"):
        assert (SCREENSHOTS / f"{name}-{suffix}.png").stat().st_size > 0
    console.assert_clean()
