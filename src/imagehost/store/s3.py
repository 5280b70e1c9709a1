"""Images as objects in an S3-compatible bucket (STORAGE=s3); the only module importing obstore.

Keys are the local store's names: `{id}.{ext}` and `thumbs/{id}.{thumbnail ext}`. Objects carry
their Content-Type (from the formats registry) and the immutable Cache-Control, so the bucket can be
served as it is. A commit PUTs the thumbnail, then the original, both create-only
(`If-None-Match: *`): nothing is ever overwritten, and an original is visible only once its
thumbnail is. Any failure removes what the commit wrote (or, when the S3 server is gone by then,
leaves it to `imagehost check`, which removes orphans older than its grace period). Temporary
files stay on the local disk, in DATA_DIR/tmp, named by pid as in the local store.

Why obstore (0.12.1, Rust's object_store with a Python binding): measured on this machine type
with 200 sequential 50 KB PUTs to SeaweedFS, it imports and builds its client in ~33 ms and
costs ~0.26 ms of client CPU per PUT (minio-py 0.76 ms, boto3 2–2.5 ms and ~390 ms to import),
releases the GIL during I/O, keeps its own connection pool and retries, and installs 15 MB with
no Python dependency. Every obstore exception is translated here: unreachable, 5xx, timeouts
and refused credentials → errors.ServiceUnavailable (503); a missing key → None or
FileNotFoundError as each method says (obstore raises the built-in one); at start-up →
errors.ConfigError naming the setting.
"""

import contextlib
import datetime
import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotModifiedError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from obstore.store import S3Store as _Client

from .. import headers
from ..config import Settings
from ..errors import ConfigError, ServiceUnavailable
from .keys import (
    IMAGE_NAME,
    THUMB_NAME,
    THUMBS,
    checked_image_name,
    checked_thumbnail_name,
    content_type_of,
    thumbnail_key,
    thumbnail_name,
    thumbnail_names,
    thumbnail_type,
)
from .objects import ObjectExists, ObjectInfo, Opened
from .scratch import DATA_TEMP_DIR, disk_errors
from .scratch import remove_temp as _remove_temp
from .scratch import scratch as _scratch
from .scratch import stale_temp_files as _stale_temp_files

log = logging.getLogger("imagehost.store")

# An S3 server next to the backends connects in well under 10 ms; 2 s still allows one lost
# SYN (Linux retransmits it after 1 s) before an upload answers 503.
CONNECT_TIMEOUT_S = 2
# One whole request, body included. PUTs are single-part (create-only needs that) and at most
# MAX_UPLOAD_MB: the default 5 MiB takes ~50 ms at 100 MB/s, and 10 s covers ~100 MB at a slow
# 10 MB/s. Short, because an upload's handler must answer within REQUEST_TIMEOUT (30 s default)
# or the server cuts the connection: a stalled S3 server (SIGSTOPped here: 10 s per request,
# the GIL released meanwhile) costs a PUT and at most one cleanup DELETE, ~20 s, then 503.
# `serve` reads STREAM_PART_BYTES per request, so a slow client never makes one long request.
REQUEST_TIMEOUT_S = 10
# obstore retries connection errors and 5xx (and timeouts of safe requests) with backoff from
# 0.1 s; its defaults (10 retries within 3 minutes) would hold an upload for minutes.
MAX_RETRIES = 2
RETRY_TIMEOUT_S = 5
# `serve` sends a big object in parts of this size, one ranged GET each, so a slow client never
# holds one S3 request open past REQUEST_TIMEOUT_S; most images and every thumbnail are one part.
STREAM_PART_BYTES = 1024 * 1024
# /api/health and start-up list this prefix (nothing matches it): one request that checks the
# endpoint, the bucket and the credentials together.
PROBE_PREFIX = ".imagehost-probe/"
_ETAG = re.compile(r'"[!#-~]{1,200}"\Z')  # one strong entity tag (RFC 9110 §8.8.3)


class S3Store:
    """One bucket, with the owner's credentials (it lists and deletes; nginx only reads)."""

    shared = True  # other nodes write to the same bucket: check spares young orphans
    # An object per upload: nginx serves each image's own key straight from the bucket, and
    # S3 has no links (README, "Deduplication").
    dedupes = False

    def __init__(self, settings: Settings):
        self.bucket = settings.s3_bucket
        self.endpoint = settings.s3_endpoint_url
        self.temp = Path(settings.data_dir).resolve() / DATA_TEMP_DIR
        self.temp.mkdir(parents=True, exist_ok=True)
        self._client = _client(settings)

    # --- start-up and health ----------------------------------------------------------------

    def check_access(self) -> None:
        """Start-up: raise ConfigError naming the setting when the endpoint is unreachable, the
        bucket missing or the credentials refused (the secret key is never shown)."""
        try:
            self._client.list_with_delimiter(PROBE_PREFIX)
        except (BaseError, OSError) as exc:
            text = str(exc)
            if "NoSuchBucket" in text:
                raise ConfigError(
                    f"S3_BUCKET={self.bucket!r}: no such bucket at {self.endpoint}"
                ) from None
            # obstore reports a refused listing as a generic error with the status in its text
            if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or re.search(
                r"status code: 40[13]\b", text
            ):
                raise ConfigError(
                    "S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY: refused by "
                    f"{self.endpoint} for bucket {self.bucket!r} ({_reason(exc)})"
                ) from None
            raise ConfigError(
                f"S3_ENDPOINT_URL={self.endpoint!r}: not reachable ({_reason(exc)})"
            ) from None

    def probe(self) -> None:
        """Raises ServiceUnavailable when the bucket cannot be listed (for /api/health)."""
        with _unavailable("probe"):
            self._client.list_with_delimiter(PROBE_PREFIX)

    # --- writes -------------------------------------------------------------------------------

    def scratch(self, suffix: str) -> contextlib.AbstractContextManager[Path]:
        """A local temporary file name for the duration of the block; removed after it."""
        return _scratch(self.temp, suffix)

    def commit(self, stored_temp: Path, thumbnail: bytes | None, filename: str) -> None:
        """PUT the thumbnail, then the original, both create-only, with their Content-Type and
        Cache-Control. Two requests, ~2 ms each next to the server.

        Raises ServiceUnavailable when the S3 server fails or does not answer in time, and
        ObjectExists (a 500) when a key is taken; either way what this commit wrote is
        removed again (when the server still answers).
        """
        image_key, thumb_key = checked_image_name(filename), thumbnail_key(filename)
        with disk_errors():
            image = stored_temp.read_bytes()
        thumb = image if thumbnail is None else thumbnail
        attempted = []
        try:
            attempted.append(thumb_key)
            self._create(thumb_key, thumb, thumbnail_type(thumbnail_name(filename)))
            attempted.append(image_key)
            self._create(image_key, image, content_type_of(filename))
        except ObjectExists as exc:
            attempted.remove(exc.key)  # somebody else's object: leave it alone
            self._forget(attempted)
            raise
        except BaseException:
            # A PUT that failed may still have landed (its answer lost): remove both.
            self._forget(attempted)
            raise

    def link_existing(self, existing: str, filename: str) -> bool:
        """Never: each upload has objects of its own here (`dedupes` is False)."""
        return False

    def delete(self, filename: str) -> None:
        """Remove an image, then its thumbnail; a key already gone is not an error.
        Raises ServiceUnavailable when the S3 server fails."""
        thumbs = [_thumb_key(name) for name in thumbnail_names(filename)]
        for key in (checked_image_name(filename), *thumbs):
            with _unavailable("delete"):
                obstore.delete(self._client, key)

    def put_thumbnail(self, thumb_temp: Path, filename: str) -> None:
        """Replace the thumbnail of `filename` by the file at `thumb_temp` (check, reindex,
        first request)."""
        thumb_name = thumbnail_name(filename)
        with disk_errors():
            data = thumb_temp.read_bytes()
        with _unavailable("put"):
            obstore.put(
                self._client,
                thumbnail_key(filename),
                data,
                attributes=_attributes(thumbnail_type(thumb_name)),
                use_multipart=False,
            )

    def delete_thumbnail(self, thumb_name: str) -> None:
        with _unavailable("delete"):
            obstore.delete(self._client, _thumb_key(thumb_name))

    def reject(self, filename: str, folder: Path) -> None:
        """Move a stored original out of the bucket into the local `folder` (not an image we
        accept): download, then delete."""
        folder.mkdir(parents=True, exist_ok=True)
        with self.local_copy(filename) as copy:
            copy.replace(folder / filename)
        with _unavailable("delete"):
            obstore.delete(self._client, filename)

    # --- reads --------------------------------------------------------------------------------

    def has_thumbnail(self, filename: str) -> bool:
        try:
            with _unavailable("head"):
                obstore.head(self._client, thumbnail_key(filename))
        except FileNotFoundError:
            return False
        return True

    def open_image(self, filename: str, etag: str | None = None) -> Opened | None:
        """The stored original to send, in parts, or None when there is none. Raises
        ServiceUnavailable when the S3 server fails before the first part."""
        return self._open(checked_image_name(filename), etag)

    def open_thumbnail(self, thumb_name: str, etag: str | None = None) -> Opened | None:
        return self._open(_thumb_key(thumb_name), etag)

    @contextlib.contextmanager
    def local_copy(self, filename: str) -> Iterator[Path]:
        """A local temporary copy of a stored original, removed after the block (check and
        reindex decode it). FileNotFoundError when it is gone; ServiceUnavailable."""
        key = checked_image_name(filename)
        with self.scratch(key.rsplit(".", 1)[1]) as path:
            try:
                with _unavailable("get"):
                    data = obstore.get(self._client, key).bytes()
            except FileNotFoundError:
                raise FileNotFoundError(filename) from None
            with disk_errors():
                path.write_bytes(data)
            yield path

    def info(self, filename: str) -> ObjectInfo:
        """Size and modification time; FileNotFoundError when it is gone."""
        try:
            with _unavailable("head"):
                meta = obstore.head(self._client, checked_image_name(filename))
        except FileNotFoundError:
            raise FileNotFoundError(filename) from None
        return ObjectInfo(size=meta["size"], modified_s=meta["last_modified"].timestamp())

    def images(self) -> dict[str, float]:
        """Stored originals that follow our naming scheme → modification time (s since epoch).
        Lists the bucket's top level (needs ListBucket: the owner's credentials)."""
        with _unavailable("list"):
            listing = self._client.list_with_delimiter(None)
        return {
            meta["path"]: meta["last_modified"].timestamp()
            for meta in listing["objects"]
            if IMAGE_NAME.match(meta["path"])
        }

    def thumbnails(self) -> dict[str, float]:
        """Thumbnail name → modification time of its object."""
        found = {}
        with _unavailable("list"):
            for batch in obstore.list(self._client, THUMBS, chunk_size=1000):
                for meta in batch:
                    name = meta["path"].removeprefix(f"{THUMBS}/")
                    if THUMB_NAME.match(name):
                        found[name] = meta["last_modified"].timestamp()
        return found

    def image_files(self) -> list[str]:
        return sorted(self.images())

    def thumbnail_names(self) -> list[str]:
        return sorted(self.thumbnails())

    def foreign_files(self) -> list[Path]:
        """None: adopting files dropped in by hand is for a local folder (reindex); keys in the
        bucket that we did not name are left alone."""
        return []

    def stale_temp_files(self) -> list[Path]:
        """Temporary files whose process is gone, or that are older than STALE_TEMP_S."""
        return _stale_temp_files(self.temp)

    def remove_temp(self, path: Path) -> None:
        _remove_temp(self.temp, path)

    # --- internals ----------------------------------------------------------------------------

    def _create(self, key: str, data: bytes, content_type: str) -> None:
        """PUT `data` at `key` only if the key is free."""
        try:
            with _unavailable("put"):
                obstore.put(
                    self._client,
                    key,
                    data,
                    attributes=_attributes(content_type),
                    mode="create",
                    use_multipart=False,
                )
        except AlreadyExistsError:
            # obstore retries a PUT whose answer was lost; the retry then finds our own
            # object. A single-part PUT's ETag is the MD5 of its bytes (no SSE-KMS here).
            if self._etag(key) == f'"{hashlib.md5(data).hexdigest()}"':
                return
            raise ObjectExists(key) from None

    def _etag(self, key: str) -> str | None:
        try:
            with _unavailable("head"):
                return obstore.head(self._client, key)["e_tag"]
        except FileNotFoundError:
            return None

    def _forget(self, keys: list[str]) -> None:
        """Best-effort removal after a failed commit, stopping at the first failure (the server
        is failing: each further try could wait REQUEST_TIMEOUT_S). What stays is an orphan
        that `imagehost check` removes once it is older than its grace period."""
        for key in reversed(keys):  # the original first: never an original without thumbnail
            try:
                with _unavailable("delete"):
                    obstore.delete(self._client, key)
            except ServiceUnavailable:
                log.warning("left %s after a failed upload, for `imagehost check`", keys)
                return

    def _open(self, key: str, etag: str | None) -> Opened | None:
        options: dict = {"range": (0, STREAM_PART_BYTES)}
        if etag and _ETAG.match(etag):
            options["if_none_match"] = etag
        try:
            with _unavailable("get"):
                result = obstore.get(self._client, key, options=options)
                first = result.bytes()
        except FileNotFoundError:
            return None
        except NotModifiedError:
            return Opened(etag=etag, size=0, unchanged=True)
        meta = result.meta
        tag = meta["e_tag"] or ""
        return Opened(etag=tag, size=meta["size"], chunks=self._parts(key, first, meta, tag))

    def _parts(self, key: str, first, meta, etag: str) -> Iterator[bytes]:
        """The object's bytes: the part already read, then one ranged GET per part. If-Match
        makes a changed object (it cannot be, create-only) fail instead of mixing versions."""
        yield first
        offset, size = len(first), meta["size"]
        while offset < size:
            end = min(offset + STREAM_PART_BYTES, size)
            options: dict = {"range": (offset, end)}
            if etag:
                options["if_match"] = etag
            with _unavailable("get"):
                part = obstore.get(self._client, key, options=options).bytes()
            if not len(part):
                raise ServiceUnavailable("The image store ended an object early.")
            yield part
            offset += len(part)


def open_s3_store(settings: Settings) -> S3Store:
    """The store for STORAGE=s3, once the bucket answered; ConfigError otherwise."""
    store = S3Store(settings)
    store.check_access()
    return store


def _client(settings: Settings) -> _Client:
    endpoint = settings.s3_endpoint_url.rstrip("/")
    if not settings.s3_path_style:
        # Virtual-host style: the bucket is part of the host name (bucket.s3.example.com).
        parts = urlsplit(endpoint)
        endpoint = urlunsplit(parts._replace(netloc=f"{settings.s3_bucket}.{parts.netloc}"))
    return _Client(
        settings.s3_bucket,
        endpoint=endpoint,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
        virtual_hosted_style_request=not settings.s3_path_style,
        client_options={
            "allow_http": endpoint.startswith("http://"),
            "connect_timeout": datetime.timedelta(seconds=CONNECT_TIMEOUT_S),
            "timeout": datetime.timedelta(seconds=REQUEST_TIMEOUT_S),
        },
        retry_config={
            "max_retries": MAX_RETRIES,
            "retry_timeout": datetime.timedelta(seconds=RETRY_TIMEOUT_S),
        },
    )


@contextlib.contextmanager
def _unavailable(operation: str) -> Iterator[None]:
    """obstore's failures → ServiceUnavailable; the outcomes callers decide on pass through
    (a missing key is the built-in FileNotFoundError, as obstore raises it)."""
    try:
        yield
    except (FileNotFoundError, AlreadyExistsError, NotModifiedError):
        raise
    except (BaseError, OSError) as exc:
        log.error("S3 %s failed: %s", operation, _reason(exc))
        raise ServiceUnavailable("The image store is not reachable; try again shortly.") from None


def _reason(exc: BaseException) -> str:
    """The informative end of obstore's long message, on one line."""
    text = str(exc).split("\n", 1)[0]
    for pattern in (r"status code: \d+[^:<]*", r"HTTP error: [^:<]*", r"\btimed out\b[^:<]*"):
        if found := re.search(pattern, text):
            return found.group(0).strip()
    return text[:200].strip()


def _attributes(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "Cache-Control": headers.IMAGE_CACHE}


def _thumb_key(thumb_name: str) -> str:
    """The key of the thumbnail named `thumb_name` (validated)."""
    return f"{THUMBS}/{checked_thumbnail_name(thumb_name)}"
