"""The route table and its thin handlers: parse input → call ingest/store/catalog → respond.

Handlers raise errors.ApiError subclasses and never write error responses themselves.
"""

import dataclasses
import hashlib
import logging
import mimetypes
import time
from pathlib import Path
from urllib.parse import quote

from . import albums, expiry, formats, headers, limits, metrics, pages, rights, uploads
from .catalog import open_catalog
from .config import Settings
from .errors import (
    ApiError,
    InvalidParameter,
    MissingFile,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    StorageQuota,
)
from .ingest import ImageLimits, Ingest
from .messages import Request, Response, Stream
from .openapi import spec
from .routing import Route, Router
from .store import Opened, open_store
from .store.keys import thumbnail_type
from .sweeper import SWEEP_INTERVAL_S, Sweeper
from .views import delete_page_url, image_json

log = logging.getLogger("imagehost.api")

WEB_DIR = Path(__file__).resolve().parent / "web"
MAX_PAGE = 200
DEFAULT_PAGE = 50

IMAGE_HEADERS = {
    **headers.IMAGE,
    "Cache-Control": headers.IMAGE_CACHE,
    "Accept-Ranges": "none",  # always the whole image, as nginx (max_ranges 0)
}
PAGE_HEADERS = {**headers.PAGE, "Cache-Control": headers.PAGE_CACHE}

PARAMS = {
    "filename": formats.IMAGE_NAME_PATTERN,
    "thumbname": formats.THUMB_NAME_PATTERN,
    "album_id": formats.ID_PATTERN,
    # a page's id: anything, so that a mistyped link gets the friendly "not here" page
    "page_id": r"[^/]{1,128}",
    # frontend files: no dot segments, nothing under api/, images/ or the pages
    "asset": r"(?!api/|images/|i/|a/)"
    r"(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*/){0,3}[A-Za-z0-9_-][A-Za-z0-9_.-]*",
}


def _routes() -> list[Route]:
    return [
        # anyone
        Route("GET", "/api/health", health, "Liveness and readiness"),
        Route("GET", "/api/config", client_config, "What the upload page needs to know"),
        Route("GET", "/api/openapi.json", openapi, "This API's OpenAPI 3.1 description"),
        # the admin key or METRICS_TOKEN
        Route("GET", "/api/metrics", prometheus, "Prometheus metrics of this node"),
        Route("GET", "/api/sharex.sxcu", pages.sharex, "A ShareX custom uploader for this server"),
        Route("GET", "/api/oembed", pages.oembed, "oEmbed for a share page, album or image"),
        # UPLOADS policy
        Route("POST", "/api/upload/", upload, "Upload one image"),
        # LISTING policy
        Route("GET", "/api/upload/", list_images, "List images, newest first"),
        # knowing the name is knowing the URL, so one image's metadata is not behind LISTING
        Route("GET", "/api/upload/{filename}", image_metadata, "One image's metadata"),
        # its delete token or the admin key
        Route("DELETE", "/api/upload/{filename}", delete_image, "Delete an image"),
        # albums: anyone with the id sees one; its token or the admin key changes it
        Route("POST", "/api/albums", albums.create_album, "Make an album of images"),
        Route("GET", "/api/albums/{album_id}", albums.get_album, "An album and its images"),
        Route("PATCH", "/api/albums/{album_id}", albums.change_album, "Change an album"),
        Route("DELETE", "/api/albums/{album_id}", albums.delete_album, "Delete an album"),
        # pages with link previews (HTML)
        Route("GET", "/i/{page_id}", pages.share_page, "An image's share page"),
        Route("GET", "/a/{page_id}", pages.album_page, "An album's page"),
        # files: nginx serves these itself in `up`; here for `serve`
        Route("GET", "/images/{filename}", image_file, "The stored image"),
        Route("GET", "/images/thumbs/{thumbname}", thumbnail_file, "Its thumbnail (JPEG or WebP)"),
        Route("GET", "/", page, ""),
        Route("GET", "/{asset}", page, ""),
    ]


class App:
    """Everything a request handler needs: settings, store, catalog, ingest, admin key, routes.

    Also starts this process's delete sweeper (a daemon thread, every `sweep_interval_s`; one
    sweeper at a time runs in the installation, see sweeper.py); None starts none. `edge`: no
    nginx in front (serve), so this process applies the per-client upload limits itself."""

    def __init__(
        self,
        settings: Settings,
        sweep_interval_s: float | None = SWEEP_INTERVAL_S,
        edge: bool = False,
    ):
        self.settings = settings
        self.store = open_store(settings)  # ConfigError when the bucket does not answer
        self.catalog = open_catalog(settings)
        self.ingest = Ingest(self.store, self.catalog, ImageLimits.from_settings(settings))
        self.admin_key = rights.load_admin_key(settings, self.catalog)
        self.router = Router(_routes(), PARAMS)
        self.body_limit_bytes = uploads.body_limit_bytes(settings.max_upload_bytes)
        self.limiter: limits.UploadLimiter | None = None
        if edge:
            s = settings
            self.limiter = limits.UploadLimiter(s.upload_rate, s.upload_burst, s.upload_connections)
        self.sweeper: Sweeper | None = None
        if sweep_interval_s is not None:
            self.sweeper = Sweeper(self.catalog, self.store, sweep_interval_s)
            self.sweeper.start()

    def handle(self, request: Request) -> Response:
        """Route and answer `request`, recording it in the metrics by route template."""
        start = time.perf_counter()
        route, status, code = "unmatched", 500, "internal_error"  # unless it ends otherwise
        try:
            match = self.router.match(request.method, request.path)
            route = match.route.pattern if match.route.summary else "frontend"
            request.params = match.params
            response = match.route.handler(self, request)
            status, code = response.status, None
            return response
        except ApiError as exc:
            status, code = exc.status, exc.code
            raise
        finally:
            metrics.request_done(route, request.method, status, time.perf_counter() - start, code)


def health(app: App, request: Request) -> Response:
    try:
        app.catalog.ping()
        app.store.probe()
    except (OSError, ApiError) as exc:
        log.error("not ready: %s", type(exc).__name__)
        raise ServiceUnavailable("The catalog or the image store is not reachable.") from None
    return Response.json(
        {"status": "ok", "catalog": "ok", "store": "ok"}, headers={"Cache-Control": "no-store"}
    )


def client_config(app: App, request: Request) -> Response:
    s = app.settings
    return Response.json(
        {
            "max_upload_bytes": s.max_upload_bytes,
            "max_upload_mb": s.max_upload_mb,
            "max_image_pixels": s.max_image_pixels,
            "allowed_formats": list(s.allowed_formats),
            # what a browser may call such files: HEIC too, which is stored as JPEG
            "allowed_types": list(formats.upload_types(s.allowed_formats)),
            "allowed_extensions": list(formats.upload_extensions(s.allowed_formats)),
            "uploads": s.uploads,
            "listing": s.listing,
            "sharex_url": "/api/sharex.sxcu",
            "default_expiry": s.default_expiry,
            "max_expiry": s.max_expiry,
        }
    )


def prometheus(app: App, request: Request) -> Response:
    s = app.settings
    if not s.metrics:
        raise NotFound("Metrics are off on this server (METRICS=false).")
    authorization = request.header("Authorization")
    rights.require_admin(authorization, app.admin_key, "Reading the metrics", s.metrics_token)

    def stored() -> tuple[int, int]:
        counters = app.catalog.counters()
        return counters.live, counters.bytes

    text = metrics.exposition(stored)
    return Response(200, text, {"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"})


def openapi(app: App, request: Request) -> Response:
    return Response.json(spec(app.router.routes, app.settings, request.base_url))


def upload(app: App, request: Request) -> Response:
    if app.limiter is None:
        return _upload(app, request)
    with app.limiter.upload(request.client):
        return _upload(app, request)


def _upload(app: App, request: Request) -> Response:
    s = app.settings
    if s.uploads == "key":
        rights.require_admin(request.header("Authorization"), app.admin_key, "Uploading")
    quota = s.max_storage_mb * 1024 * 1024
    if quota and app.catalog.counters().bytes >= quota:
        raise StorageQuota(_quota_sentence(s))
    length = request.body.remaining
    if length is not None and length > app.body_limit_bytes:
        raise PayloadTooLarge(f"The upload is larger than {s.max_upload_mb} MB.")
    if length == 0:
        raise MissingFile("The request has no body; send the image.")
    content_type, name = request.header("Content-Type") or "", request.header("X-Filename")
    # the header's lifetime, refused before the body is read
    header_lifetime_s = expiry.lifetime(
        request.header("X-Expires-In"), s.default_expiry, s.max_expiry
    )

    def receive(spool: Path) -> uploads.Upload:
        """The body, then its lifetime: the form field wins over the header (both checked
        before the image is decoded or stored)."""
        got = uploads.receive(request.body, content_type, spool, s.max_upload_bytes, name)
        lifetime_s = header_lifetime_s
        if got.expires_in is not None:
            lifetime_s = expiry.lifetime(got.expires_in, s.default_expiry, s.max_expiry)
        # Checked again with the size known, before anything is stored (concurrent uploads
        # near the quota may pass it by at most what they hold between them).
        if quota and app.catalog.counters().bytes + got.size > quota:
            raise StorageQuota(_quota_sentence(s))
        return dataclasses.replace(got, lifetime_s=lifetime_s)

    fields = {"rid": request.request_id}
    try:
        stored = app.ingest.upload(receive)
    except ApiError as exc:
        log.warning(
            "upload refused",
            extra={"fields": {**fields, "code": exc.code, "status": exc.status}},
        )
        raise
    row = stored.row
    metrics.upload_stored(row.size)
    fields.update(bytes=row.size, type=row.content_type, original_name=row.original_name)
    log.info("uploaded %s", row.filename, extra={"fields": fields})
    body = {
        **image_json(row, request.base_url),
        "delete_token": stored.delete_token,
        "delete_page_url": delete_page_url(request.base_url, row.filename, stored.delete_token),
    }
    return Response.json(body, 201, {"Location": body["delete_url"]})


def _quota_sentence(s: Settings) -> str:
    return (
        f"This server keeps at most {s.max_storage_mb} MB of images (MAX_STORAGE_MB) and this "
        "upload would pass that; nothing was stored. Delete images, or ask the admin for room."
    )


def list_images(app: App, request: Request) -> Response:
    if app.settings.listing == "key":
        rights.require_admin(request.header("Authorization"), app.admin_key, "Listing")
    limit = _int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = request.query_value("cursor")
    before = None
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
            raise InvalidParameter("The cursor is not one we handed out.")
        before = int(cursor)
    query = uploads.display_text(request.query_value("q") or "", uploads.MAX_NAME_CHARS)
    counters = app.catalog.counters()
    base = request.base_url
    key = f"{counters.epoch}/{counters.version}/{counters.expired}/{base}/{query}"
    tag = hashlib.sha1(key.encode()).hexdigest()[:16]
    etag = f'W/"{tag}-{limit}-{cursor or 0}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Authorization"}
    if etag in (request.header("If-None-Match") or ""):
        return Response(304, headers=headers)
    # The plain total is one read of the counters; a search counts its matches (a scan).
    headers["X-Total-Count"] = str(app.catalog.count(query) if query else counters.live)
    rows = app.catalog.page(limit + 1, before, query or None)
    if len(rows) > limit:
        rows = rows[:limit]
        searched = f"&q={quote(query)}" if query else ""
        next_page = f"{base}/api/upload/?limit={limit}&cursor={rows[-1].seq}{searched}"
        headers["Link"] = f'<{next_page}>; rel="next"'
    return Response.json([image_json(r, base) for r in rows], headers=headers)


def image_metadata(app: App, request: Request) -> Response:
    row = app.catalog.get(request.params["filename"])
    if row is None:
        raise NotFound("There is no image with this name.")
    return Response.json(image_json(row, request.base_url))


def delete_image(app: App, request: Request) -> Response:
    filename = request.params["filename"]
    row = app.catalog.get(filename)
    if row is None:
        raise NotFound("There is no image with this name.")
    rights.check_delete(
        request.header("Authorization"),
        request.header("X-Delete-Token"),
        app.admin_key,
        row.delete_token_hash,
    )
    # The row first: once it is gone the image is deleted for every node, whatever happens to
    # its objects next. The same transaction records it as a pending delete, which the
    # sweeper finishes if the objects cannot be removed now.
    if not app.catalog.remove(filename):
        raise NotFound("There is no image with this name.")
    fields = {"rid": request.request_id}
    try:
        app.store.delete(filename)
    except (OSError, ServiceUnavailable) as exc:
        log.warning(
            "deleted %s from the catalog, but not yet its files; the sweeper removes them",
            filename,
            extra={"fields": {**fields, "error": type(exc).__name__}},
        )
    else:
        try:
            app.catalog.forget_deletes([filename])
        except ServiceUnavailable:  # done all the same: the sweeper forgets it next round
            log.warning("deleted %s; its pending entry stays for the sweeper", filename)
    log.info("deleted %s", filename, extra={"fields": fields})
    return Response(204)


def image_file(app: App, request: Request) -> Response:
    filename = request.params["filename"]
    content_type = formats.BY_EXT[filename.rsplit(".", 1)[1]].content_type
    opened = app.store.open_image(filename, request.header("If-None-Match"))
    return _send(opened, content_type, IMAGE_HEADERS)


def thumbnail_file(app: App, request: Request) -> Response:
    """A thumbnail; one that is missing is made from its original first (nginx sends a
    thumbnail's first request here when it finds no file or object)."""
    name = request.params["thumbname"]
    etag = request.header("If-None-Match")
    opened = app.store.open_thumbnail(name, etag)
    if opened is None and app.ingest.make_missing_thumbnail(name):
        opened = app.store.open_thumbnail(name, etag)
    return _send(opened, thumbnail_type(name), IMAGE_HEADERS)


def _send(opened: Opened | None, ctype: str, kind_headers: dict[str, str]) -> Response:
    """A file or object to send: 304 when the ETag matched, sendfile for a local file, parts
    streamed from S3; 404 when there is none."""
    if opened is None:
        raise NotFound()
    out = {"Content-Type": ctype, "ETag": opened.etag, **kind_headers}
    if opened.unchanged:
        return Response(304, headers=out)
    if opened.path is not None:
        return Response(200, headers=out, file=opened.path)
    return Response(200, headers=out, stream=Stream(opened.chunks, opened.size))


def page(app: App, request: Request) -> Response:
    """The frontend's files (serve mode): / is index.html."""
    name = request.params.get("asset") or "index.html"
    path = (WEB_DIR / name).resolve()
    if WEB_DIR not in path.parents or not path.is_file():
        raise NotFound()
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
        ctype += "; charset=utf-8"
    return _send(Opened.file(path, request.header("If-None-Match")), ctype, PAGE_HEADERS)


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_value(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise InvalidParameter(f"'{name}' must be a whole number from {lo} to {hi}.")
    return int(raw)
