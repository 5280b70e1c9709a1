"""What the HTTP layer and the handlers share: Request, Response and the request body's framing.

`server` builds a Request and writes a Response; `api` reads one and returns the other. Neither
imports the other: this module is the seam between them.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from . import headers
from .errors import ApiError, BadChunked, Incomplete, PayloadTooLarge, error_body

CHUNK_BYTES = 64 * 1024
JSON_HEADERS = {"Content-Type": "application/json", **headers.API}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: object  # http.client.HTTPMessage: case-insensitive .get()
    body: "Body"
    base_url: str
    request_id: str
    client: str
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Stream:
    """A body sent in parts after the headers: `length` bytes in all (the Content-Length).

    The parts come from elsewhere (an S3 object): when they fail or fall short part-way, the
    server closes the connection, so the client sees a body shorter than announced.
    """

    chunks: Iterator[bytes]  # bytes-like parts, in order
    length: int

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


@dataclass
class Response:
    """A whole response, built before any of it is written (a stream: all but its body)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # sent after the headers, when set (body is then ignored)
    stream: Stream | None = None  # the same, for a body that is not a local file

    @classmethod
    def json(cls, value, status: int = 200, headers: dict | None = None) -> "Response":
        data = json.dumps(value, ensure_ascii=False).encode()
        return cls(status, data, {**JSON_HEADERS, **(headers or {})})

    @classmethod
    def error(cls, exc: ApiError) -> "Response":
        return cls(exc.status, error_body(exc.code, exc.detail), {**JSON_HEADERS, **exc.headers})


class Body:
    """The request body as a stream, with framing decoded and the byte limit enforced.

    `content_length` None means chunked transfer coding (RFC 9112 §7.1). Reading past
    `max_bytes` raises PayloadTooLarge.
    """

    def __init__(self, rfile: BinaryIO, content_length: int | None, max_bytes: int):
        self.rfile = rfile
        self.remaining = content_length
        self.chunked = content_length is None
        self.chunk_left = 0
        self.done = content_length == 0
        self.max_bytes = max_bytes
        self.count = 0

    def read(self, size: int = CHUNK_BYTES) -> bytes:
        """Up to `size` bytes; b"" at the end. Incomplete (400) when the client stops too early."""
        if self.done:
            return b""
        data = self._read_chunked(size) if self.chunked else self._read_length(size)
        self.count += len(data)
        if self.count > self.max_bytes:
            raise PayloadTooLarge()
        return data

    def _read_length(self, size: int) -> bytes:
        data = self.rfile.read(min(size, self.remaining))
        if not data:
            raise Incomplete("The request body ended before its Content-Length.")
        self.remaining -= len(data)
        self.done = self.remaining == 0
        return data

    def _read_chunked(self, size: int) -> bytes:
        if self.chunk_left == 0:
            line = self.rfile.readline(1026)
            try:
                self.chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadChunked() from None
            if self.chunk_left == 0:
                while self.rfile.readline(8194) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields, ignored
                self.done = True
                return b""
        data = self.rfile.read(min(size, self.chunk_left))
        if not data:
            raise Incomplete("The request body ended before its last chunk.")
        self.chunk_left -= len(data)
        if self.chunk_left == 0:
            self.rfile.readline(3)  # the CRLF after the chunk data
        return data

    def drain(self) -> None:
        while self.read():
            pass
