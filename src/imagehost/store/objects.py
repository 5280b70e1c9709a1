"""What a store hands out besides names: an object's size and age, an object opened to be sent
(a local file for sendfile, or its bytes in parts), and the refusal to overwrite."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ObjectInfo:
    size: int  # bytes
    modified_s: float  # when it was written, in seconds since the epoch


@dataclass
class Opened:
    """A stored image or thumbnail ready to be sent.

    `unchanged` is true when the caller's ETag matched (send 304, no bytes). Otherwise exactly
    one of `path` (a local file) and `chunks` (the bytes in order, `size` in all) is set;
    `chunks` may raise errors.ServiceUnavailable part-way, and must be closed when not used up.
    """

    etag: str  # quoted, as sent in the ETag header
    size: int  # bytes
    unchanged: bool = False
    path: Path | None = None
    chunks: Iterator[bytes] | None = None

    @classmethod
    def file(cls, path: Path, etag: str | None = None) -> "Opened | None":
        """A local file to send (sendfile), tagged by its mtime and size; None when missing.
        The one ETag of local files: stored images, thumbnails and the frontend's pages."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        tag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        return cls(etag=tag, size=stat.st_size, unchanged=etag == tag, path=path)

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


class ObjectExists(RuntimeError):
    """A commit found its name taken: with 96-bit random ids this means a bug (or someone
    writing into the store by hand), never an ordinary upload. Stores never overwrite."""

    def __init__(self, key: str):
        super().__init__(f"{key!r} already exists in the store; refusing to overwrite it")
        self.key = key
