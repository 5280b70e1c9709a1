"""Receiving an upload, and the only module that imports python_multipart.

The body is read in chunks as it arrives and spooled (see Spool: small files in memory, large
ones to a temporary file, never a large one held whole), with the size limit enforced while
counting, since the library's own default limit is "unlimited" and it truncates rather than
fails. Raw bodies (`Content-Type: image/*`) and multipart file parts get the same limit.
"""

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import (
    EmptyFile,
    InvalidMultipart,
    MissingFile,
    PayloadTooLarge,
    TooManyFiles,
    TooManyParts,
    UnsupportedMediaType,
)
from .messages import Body

MULTIPART_SLACK_BYTES = 64 * 1024  # room for boundaries and part headers around the file
MAX_PARTS = 16  # a form with more parts than this is not our upload form
SPOOL_MEMORY_BYTES = 512 * 1024
MAX_FIELD_BYTES = 4096  # non-file fields are read and ignored, but not without bound
KEPT_FIELDS = ("expires_in",)  # the form fields an upload may carry beside its file
MAX_NAME_CHARS = 255
# control, format (bidi overrides), surrogates, line and paragraph separators (U+2028/9)
_DROPPED_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,./:=?-]{1,70}$")  # RFC 2046 §5.1.1 bcharsnospace


class Spool:
    """The file's bytes: in memory up to SPOOL_MEMORY_BYTES, past that in a file at `path`.

    Most uploads are small; keeping them in memory spares creating and deleting a temporary
    file per upload (measured: file churn in one folder was half of a worker's system time),
    while a burst of large uploads still costs disk, not memory.
    """

    def __init__(self, path: Path):
        self.path = path
        self.buffer = bytearray()
        self.file: BinaryIO | None = None

    def write(self, data: bytes | memoryview) -> None:
        if self.file is None and len(self.buffer) + len(data) <= SPOOL_MEMORY_BYTES:
            self.buffer += data
            return
        if self.file is None:
            self.file = open(self.path, "wb")  # noqa: SIM115 (closed by close())
            self.file.write(self.buffer)
            self.buffer = bytearray()
        self.file.write(data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def read(self) -> bytes:
        """All the bytes, after close()."""
        return bytes(self.buffer) if self.file is None else self.path.read_bytes()


@dataclass
class Upload:
    """A received file: its bytes (spooled), what the client called it, how many bytes; the
    form's `expires_in` field as sent, and the lifetime the handler made of it (expiry.py)."""

    spool: Spool
    original_name: str
    size: int
    expires_in: str | None = None
    lifetime_s: int | None = None

    def read(self) -> bytes:
        return self.spool.read()


def body_limit_bytes(max_upload_bytes: int) -> int:
    """The largest request body an upload of `max_upload_bytes` can come in (multipart framing
    included): larger bodies are refused before they are read, by the workers and by nginx."""
    return max_upload_bytes + MULTIPART_SLACK_BYTES


def clean_name(raw: str) -> str:
    """The uploader's file name as display text: control characters dropped, length-capped.

    It is never used in a path; this only keeps logs and tables readable.
    """
    return display_text(raw, MAX_NAME_CHARS) or "upload"


def display_text(raw: str, limit: int) -> str:
    """`raw` without control, format (bidi overrides, zero-width), surrogate or line-break
    characters, stripped and cut to `limit` characters: names and titles others will see."""
    text = "".join(c for c in raw if unicodedata.category(c) not in _DROPPED_CATEGORIES)
    return text.strip()[:limit]


def receive_raw(body: Body, target: Path, max_file_bytes: int, name_header: str | None) -> Upload:
    """A body that is the image itself (`Content-Type: image/*`), name from `X-Filename`.

    Raises PayloadTooLarge past `max_file_bytes` (before reading, when Content-Length says so):
    the body is the file, so it gets no multipart slack. EmptyFile for an empty body.
    """
    if body.remaining is not None and body.remaining > max_file_bytes:
        raise PayloadTooLarge()
    size = 0
    spool = Spool(target)
    try:
        while data := body.read():
            size += len(data)
            if size > max_file_bytes:
                raise PayloadTooLarge()
            spool.write(data)
    finally:
        spool.close()
    if size == 0:
        raise EmptyFile()
    return Upload(spool, clean_name(unquote(name_header or "")), size)


def receive_multipart(body: Body, content_type: str, target: Path, max_file_bytes: int) -> Upload:
    """A `multipart/form-data` body with exactly one file part, preferably named `file`.

    Raises InvalidMultipart, MissingFile, TooManyFiles, TooManyParts, EmptyFile (400) and
    PayloadTooLarge (413); the caller removes `target` on error.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"").decode("latin-1")
    if not _BOUNDARY.match(boundary):
        raise InvalidMultipart("The multipart body has no valid boundary.")
    state = _Form(target, max_file_bytes)
    parser = MultipartParser(boundary, state.callbacks(), max_header_count=8)
    try:
        with state:
            while data := body.read():
                parser.write(data)
            parser.finalize()
    except MultipartParseError:
        raise InvalidMultipart() from None
    return state.result()


class _Form:
    """Callbacks for the streaming parser: routes the one file part to disk, skips the rest."""

    def __init__(self, target: Path, max_file_bytes: int):
        self.target = target
        self.max_file_bytes = max_file_bytes
        self.out: Spool | None = None
        self.parts = 0
        self.files = 0
        self.ended = False
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""
        self.current: str | None = None  # "file", "field" or None while in headers
        self.field_bytes = 0
        self.field_name = b""
        self.fields: dict[str, bytearray] = {}  # the KEPT_FIELDS sent, by name
        self.file_bytes = 0
        self.file_name = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.out:
            self.out.close()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self._add("header_name", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("header_value", d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_end": self.end,
        }

    def _add(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise TooManyParts(f"At most {MAX_PARTS} form fields are accepted.")
        self.disposition = b""
        self.current = None

    def header_end(self) -> None:
        if self.header_name.strip().lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = self.header_value = b""

    def headers_finished(self) -> None:
        kind, options = parse_options_header(self.disposition)
        if kind != b"form-data":
            raise InvalidMultipart("A form part has no form-data disposition.")
        if b"filename" not in options:
            self.current, self.field_bytes = "field", 0
            self.field_name = options.get(b"name", b"")
            return
        self.files += 1
        if self.files > 1:
            raise TooManyFiles()
        self.current = "file"
        self.file_name = clean_name(options[b"filename"].decode("utf-8", "replace"))
        self.out = Spool(self.target)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.current == "file":
            self.file_bytes += end - start
            if self.file_bytes > self.max_file_bytes:
                raise PayloadTooLarge()
            self.out.write(memoryview(data)[start:end])  # a view: the chunk is not copied
        else:
            self.field_bytes += end - start
            if self.field_bytes > MAX_FIELD_BYTES:
                raise InvalidMultipart("A form field is too long.")
            name = self.field_name.decode("latin-1")
            if name in KEPT_FIELDS:
                self.fields.setdefault(name, bytearray()).extend(data[start:end])

    def end(self) -> None:
        self.ended = True

    def result(self) -> Upload:
        if not self.ended:
            raise InvalidMultipart("The multipart body ended too early.")
        if self.files == 0:
            raise MissingFile()
        if self.file_bytes == 0:
            raise EmptyFile()
        expires_in = self.fields.get("expires_in")
        if expires_in is not None:
            expires_in = expires_in.decode("utf-8", "replace")
        return Upload(self.out, self.file_name, self.file_bytes, expires_in)


def receive(
    body: Body, content_type: str, target: Path, max_file_bytes: int, name_header: str | None = None
) -> Upload:
    """Stream the upload in `body` to `target`, by its Content-Type: multipart or raw image."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return receive_multipart(body, content_type, target, max_file_bytes)
    if media.startswith("image/"):
        return receive_raw(body, target, max_file_bytes, name_header)
    raise UnsupportedMediaType()
