"""The route table and its thin handlers: parse input → call store/catalog/images → respond.

Handlers raise errors.ApiError subclasses and never write error responses themselves.
"""

import contextlib
import datetime
import hashlib
import logging
import mimetypes
import threading
from pathlib import Path

from . import images, rights, uploads
from .catalog import Catalog, ImageRow
from .config import Settings
from .errors import ApiError, BadRequest, NotFound, PayloadTooLarge, ServiceUnavailable
from .openapi import spec
from .routing import Route, Router
from .server import Request, Response
from .store import Store, disk_errors, new_image_id

log = logging.getLogger("imagehost.api")

WEB_DIR = Path(__file__).resolve().parent / "web"
MAX_PAGE = 200
DEFAULT_PAGE = 50
PIPELINE_SLOTS = 1  # TEMP

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": IMAGE_CSP,
    "Cache-Control": "public, max-age=31536000, immutable",
    "Accept-Ranges": "none",
}
EXT_TYPES = {ext: ctype for ext, ctype in images.FORMATS.values()}

PARAMS = {
    "filename": r"[A-Za-z0-9_-]{10,64}\.(?:jpg|png|gif|webp|avif)",
    "thumbname": r"[A-Za-z0-9_-]{10,64}\.webp",
    # frontend files: no dot segments, nothing under api/ or images/
    "asset": r"(?!api/|images/)(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*/){0,3}[A-Za-z0-9_-][A-Za-z0-9_.-]*",
}


def _routes() -> list[Route]:
    return [
        # anyone
        Route("GET", "/api/health", health, "Liveness and readiness"),
        Route("GET", "/api/config", client_config, "What the upload page needs to know"),
        Route("GET", "/api/openapi.json", openapi, "This API's OpenAPI 3.1 description"),
        # UPLOADS policy
        Route("POST", "/api/upload/", upload, "Upload one image"),
        # LISTING policy
        Route("GET", "/api/upload/", list_images, "List images, newest first"),
        # knowing the name is knowing the URL, so one image's metadata is not behind LISTING
        Route("GET", "/api/upload/{filename}", image_metadata, "One image's metadata"),
        # its delete token or the admin key
        Route("DELETE", "/api/upload/{filename}", delete_image, "Delete an image"),
        # files: nginx serves these itself in `up`; here for `serve`
        Route("GET", "/images/{filename}", image_file, "The stored image"),
        Route("GET", "/images/thumbs/{thumbname}", thumbnail_file, "Its WebP thumbnail"),
        Route("GET", "/", page, ""),
        Route("GET", "/{asset}", page, ""),
    ]


class App:
    """Everything a request handler needs: settings, store, catalog, admin key, routes."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = Store(settings.images_dir)
        self.catalog = Catalog(settings.data_dir / "catalog.sqlite3")
        self.admin_key = rights.load_admin_key(settings.admin_key, settings.data_dir)
        self.router = Router(_routes(), PARAMS)
        self.pipeline_slots = threading.BoundedSemaphore(PIPELINE_SLOTS)
        self.body_limit_bytes = settings.max_upload_bytes + uploads.MULTIPART_SLACK_BYTES

    def handle(self, request: Request) -> Response:
        match = self.router.match(request.method, request.path)
        request.params = match.params
        return match.route.handler(self, request)

    def announce(self, url: str) -> None:
        """Log the management link once: opening it lets this browser delete any image."""
        logging.getLogger("imagehost").info(
            "management link (keep it private): %s/upload.html#key=%s", url, self.admin_key
        )


def image_json(row: ImageRow, base_url: str) -> dict:
    return {
        "id": row.id,
        "filename": row.filename,
        "url": f"{base_url}/images/{row.filename}",
        "thumbnail_url": f"{base_url}/images/thumbs/{row.id}.webp",
        "delete_url": f"{base_url}/api/upload/{row.filename}",
        "original_name": row.original_name,
        "content_type": row.content_type,
        "size": row.size,
        "width": row.width,
        "height": row.height,
        "created_at": row.created_at,
    }


def health(app: App, request: Request) -> Response:
    try:
        app.catalog.ping()
        probe = app.store.temp_path("health")
        probe.write_bytes(b"")
        probe.unlink()
    except (OSError, ApiError) as exc:
        log.error("not ready: %s", type(exc).__name__)
        raise ServiceUnavailable("The catalog or the image store is not reachable.") from None
    return Response.json(
        {"status": "ok", "catalog": "ok", "store": "ok"}, headers={"Cache-Control": "no-store"}
    )


def client_config(app: App, request: Request) -> Response:
    s = app.settings
    allowed = [images.FORMATS[f] for f in s.allowed_formats]
    extensions = [f".{ext}" for ext, _ in allowed]
    if ".jpg" in extensions:
        extensions.insert(extensions.index(".jpg") + 1, ".jpeg")
    return Response.json(
        {
            "max_upload_bytes": s.max_upload_bytes,
            "max_upload_mb": s.max_upload_mb,
            "max_image_pixels": s.max_image_pixels,
            "allowed_formats": list(s.allowed_formats),
            "allowed_types": [ctype for _, ctype in allowed],
            "allowed_extensions": extensions,
            "uploads": s.uploads,
            "listing": s.listing,
        }
    )


def openapi(app: App, request: Request) -> Response:
    return Response.json(spec(app.router.routes, app.settings, request.base_url))


def upload(app: App, request: Request) -> Response:
    s = app.settings
    if s.uploads == "key":
        rights.require_admin(request.header("Authorization"), app.admin_key, "Uploading")
    length = request.body.remaining
    if length is not None and length > app.body_limit_bytes:
        raise PayloadTooLarge(f"The upload is larger than {s.max_upload_mb} MB.")
    if length == 0:
        raise BadRequest("The request has no body; send the image.", code="missing_file")
    received = app.store.temp_path("upload")
    stored, thumbnail = app.store.temp_path("stored"), app.store.temp_path("thumb.webp")
    try:
        with disk_errors():
            upload = uploads.receive(
                request.body,
                request.header("Content-Type") or "",
                received,
                s.max_upload_bytes,
                request.header("X-Filename"),
            )
            with app.pipeline_slots:
                info = images.process(
                    upload.read(),
                    stored,
                    thumbnail,
                    allowed_formats=s.allowed_formats,
                    max_pixels=s.max_image_pixels,
                    max_frames=s.max_frames,
                    strip_metadata=s.strip_metadata,
                )
            image_id = new_image_id()
            filename = f"{image_id}.{info.ext}"
            size = stored.stat().st_size
        app.store.commit(stored, thumbnail, filename, image_id)
        token, token_hash = rights.new_delete_token()
        row = ImageRow(
            seq=0,
            id=image_id,
            filename=filename,
            original_name=upload.original_name,
            content_type=info.content_type,
            size=size,
            width=info.width,
            height=info.height,
            created_at=_now(),
            delete_token_hash=token_hash,
        )
        try:
            row = app.catalog.add(row)
        except BaseException:
            app.store.delete(filename)
            raise
    except ApiError as exc:
        log.warning(
            "upload refused",
            extra={"fields": {"rid": request.request_id, "code": exc.code, "status": exc.status}},
        )
        raise
    finally:
        for path in (received, stored, thumbnail):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    log.info(
        "uploaded %s",
        filename,
        extra={
            "fields": {
                "rid": request.request_id,
                "bytes": size,
                "type": info.content_type,
                "original_name": upload.original_name,
            }
        },
    )
    body = {**image_json(row, request.base_url), "delete_token": token}
    return Response.json(body, 201, {"Location": body["delete_url"]})


def list_images(app: App, request: Request) -> Response:
    if app.settings.listing == "key":
        rights.require_admin(request.header("Authorization"), app.admin_key, "Listing")
    limit = _int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = request.query_value("cursor")
    before = None
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
            raise BadRequest("The cursor is not one we handed out.", code="invalid_parameter")
        before = int(cursor)
    counters = app.catalog.counters()
    base = request.base_url
    tag = hashlib.sha1(f"{counters.epoch}/{counters.version}/{base}".encode()).hexdigest()[:16]
    etag = f'W/"{tag}-{limit}-{cursor or 0}"'
    headers = {
        "ETag": etag,
        "X-Total-Count": str(counters.total),
        "Cache-Control": "no-cache",
        "Vary": "Authorization",
    }
    if etag in (request.header("If-None-Match") or ""):
        return Response(304, headers=headers)
    rows = app.catalog.page(limit + 1, before)
    if len(rows) > limit:
        rows = rows[:limit]
        headers["Link"] = f'<{base}/api/upload/?limit={limit}&cursor={rows[-1].seq}>; rel="next"'
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
    if not app.catalog.remove(filename):
        raise NotFound("There is no image with this name.")
    app.store.delete(filename)
    log.info("deleted %s", filename, extra={"fields": {"rid": request.request_id}})
    return Response(204)


def image_file(app: App, request: Request) -> Response:
    filename = request.params["filename"]
    return _file(
        app.store.image_path(filename),
        EXT_TYPES[filename.rsplit(".", 1)[1]],
        IMAGE_HEADERS,
        request,
    )


def thumbnail_file(app: App, request: Request) -> Response:
    image_id = request.params["thumbname"].rsplit(".", 1)[0]
    return _file(app.store.thumbnail_path(image_id), "image/webp", IMAGE_HEADERS, request)


def page(app: App, request: Request) -> Response:
    """The frontend's files (serve mode): / is index.html."""
    name = request.params.get("asset") or "index.html"
    path = (WEB_DIR / name).resolve()
    if WEB_DIR not in path.parents or not path.is_file():
        raise NotFound()
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
        ctype += "; charset=utf-8"
    return _file(
        path,
        ctype,
        {
            "Content-Security-Policy": PAGE_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache",
        },
        request,
    )


def _file(path: Path, ctype: str, headers: dict, request: Request) -> Response:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NotFound() from None
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    out = {"Content-Type": ctype, "ETag": etag, **headers}
    if request.header("If-None-Match") == etag:
        return Response(304, headers=out)
    return Response(200, headers=out, file=path)


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_value(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise BadRequest(
            f"'{name}' must be a whole number from {lo} to {hi}.", code="invalid_parameter"
        )
    return int(raw)


def _now() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="microseconds").replace("+00:00", "Z")
