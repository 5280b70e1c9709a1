"""Local temporary files, in both store modes: spooled uploads and the pipeline's output.

They live in one folder per store (IMAGES_DIR/.tmp for local files, DATA_DIR/tmp for S3) and
are named `{pid}-{n}.{suffix}`, so the supervisor removes a dead worker's leftovers by pid and
`imagehost check` removes those of processes that are gone.
"""

import contextlib
import errno
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import StorageFull

_temp_counter = itertools.count()  # next() on it is atomic under the GIL
STALE_TEMP_S = 3600  # temp files of live processes older than this are leftovers too
IMAGES_TEMP_DIR = ".tmp"  # in IMAGES_DIR (local files): a dot folder nginx and serve never serve
DATA_TEMP_DIR = "tmp"  # in DATA_DIR (S3): this node's own disk


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """Turn a full disk (ENOSPC, EDQUOT) into StorageFull (507)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull() from None
        raise


def temp_path(folder: Path, suffix: str) -> Path:
    """A new temporary file name in `folder`; the pid in it lets the supervisor clean after a
    crash."""
    # Unique, not secret (the folder is never served): a counter is cheaper than urandom.
    return folder / f"{os.getpid()}-{next(_temp_counter)}.{suffix}"


@contextlib.contextmanager
def scratch(folder: Path, suffix: str) -> Iterator[Path]:
    """A temporary file name for the duration of the block; the file is removed after it."""
    path = temp_path(folder, suffix)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def stale_temp_files(folder: Path) -> list[Path]:
    """Temporary files whose process is gone, or that are older than STALE_TEMP_S."""
    stale = []
    now = time.time()
    for path in folder.iterdir():
        pid = path.name.split("-", 1)[0]
        alive = pid.isdigit() and _pid_alive(int(pid))
        try:
            old = now - path.stat().st_mtime > STALE_TEMP_S
        except FileNotFoundError:
            continue  # its scratch block just ended
        if not alive or old:
            stale.append(path)
    return stale


def remove_temp(folder: Path, path: Path) -> None:
    """Remove one of `folder`'s temporary files (a leftover found by check)."""
    if path.parent != folder:
        raise ValueError(f"not a temporary file of this store: {path!r}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def remove_temp_files_of(folder: Path, pid: int) -> None:
    """Delete the temporary files a (dead) worker process left behind in `folder`."""
    for path in Path(folder).glob(f"{pid}-*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
