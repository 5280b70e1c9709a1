"""Sharing (issue 13) through the API of a real `serve`, in both storage modes: share pages and
their link previews as a third-party parser reads them, oEmbed, albums and the rights to them,
search, and the ShareX file used the way ShareX uses it. nginx's side (the page cache, the
access log) is at the end, through `up`."""

import re
from urllib.parse import quote, urlsplit

import extruct
import lxml.html
import pytest
import requests
from conftest import STACK_MODES
from support.http import assert_error, listed, uploaded
from support.images import image_bytes
from support.stack import start_stack, stop_stack, wait_for

from imagehost import headers
from imagehost.images import THUMBNAIL_MAX_SIDE

# markup, quotes, an ampersand, a right-to-left name and a bidi override (dropped on upload)
HOSTILE = "\"><script>alert(1)</script><img src=x onerror=alert(2)> & 'ü' שלום\u202e.png"


def preview(html: str, url: str) -> dict:
    """What a link-preview bot reads off a page: Open Graph (by extruct, a third-party parser),
    the Twitter card and the oEmbed discovery link (by lxml)."""
    graph = extruct.extract(html, base_url=url, syntaxes=["opengraph"], uniform=True)
    tree = lxml.html.fromstring(html)
    meta = {m.get("name"): m.get("content") for m in tree.iter("meta") if m.get("name")}
    oembed = tree.xpath('//link[@rel="alternate"][@type="application/json+oembed"]/@href')
    return {"og": graph["opengraph"][0], "meta": meta, "oembed": oembed, "tree": tree}


def page(url: str) -> requests.Response:
    resp = requests.get(url, timeout=10)
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8", resp.headers
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    return resp


def assert_inert(html: str) -> None:
    """No markup of the hostile name survives: it is text, every time it is written."""
    assert "<script>alert" not in html and "<img src=x" not in html


def album_of(url: str, images: list[dict], title: str | None = None, **headers: str):
    body = {
        "images": [{"filename": i["filename"], "delete_token": i["delete_token"]} for i in images]
    }
    if title is not None:
        body["title"] = title
    return requests.post(f"{url}/api/albums", json=body, headers=headers, timeout=10)


def admin(server) -> dict:
    return {"Authorization": f"Bearer {server.admin_key}"}


# --- share pages -----------------------------------------------------------------------------


def test_share_page_carries_a_link_preview_of_escaped_values(server):
    image = uploaded(server.url, image_bytes("PNG", (640, 480), seed=3), HOSTILE)
    resp = page(image["share_url"])
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == headers.SHARED_PAGE_CACHE
    assert_inert(resp.text)
    seen = preview(resp.text, image["share_url"])
    og = seen["og"]
    name = image["original_name"]  # HOSTILE, but for the quote: requests sends it as %22
    assert name.endswith("<script>alert(1)</script><img src=x onerror=alert(2)> & 'ü' שלום.png")
    assert og["og:title"] == name  # escaped in the page, the same text once parsed
    assert og["@type"] == "website" and og["og:url"] == image["share_url"]  # og:type
    assert og["og:image"] == image["url"] and image["url"].startswith("http://127.0.0.1:")
    assert (og["og:image:width"], og["og:image:height"]) == ("640", "480")
    assert og["og:image:type"] == "image/png"
    assert seen["meta"]["twitter:card"] == "summary_large_image"
    assert re.fullmatch(r"#[0-9a-f]{6}", seen["meta"]["theme-color"])
    # the page shows the image and links the original and a download, no script needed
    tree = seen["tree"]
    assert tree.xpath("//script") == []
    assert tree.xpath("//img[@class='share-image']/@src") == [image["url"]]
    assert tree.xpath("//a[@download]/@href") == [image["url"]]
    assert name in tree.xpath("string(//h1)")
    # the oEmbed discovery link answers a photo of this image
    [link] = seen["oembed"]
    embed = requests.get(link, timeout=10)
    assert embed.status_code == 200, embed.text
    assert embed.json()["type"] == "photo" and embed.json()["url"] == image["url"]
    assert embed.json()["title"] == name


def test_share_page_of_a_missing_or_deleted_image_is_a_friendly_404(server):
    for bad in ("AAAAAAAAAAAAAAAA", "nothing-here", "%3Cscript%3E", "x" * 128):
        resp = page(f"{server.url}/i/{bad}")
        assert resp.status_code == 404
        assert "not here" in resp.text and "<script>" not in resp.text
    image = uploaded(server.url, image_bytes(seed=4), "gone.png")
    assert page(image["share_url"]).status_code == 200
    deleted = requests.delete(
        image["delete_url"], headers={"X-Delete-Token": image["delete_token"]}, timeout=10
    )
    assert deleted.status_code == 204
    gone = page(image["share_url"])
    assert gone.status_code == 404 and "gone.png" not in gone.text


# --- oEmbed ----------------------------------------------------------------------------------


def oembed(server, url: str, **params) -> requests.Response:
    return requests.get(f"{server.url}/api/oembed", params={"url": url, **params}, timeout=10)


def test_oembed_answers_a_photo_within_the_size_asked_for(server):
    image = uploaded(server.url, image_bytes("PNG", (1200, 600), seed=5), "wide.png")
    for url in (image["share_url"], image["url"]):
        full = oembed(server, url).json()
        assert (full["version"], full["type"]) == ("1.0", "photo")
        assert (full["url"], full["width"], full["height"]) == (image["url"], 1200, 600)
        assert full["thumbnail_url"] == image["thumbnail_url"]
        assert full["provider_url"] == f"{server.url}/"
    # the thumbnail fits (its longest side is THUMBNAIL_MAX_SIDE)
    box = THUMBNAIL_MAX_SIDE + 10
    small = oembed(server, image["share_url"], maxwidth=str(box)).json()
    assert small["url"] == image["thumbnail_url"] and small["width"] == THUMBNAIL_MAX_SIDE
    assert (small["width"], small["height"]) == (
        small["thumbnail_width"],
        small["thumbnail_height"],
    )
    # smaller than the thumbnail: the original, with the size to show it at
    tiny = oembed(server, image["share_url"], maxwidth="100", maxheight="100").json()
    assert (tiny["url"], tiny["width"], tiny["height"]) == (image["url"], 100, 50)
    thumb = requests.get(small["url"], timeout=10)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"


def test_oembed_refusals(server):
    image = uploaded(server.url, image_bytes(seed=6), "a.png")
    assert_error(oembed(server, image["share_url"], format="xml"), 501, "format_not_offered")
    assert_error(oembed(server, f"{server.url}/i/AAAAAAAAAAAA"), 404, "not_found")
    assert_error(oembed(server, "https://elsewhere.example/upload.html"), 404, "not_found")
    assert_error(oembed(server, image["share_url"], maxwidth="0"), 400, "invalid_parameter")
    assert_error(oembed(server, image["share_url"], maxwidth="1e3"), 400, "invalid_parameter")
    no_url = requests.get(f"{server.url}/api/oembed", timeout=10)
    assert_error(no_url, 400, "invalid_parameter")


# --- albums ----------------------------------------------------------------------------------


def test_album_from_proven_images_has_a_page_with_a_preview(server):
    images = [
        uploaded(server.url, image_bytes("PNG", (320 + n, 200), seed=10 + n), f"a{n}.png")
        for n in range(3)
    ]
    resp = album_of(server.url, images, title=f"  Trip {HOSTILE}\n")
    assert resp.status_code == 201, resp.text
    album = resp.json()
    assert resp.headers["Location"] == album["api_url"]
    assert album["title"] == "Trip " + HOSTILE.replace("\u202e", "")  # spaces folded, bidi dropped
    assert album["count"] == 3 and [i["filename"] for i in album["images"]] == [
        i["filename"] for i in images
    ]
    assert album["url"] == f"{server.url}/a/{album['id']}" and len(album["id"]) >= 16
    token = album.pop("delete_token")
    assert len(token) >= 20
    fetched = requests.get(album["api_url"], timeout=10)
    assert fetched.status_code == 200 and fetched.json() == album

    html = page(album["url"])
    assert html.status_code == 200 and html.headers["Cache-Control"] == headers.SHARED_PAGE_CACHE
    assert_inert(html.text)
    seen = preview(html.text, album["url"])
    assert seen["og"]["og:title"] == album["title"]
    assert seen["og"]["og:image"] == images[0]["url"]  # the first image is the preview
    assert seen["og"]["og:description"] == "3 images"
    assert seen["og"]["og:url"] == album["url"]
    links = seen["tree"].xpath("//a[@class='album-link']")
    assert [a.get("href") for a in links] == [i["share_url"] for i in images]
    assert [a.get("data-full") for a in links] == [i["url"] for i in images]
    thumbs = seen["tree"].xpath("//img[@class='album-thumb']/@src")
    assert thumbs == [i["thumbnail_url"] for i in images]
    [link] = seen["oembed"]
    embed = requests.get(link, timeout=10).json()
    assert embed["url"] == images[0]["url"] and embed["title"] == album["title"]
    # listed nowhere: there is no route that lists albums
    assert_error(requests.get(f"{server.url}/api/albums", timeout=10), 405, "method_not_allowed")


def test_making_an_album_needs_the_right_to_each_image(server):
    mine = uploaded(server.url, image_bytes(seed=20), "mine.png")
    theirs = uploaded(server.url, image_bytes(seed=21), "theirs.png")
    wrong = {**theirs, "delete_token": mine["delete_token"]}
    assert_error(album_of(server.url, [mine, wrong]), 403, "forbidden")
    no_token = {"images": [{"filename": mine["filename"]}]}
    refused = requests.post(f"{server.url}/api/albums", json=no_token, timeout=10)
    assert_error(refused, 403, "forbidden")
    missing = {**mine, "filename": "AAAAAAAAAAAAAAAA.png"}
    assert_error(album_of(server.url, [missing]), 404, "not_found")
    for body in (b"", b"[]", b"{", b'{"images": []}', b'{"images": [1]}', b'{"x": 1}'):
        resp = requests.post(f"{server.url}/api/albums", data=body, timeout=10)
        assert_error(resp, 400, "invalid_body")
    too_long = album_of(server.url, [mine], title="x" * 201)
    assert_error(too_long, 400, "invalid_body")
    # nothing was made by the refusals: the admin's album is the first and only one
    made = requests.post(
        f"{server.url}/api/albums",
        json={"images": [{"filename": theirs["filename"]}]},
        headers=admin(server),
        timeout=10,
    )
    assert made.status_code == 201, made.text
    assert [i["filename"] for i in made.json()["images"]] == [theirs["filename"]]
    assert made.json()["title"] == ""
    untitled = page(made.json()["url"])
    assert "Album of 1 image" in untitled.text


def test_changing_an_album_needs_its_token_and_keeps_the_order_asked_for(server):
    images = [uploaded(server.url, image_bytes(seed=30 + n), f"c{n}.png") for n in range(4)]
    made = album_of(server.url, images[:3], title="first").json()
    url, token = made["api_url"], made["delete_token"]
    names = [i["filename"] for i in images]

    def patch(body, **headers):
        return requests.patch(url, json=body, headers=headers, timeout=10)

    assert_error(patch({"title": "x"}), 401, "auth_required")
    assert_error(
        patch({"title": "x"}, **{"X-Delete-Token": images[0]["delete_token"]}), 403, "forbidden"
    )
    own = {"X-Delete-Token": token}
    changed = patch({"title": "second", "order": [names[2], names[0], names[1]]}, **own)
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "second"
    assert [i["filename"] for i in changed.json()["images"]] == [names[2], names[0], names[1]]
    # adding proves the right to the new image too
    fourth = {"filename": names[3], "delete_token": images[0]["delete_token"]}
    assert_error(patch({"add": [fourth]}, **own), 403, "forbidden")
    fourth["delete_token"] = images[3]["delete_token"]
    added = patch({"add": [fourth], "remove": [names[0]]}, **own).json()
    assert [i["filename"] for i in added["images"]] == [names[2], names[1], names[3]]
    assert_error(patch({"order": [names[1]]}, **own), 400, "invalid_body")
    assert_error(patch({"colour": "red"}, **own), 400, "invalid_body")
    assert requests.get(url, timeout=10).json()["images"] == added["images"]
    # the admin key changes any album
    renamed = patch({"title": "third"}, **admin(server))
    assert renamed.status_code == 200 and renamed.json()["title"] == "third"


def test_deleting_an_image_takes_it_out_of_its_albums_and_an_album_leaves_its_images(server):
    images = [uploaded(server.url, image_bytes(seed=40 + n), f"d{n}.png") for n in range(2)]
    album = album_of(server.url, images).json()
    other = album_of(server.url, images[:1]).json()
    gone = requests.delete(
        images[0]["delete_url"], headers={"X-Delete-Token": images[0]["delete_token"]}, timeout=10
    )
    assert gone.status_code == 204
    left = requests.get(album["api_url"], timeout=10).json()
    assert [i["filename"] for i in left["images"]] == [images[1]["filename"]]
    assert left["count"] == 1 and "1 image" in page(album["url"]).text
    empty = requests.get(other["api_url"], timeout=10).json()
    assert empty["images"] == [] and empty["count"] == 0
    assert page(other["url"]).status_code == 200  # an empty album is still its owner's to delete

    no_right = requests.delete(album["api_url"], timeout=10)
    assert_error(no_right, 401, "auth_required")
    deleted = requests.delete(
        album["api_url"], headers={"X-Delete-Token": album["delete_token"]}, timeout=10
    )
    assert deleted.status_code == 204
    assert_error(requests.get(album["api_url"], timeout=10), 404, "not_found")
    assert page(album["url"]).status_code == 404
    assert requests.get(images[1]["url"], timeout=10).status_code == 200  # the image stays
    assert [i["filename"] for i in listed(server.url)] == [images[1]["filename"]]


# --- search ----------------------------------------------------------------------------------


def test_search_by_original_name_is_paged_like_the_list(server):
    names = ["Holiday 1.png", "holiday 2.png", "HOLIDAY_3.png", "work.png", "100%.png"]
    for n, name in enumerate(names):
        uploaded(server.url, image_bytes(seed=50 + n), name)

    def search(q: str, **params) -> requests.Response:
        return requests.get(f"{server.url}/api/upload/", params={"q": q, **params}, timeout=10)

    found = search("holiday")
    assert [i["original_name"] for i in found.json()] == names[2::-1]  # newest first
    assert found.headers["X-Total-Count"] == "3"
    assert search("%").headers["X-Total-Count"] == "1"  # taken literally, not as a wildcard
    assert [i["original_name"] for i in search("_").json()] == ["HOLIDAY_3.png"]
    assert search("nothing").json() == [] and search("nothing").headers["X-Total-Count"] == "0"
    # paging keeps the search
    first = search("holiday", limit="2")
    assert len(first.json()) == 2
    next_url = re.fullmatch(r"<(.+)>; rel=\"next\"", first.headers["Link"]).group(1)
    assert f"q={quote('holiday')}" in next_url
    rest = requests.get(next_url, timeout=10)
    assert [i["original_name"] for i in rest.json()] == ["Holiday 1.png"]
    assert "Link" not in rest.headers
    # a search's ETag is its own
    plain = requests.get(f"{server.url}/api/upload/", timeout=10)
    assert plain.headers["ETag"] != found.headers["ETag"]
    assert plain.headers["X-Total-Count"] == "5"
    cached = requests.get(
        f"{server.url}/api/upload/",
        params={"q": "holiday"},
        headers={"If-None-Match": found.headers["ETag"]},
        timeout=10,
    )
    assert cached.status_code == 304


# --- ShareX ----------------------------------------------------------------------------------


def sharex_upload(uploader: dict, data: bytes, name: str) -> tuple[requests.Response, dict]:
    """Do what ShareX does with a custom uploader: the request it describes, then its {json:…}
    fields resolved from the answer (URL, ThumbnailURL, DeletionURL, ErrorMessage)."""
    assert uploader["Body"] == "MultipartFormData" and uploader["RequestMethod"] == "POST"
    resp = requests.post(
        uploader["RequestURL"],
        files={uploader["FileFormName"]: (name, data, "image/png")},
        headers=uploader.get("Headers", {}),
        timeout=30,
    )
    answer = resp.json()

    def resolve(template: str) -> str:
        return re.sub(r"\{json:([a-z_]+)\}", lambda m: str(answer.get(m.group(1), "")), template)

    fields = ("URL", "ThumbnailURL", "DeletionURL", "ErrorMessage")
    return resp, {f: resolve(uploader[f]) for f in fields}


def test_sharex_file_uploads_and_links_the_delete_page(server):
    resp = requests.get(f"{server.url}/api/sharex.sxcu", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="127.0.0.1-' + (
        f'{server.port}.sxcu"'
    )
    uploader = resp.json()
    # ShareX treats {json:…} as syntax only in files whose Version is above 13.7.1
    assert tuple(int(p) for p in uploader["Version"].split(".")) > (13, 7, 1)
    assert uploader["DestinationType"] == "ImageUploader"
    assert uploader["RequestURL"] == f"{server.url}/api/upload/"
    assert "Headers" not in uploader
    stored, fields = sharex_upload(uploader, image_bytes(seed=60), "screenshot.png")
    assert stored.status_code == 201
    image = stored.json()
    assert fields["URL"] == image["url"] and fields["ThumbnailURL"] == image["thumbnail_url"]
    served = requests.get(fields["URL"], timeout=10)
    assert served.status_code == 200 and served.content == image_bytes(seed=60)
    thumb = requests.get(fields["ThumbnailURL"], timeout=10)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
    assert fields["DeletionURL"] == image["delete_page_url"]
    deletion = urlsplit(fields["DeletionURL"])
    assert deletion.path == "/delete.html" and deletion.fragment.endswith(image["delete_token"])
    assert requests.get(fields["DeletionURL"], timeout=10).status_code == 200  # the page
    refused, fields = sharex_upload(uploader, b"not an image", "notes.txt")
    assert refused.status_code == 415 and fields["ErrorMessage"] == refused.json()["detail"]
    assert fields["URL"] == ""


def test_sharex_file_carries_the_admin_key_only_when_asked_with_it(serve_factory):
    server = serve_factory(UPLOADS="key")
    anonymous = requests.get(f"{server.url}/api/sharex.sxcu", timeout=10).json()
    assert "Headers" not in anonymous and server.admin_key not in str(anonymous)
    refused, fields = sharex_upload(anonymous, image_bytes(seed=61), "a.png")
    assert refused.status_code == 401 and fields["ErrorMessage"]
    wrong = requests.get(
        f"{server.url}/api/sharex.sxcu", headers={"Authorization": "Bearer nope"}, timeout=10
    ).json()
    assert "Headers" not in wrong
    keyed = requests.get(f"{server.url}/api/sharex.sxcu", headers=admin(server), timeout=10)
    assert keyed.headers["Cache-Control"] == "no-store"
    uploader = keyed.json()
    assert uploader["Headers"] == {"Authorization": f"Bearer {server.admin_key}"}
    stored, fields = sharex_upload(uploader, image_bytes(seed=62), "b.png")
    assert stored.status_code == 201 and requests.get(fields["URL"], timeout=10).ok


# --- through nginx ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=STACK_MODES)
def stack(request, tmp_path_factory, mode_settings):
    with mode_settings(request.param) as settings:
        running = start_stack("up", tmp_path_factory.mktemp(f"share-{request.param}"), **settings)
        yield running
        stop_stack(running)


@pytest.mark.nginx
def test_nginx_keeps_pages_briefly_and_a_delete_shows_within_the_bound(stack):
    image = uploaded(stack.url, image_bytes(seed=70), "cached.png")
    assert page(image["share_url"]).status_code == 200
    requests.delete(
        image["delete_url"], headers={"X-Delete-Token": image["delete_token"]}, timeout=10
    ).raise_for_status()
    assert requests.get(image["url"], timeout=10).status_code == 404  # the file at once
    # the page: nginx answers from its cache for up to SHARED_PAGE_MAX_AGE_S
    assert page(image["share_url"]).status_code == 200
    bound = headers.SHARED_PAGE_MAX_AGE_S + 5
    wait_for(lambda: page(image["share_url"]).status_code == 404, bound, "the page to go")
    # oEmbed is the API: answered fresh
    assert_error(oembed(stack, image["share_url"]), 404, "not_found")


@pytest.mark.nginx
def test_delete_tokens_stay_out_of_the_logs(stack):
    image = uploaded(stack.url, image_bytes(seed=71), "secret.png")
    token = image["delete_token"]
    # what a browser does with the delete page: the page (the fragment is never sent), then
    # the metadata and the DELETE with the token in a header
    assert requests.get(image["delete_page_url"], timeout=10).status_code == 200
    assert requests.get(image["delete_url"], timeout=10).status_code == 200
    gone = requests.delete(image["delete_url"], headers={"X-Delete-Token": token}, timeout=10)
    assert gone.status_code == 204
    album = album_of(stack.url, [uploaded(stack.url, image_bytes(seed=72), "in-album.png")])
    album_token = album.json()["delete_token"]
    requests.delete(
        album.json()["api_url"], headers={"X-Delete-Token": album_token}, timeout=10
    ).raise_for_status()
    access = stack.log_dir / "nginx" / "access.log"

    # nginx buffers the lines of files and of proxied requests apart (flush=1s): wait for both
    def logged() -> bool:
        text = access.read_text()
        return "DELETE /api/albums/" in text and "GET /delete.html " in text

    wait_for(logged, 10, "the access log lines")  # the page was asked for, without its fragment
    for log in (access, stack.log_dir / "app.log"):
        text = log.read_text()
        assert token not in text and album_token not in text, log
