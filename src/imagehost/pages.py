"""What is shared outside the API: the share page /i/{id}, the album page /a/{id}, oEmbed for
both, and the ShareX custom-uploader file.

The pages are rendered here (templates/*.html, string.Template) so that they carry link
previews — Open Graph, Twitter card, oEmbed discovery — for the bots of chat apps, which run
no script. Every value put into a page is HTML-escaped here, once, and URLs are absolute.
Bots fetch these pages often: each is one catalog read, sent with headers.shared_page_cache(),
which nginx's page cache follows too, so a deleted image's page is gone everywhere within
twice SHARED_PAGE_MAX_AGE_S (nginx, then a browser).
Handlers take the api.App, like api's own.
"""

import datetime
import html
import string
from importlib import resources
from urllib.parse import quote, urlsplit

from . import formats, headers, images, rights
from .catalog.base import Album, ImageRow
from .errors import FormatNotOffered, InvalidParameter, NotFound
from .messages import Request, Response
from .views import album_url, fit_within, image_url, share_url, size_in_words, thumbnail_url

THEME_COLOR = "#1f5fd6"  # base.css's --accent
SITE_NAME = "Image Host"
SHAREX_VERSION = "17.0.0"  # ShareX reads {json:…} as syntax only from files newer than 13.7.1


def _template(name: str) -> string.Template:
    return string.Template((resources.files("imagehost") / "templates" / name).read_text())


_SHARE, _ALBUM, _MISSING = (_template(n) for n in ("share.html", "album.html", "missing.html"))
PAGE_HEADERS = {**headers.PAGE, "Content-Type": "text/html; charset=utf-8"}


def share_page(app, request: Request) -> Response:
    row = app.catalog.get_by_id(request.params["page_id"])
    if row is None:
        return _missing("This image is not here")
    base = request.base_url
    described = _describe(row)
    values = {
        "title": row.original_name,
        "description": described,
        "meta": described,
        "page_url": share_url(base, row.id),
        "image_url": image_url(base, row),
        "image_type": row.content_type,
        "width": row.width,
        "height": row.height,
        "download_name": row.original_name,
        "oembed_url": _oembed_link(base, share_url(base, row.id)),
        "theme_color": THEME_COLOR,
    }
    return _page(200, _SHARE, values, _max_age([row]))


def album_page(app, request: Request) -> Response:
    album = app.catalog.album(request.params["page_id"])
    if album is None:
        return _missing("This album is not here")
    base = request.base_url
    first = album.images[0] if album.images else None
    image_meta = ""
    if first is not None:
        tags = {
            "og:image": image_url(base, first),
            "og:image:type": first.content_type,
            "og:image:width": first.width,
            "og:image:height": first.height,
            "twitter:image": image_url(base, first),
        }
        image_meta = "\n".join(
            f'  <meta {"name" if key.startswith("twitter") else "property"}="{key}" '
            f'content="{_e(value)}">'
            for key, value in tags.items()
        )
    values = {
        "title": _album_title(album),
        "description": _count(album),
        "page_url": album_url(base, album.row.id),
        "oembed_url": _oembed_link(base, album_url(base, album.row.id)),
        "theme_color": THEME_COLOR,
    }
    escaped = {k: _e(v) for k, v in values.items()}
    escaped["image_meta"] = image_meta
    escaped["items"] = "\n".join(_album_item(base, row) for row in album.images)
    return _html(200, _ALBUM.substitute(escaped), _max_age(album.images))


def oembed(app, request: Request) -> Response:
    """oEmbed (oembed.com) for a share page, an album page or an image URL: type photo."""
    if (request.query_value("format") or "json") != "json":
        raise FormatNotOffered()
    url = request.query_value("url")
    if not url:
        raise InvalidParameter("'url' is required: a share page, album page or image URL.")
    max_w = _dimension(request, "maxwidth")
    max_h = _dimension(request, "maxheight")
    path = urlsplit(url).path
    title, row = _embedded(app, path)
    base = request.base_url
    photo_url, width, height = image_url(base, row), row.width, row.height
    thumb_w, thumb_h = fit_within(row.width, row.height, images.THUMBNAIL_MAX_SIDE)
    if (max_w or max_h) and (width > (max_w or width) or height > (max_h or height)):
        if thumb_w <= (max_w or thumb_w) and thumb_h <= (max_h or thumb_h):
            photo_url, width, height = thumbnail_url(base, row.filename), thumb_w, thumb_h
        else:
            width, height = fit_within(width, height, max_w or width, max_h or height)
    answer = {
        "version": "1.0",
        "type": "photo",
        "title": title,
        "url": photo_url,
        "width": width,
        "height": height,
        "provider_name": SITE_NAME,
        "provider_url": f"{base}/",
        "thumbnail_url": thumbnail_url(base, row.filename),
        "thumbnail_width": thumb_w,
        "thumbnail_height": thumb_h,
        "cache_age": _max_age([row]),
    }
    return Response.json(
        answer, headers={"Cache-Control": headers.shared_page_cache(_max_age([row]))}
    )


def sharex(app, request: Request) -> Response:
    """A ShareX custom-uploader file for this server (double-click imports it). With
    UPLOADS=key it carries the admin key, but only when asked for with the key."""
    base = request.base_url
    host = urlsplit(base).netloc
    uploader = {
        "Version": SHAREX_VERSION,
        "Name": host,
        "DestinationType": "ImageUploader",
        "RequestMethod": "POST",
        "RequestURL": f"{base}/api/upload/",
        "Body": "MultipartFormData",
        "FileFormName": "file",
        "URL": "{json:url}",
        "ThumbnailURL": "{json:thumbnail_url}",
        "DeletionURL": "{json:delete_page_url}",
        "ErrorMessage": "{json:detail}",
    }
    authorization = request.header("Authorization")
    if app.settings.uploads == "key" and rights.is_admin(authorization, app.admin_key):
        uploader["Headers"] = {"Authorization": f"Bearer {app.admin_key}"}
    safe_host = "".join(c if c.isalnum() or c in ".-" else "-" for c in host) or "imagehost"
    download = {
        "Content-Disposition": f'attachment; filename="{safe_host}.sxcu"',
        "Cache-Control": "no-store",
        "Vary": "Authorization",
    }
    return Response.json(uploader, headers=download)


def _embedded(app, path: str) -> tuple[str, ImageRow]:
    """(title, the image to show) for the path of a page or image URL; 404 otherwise."""
    kind, _, rest = path.strip("/").partition("/")
    row = None
    title = ""
    if kind == "i":
        row = app.catalog.get_by_id(rest)
    elif kind == "images" and "/" not in rest:
        row = app.catalog.get(rest)
    elif kind == "a":
        album = app.catalog.album(rest)
        if album is not None and album.images:
            row, title = album.images[0], _album_title(album)
    if row is None:
        raise NotFound("That URL is not an image, share page or album of this server.")
    return title or row.original_name, row


def _count(album: Album) -> str:
    count = len(album.images)
    return f"{count} image{'' if count == 1 else 's'}"


def _album_title(album: Album) -> str:
    """Its title, or what it holds when it has none."""
    return album.row.title or f"Album of {_count(album)}"


def _album_item(base: str, row: ImageRow) -> str:
    thumb_w, thumb_h = fit_within(row.width, row.height, images.THUMBNAIL_MAX_SIDE)
    name = _e(row.original_name)
    return (
        f'      <li class="album-item"><a class="album-link" href="{_e(share_url(base, row.id))}"'
        f' data-full="{_e(image_url(base, row))}" data-name="{name}"'
        f' data-width="{row.width}" data-height="{row.height}">'
        f'<img class="album-thumb" src="{_e(thumbnail_url(base, row.filename))}" alt="{name}"'
        f' width="{thumb_w}" height="{thumb_h}" loading="lazy"></a></li>'
    )


def _describe(row: ImageRow) -> str:
    kind = formats.BY_EXT[row.filename.rsplit(".", 1)[1]].name.upper()
    size = size_in_words(row.size)
    return f"{row.width} × {row.height} {kind}, {size}, uploaded {row.created_at[:10]}"


def _oembed_link(base: str, page: str) -> str:
    return f"{base}/api/oembed?url={quote(page, safe='')}&format=json"


def _dimension(request: Request, name: str) -> int | None:
    raw = request.query_value(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 100_000:
        raise InvalidParameter(f"'{name}' must be a whole number of pixels.")
    return int(raw)


def _max_age(rows: list[ImageRow]) -> int:
    """How long a page of these images may be kept: SHARED_PAGE_MAX_AGE_S, or less when one
    of them expires sooner (so no cache shows it past its expiry)."""
    now = datetime.datetime.now(datetime.UTC)
    age = headers.SHARED_PAGE_MAX_AGE_S
    for row in rows:
        if row.expires_at is not None:
            left = datetime.datetime.fromisoformat(row.expires_at) - now
            age = min(age, max(0, int(left.total_seconds())))
    return age


def _missing(heading: str) -> Response:
    """A friendly HTML 404 (a person followed a link), not the API's JSON."""
    return _page(404, _MISSING, {"heading": heading})


def _page(
    status: int,
    template: string.Template,
    values: dict,
    max_age: int = headers.SHARED_PAGE_MAX_AGE_S,
) -> Response:
    return _html(status, template.substitute({k: _e(v) for k, v in values.items()}), max_age)


def _html(status: int, text: str, max_age: int = headers.SHARED_PAGE_MAX_AGE_S) -> Response:
    return Response(
        status, text.encode(), {**PAGE_HEADERS, "Cache-Control": headers.shared_page_cache(max_age)}
    )


def _e(value) -> str:
    return html.escape(str(value), quote=True)
