"""Backups: `imagehost backup DIR` copies a running installation, `restore DIR` puts it back.

A backup folder holds:

    manifest.json          written last: what the backup holds (a folder without one is no backup)
    catalog.sqlite3        SQLite: a snapshot by sqlite3's online backup API
    catalog.pgdump         PostgreSQL: `pg_dump --format=custom` (the admin key is in it)
    admin_key              DATA_DIR/admin_key, when there is one
    images/{id}.{ext}      every original the catalog snapshot names, under its stored name
    images/thumbs/{id}.jpg   and its thumbnail (.webp but for JPEGs; laid out as IMAGES_DIR)

The catalog is snapshotted first, then the files it names are copied: from a local folder by
hard link (stored files are create-only and never rewritten, so a link is a safe copy), or a
copy on another filesystem; from a bucket by download through the store. An image deleted
between the snapshot and its copy is left out: its row is dropped from a SQLite snapshot (the
backup is then the state a moment later), or listed as `missing` in the manifest of a pg_dump,
for restore to drop. So a backup never names a file it does not hold. The folder and its
subfolders are 0700, the catalog, key and manifest 0600. Image files keep the mode the store
gives them (a hard link shares the store file's inode, so it cannot have another), which
restore hands back as it is, so nginx can read them; only the owner can reach them here.

Restore refuses an installation whose catalog has images or whose store holds objects the
backup does not (objects of an interrupted restore of the same backup are skipped, so it can
be run again). Files go first, through migrate-store's copy (create-only, Content-Type and the
immutable Cache-Control in a bucket; links or copies in a folder), then the catalog, then the
admin key; it ends with the same comparison `imagehost check --dry-run` makes. The catalog
kind must match: a SQLite backup goes into SQLite (then `migrate-catalog` moves it), a dump
into PostgreSQL; the store kind may differ.

pg_dump and pg_restore are PostgreSQL's client programs, found on PATH; the password of
DATABASE_URL reaches them in PGPASSWORD, never on a command line or in a message.
"""

import contextlib
import datetime
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from . import images, migrate, rights
from .catalog import FILE_NAME, Catalog, open_catalog
from .catalog.sqlite import BUSY_TIMEOUT_S, SQLiteCatalog
from .config import Settings
from .errors import ApiError, ServiceUnavailable
from .maintenance import PENDING_BATCH, check
from .store import LocalStore, Opened, Store, open_store
from .store.keys import THUMBS, thumbnail_name
from .store.local import fsync_path
from .store.scratch import IMAGES_TEMP_DIR
from .views import size_in_words

FORMAT = "imagehost backup"
VERSION = 1  # of the folder's layout and manifest; restore refuses any other
MANIFEST = "manifest.json"
SQLITE_FILE = FILE_NAME  # catalog.sqlite3, as in DATA_DIR
DUMP_FILE = "catalog.pgdump"
IMAGES = "images"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
PG_CLIENT = (
    "install PostgreSQL's client programs of the server's major version or newer (Debian: "
    "apt-get install postgresql-client) and run it again"
)
# pg_dump waits this long for its share locks (a migration holds an exclusive one briefly).
LOCK_WAIT = "30s"
CONNECT_TIMEOUT_S = "10"  # libpq's, unless DATABASE_URL sets one


class BackupError(Exception):
    """One line saying why backup or restore cannot go on (exit 1); nothing is changed by a
    restore refused this way."""


@dataclass
class BackupReport:
    folder: Path
    catalog: str  # sqlite or postgres
    store: str  # local or s3
    images: int = 0  # images the backup holds (with their files)
    files: int = 0  # originals and thumbnails
    bytes: int = 0
    dropped: list[str] = field(default_factory=list)  # deleted meanwhile: row dropped (SQLite)
    missing: list[str] = field(default_factory=list)  # deleted meanwhile: listed (pg_dump)
    remade: list[str] = field(default_factory=list)  # thumbnail missing in the store: made
    failed: list[str] = field(default_factory=list)  # "name: reason"
    admin_key: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def problems(self) -> list[str]:
        return [f"backup: failed: {reason}" for reason in self.failed]

    def summary(self) -> str:
        if not self.ok:
            return (
                f"backup: incomplete, {len(self.failed)} images could not be copied; no "
                f"manifest was written, so {self.folder} is no backup: run it again into an "
                "empty folder"
            )
        line = (
            f"backup: {self.images} images ({self.files} files, "
            f"{size_in_words(self.bytes)}) of the "
            f"{self.catalog} catalog and the {self.store} store in {self.folder}, "
            f"{self.seconds:.2f} s"
        )
        gone = len(self.dropped) + len(self.missing)
        if gone:
            line += f"; {gone} deleted during the backup left out"
        if self.remade:
            line += f"; {len(self.remade)} missing thumbnails made anew"
        return f"{line}; admin key: {self.admin_key}"


@dataclass
class RestoreReport:
    folder: Path
    images: int
    tally: migrate.Tally
    catalog: str = ""  # where the catalog went, in words
    admin_key: str = ""
    check: list[str] = field(default_factory=list)  # what the final check found, if anything

    @property
    def ok(self) -> bool:
        return not self.tally.failed and not self.check

    def problems(self) -> list[str]:
        lines = [f"restore: failed: {reason}" for reason in self.tally.failed]
        return lines + [f"restore: check found {line}" for line in self.check]

    def summary(self) -> str:
        files = f"files: {self.tally.counts()}"
        if self.tally.failed:
            return (
                f"restore: {self.images} images from {self.folder}; {files}; the catalog was "
                "not restored: fix the cause and run it again"
            )
        state = "clean" if not self.check else f"{len(self.check)} problems"
        return (
            f"restore: {self.images} images from {self.folder}; {files}; catalog: "
            f"{self.catalog}; admin key: {self.admin_key}; check: {state}"
        )


# --- backup -----------------------------------------------------------------------------------


def backup(settings: Settings, folder: Path, jobs: int = migrate.COPY_JOBS) -> BackupReport:
    """Write a backup of the installation of `settings` into `folder` (absent or empty) while
    it runs. Raises BackupError when the folder is not empty, there is no catalog, or pg_dump
    is missing or fails; ConfigError when the store cannot be reached at start. Images that
    cannot be copied are failures in the report, and no manifest is written then."""
    started = time.monotonic()
    folder = Path(folder)
    if settings.database_url:
        for program in ("pg_dump", "pg_restore"):  # found before anything is made
            _pg_program(program)
    _private_empty_folder(folder)
    store = open_store(settings)
    kind = "postgres" if settings.database_url else "sqlite"
    report = BackupReport(folder=folder.resolve(), catalog=kind, store=settings.storage)
    if kind == "sqlite":
        names = _snapshot_sqlite(Path(settings.data_dir) / FILE_NAME, folder / SQLITE_FILE)
    else:
        names = _snapshot_postgres(settings.database_url, folder / DUMP_FILE)
    target = folder / IMAGES
    for sub in (target, target / THUMBS, target / IMAGES_TEMP_DIR):
        sub.mkdir(mode=PRIVATE_DIR)
    catalog = open_catalog(settings)
    try:
        gone = _copy_files(store, catalog, target, sorted(names), jobs, report)
    finally:
        catalog.close()
    if kind == "sqlite":
        _drop_rows(folder / SQLITE_FILE, gone)
        report.dropped = gone
    else:
        report.missing = gone
    report.images = len(names) - len(gone)
    report.admin_key = _copy_admin_key(settings, folder)
    if report.ok:
        for sub in (target, target / THUMBS):  # every link on disk before the manifest
            fsync_path(sub)
        _write_private(folder / MANIFEST, json.dumps(_manifest(report), indent=2) + "\n")
    report.seconds = time.monotonic() - started
    return report


def _private_empty_folder(folder: Path) -> None:
    if folder.exists():
        if not folder.is_dir():
            raise BackupError(f"{folder} is not a folder")
        if any(folder.iterdir()):
            raise BackupError(f"{folder} is not empty: back up into a new or empty folder")
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is cut by the umask, and an existing folder


def _snapshot_sqlite(source: Path, target: Path) -> set[str]:
    """SQLite's online backup API: a consistent copy while workers write (WAL readers block no
    writer); the filenames it holds."""
    if not source.is_file():
        raise BackupError(f"DATA_DIR: there is no catalog at {source} (never started?)")
    _write_private(target, "")
    src = sqlite3.connect(f"file:{source}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # one step (pages=-1): one read transaction, one snapshot
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the SQLite backup of {source} failed: {exc}") from None
    finally:
        src.close()
    with contextlib.closing(SQLiteCatalog(target)) as snapshot:
        return snapshot.filenames()


def _snapshot_postgres(database_url: str, target: Path) -> set[str]:
    """pg_dump --format=custom of DATABASE_URL's database (one consistent snapshot); the
    filenames the dump holds, read back from the dump itself with pg_restore."""
    dbname, env, where = _libpq(database_url)
    _write_private(target, "")  # pg_dump truncates it and keeps the mode
    done = subprocess.run(
        [
            _pg_program("pg_dump"),
            "--format=custom",
            "--no-password",
            f"--lock-wait-timeout={LOCK_WAIT}",
            f"--file={target}",
            f"--dbname={dbname}",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_dump of {where} failed: {_first_line(done.stderr)}")
    return set(_dumped_filenames(target, env))


def _dumped_filenames(dump: Path, env: dict[str, str]) -> Iterator[str]:
    """The `filename` column of the dump's images table, from pg_restore's COPY text."""
    with subprocess.Popen(
        [_pg_program("pg_restore"), "--data-only", "--table=images", "--file=-", str(dump)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        column = None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if column is None:
                header = re.match(r"COPY \S+ \((.*)\) FROM stdin;\Z", line)
                if header:
                    names = [name.strip().strip('"') for name in header.group(1).split(",")]
                    column = names.index("filename")
            elif line == "\\.":
                column = -1  # the table's end: read on to the end of the output
            elif column >= 0:
                yield line.split("\t")[column]
        error = proc.stderr.read()
    if proc.returncode != 0 or column is None:
        raise BackupError(f"pg_restore could not read {dump}: {_first_line(error)}")


def _copy_files(
    store: Store,
    catalog: Catalog,
    target: Path,
    names: list[str],
    jobs: int,
    report: BackupReport,
) -> list[str]:
    """Every original the snapshot names and its thumbnail into `target`, counted into
    `report`; the filenames deleted since the snapshot (not copied)."""
    stop = threading.Event()  # the bucket stopped answering: do not wait on it for every image

    def one(filename: str) -> tuple[Copied | None, str | None]:
        if stop.is_set():
            return None, f"{filename}: not tried, the store stopped answering"
        try:
            return _copy_image(store, catalog, target, filename), None
        except ServiceUnavailable:
            stop.set()
            return None, f"{filename}: the store did not answer"
        except (OSError, ApiError) as exc:  # unreadable, or no thumbnail and not decodable
            return None, f"{filename}: {migrate.why(exc)}"

    gone = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for filename, (copied, failure) in zip(names, pool.map(one, names), strict=True):
            if failure is not None:
                report.failed.append(failure)
            elif copied is None:
                gone.append(filename)
            else:
                report.files += 2
                report.bytes += copied.bytes
                if copied.remade:
                    report.remade.append(filename)
    return gone


@dataclass(frozen=True)
class Copied:
    bytes: int  # of the original and its thumbnail
    remade: bool  # the thumbnail was missing in the store and was made here


def _copy_image(store: Store, catalog: Catalog, target: Path, filename: str) -> Copied | None:
    """One original, then its thumbnail, into `target`; None when the image was deleted since
    the snapshot (nothing of it is left in `target` then)."""
    image = target / filename
    thumb = target / THUMBS / thumbnail_name(filename)
    if not _save(store.open_image(filename), image):
        return None
    remade = False
    try:
        if not _save(store.open_thumbnail(thumb.name), thumb):
            # Gone with its image (a delete removes the original, then the thumbnail), or
            # lost on its own: `imagehost check` would make it again, so the backup does.
            if catalog.get(filename) is None:
                image.unlink()
                return None
            images.make_thumbnail(image, thumb)
            remade = True
    except BaseException:
        image.unlink(missing_ok=True)
        thumb.unlink(missing_ok=True)
        raise
    return Copied(bytes=image.stat().st_size + thumb.stat().st_size, remade=remade)


def _save(opened: Opened | None, path: Path) -> bool:
    """What a store opened, at `path`: a hard link to a local file (a copy on another
    filesystem) or the downloaded bytes; False when it was gone."""
    if opened is None:
        return False
    if opened.path is not None:
        try:
            os.link(opened.path, path)
        except FileNotFoundError:
            return False
        except OSError:  # EXDEV (another filesystem), or a filesystem without hard links
            try:
                shutil.copy2(opened.path, path)  # its mtime too: the ETag stays the same
            except FileNotFoundError:
                return False
            fsync_path(path)
        return True
    try:
        with open(path, "wb") as out:
            for part in opened.chunks:
                out.write(part)
            out.flush()
            os.fsync(out.fileno())
    except FileNotFoundError:  # deleted between two parts
        path.unlink(missing_ok=True)
        return False
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        opened.close()
    return True


def _drop_rows(snapshot: Path, filenames: list[str]) -> None:
    """Remove these rows from the SQLite snapshot (as a delete would, pending entry and all)."""
    if not filenames:
        return
    with contextlib.closing(SQLiteCatalog(snapshot)) as catalog:
        for filename in filenames:
            catalog.remove(filename)
        catalog.forget_deletes(filenames)


def _copy_admin_key(settings: Settings, folder: Path) -> str:
    """DATA_DIR/admin_key into the backup when there is one; what became of the key, in words."""
    key = rights.local_admin_key(settings.data_dir)
    if key is not None:
        _write_private(folder / rights.ADMIN_KEY_FILE, key + "\n")
    if settings.admin_key:
        return "ADMIN_KEY is set, so it is not in the backup: keep it with your settings"
    if key is not None:
        return f"{rights.ADMIN_KEY_FILE} copied"
    if settings.database_url:
        return "in the dump (PostgreSQL's settings table)"
    return "none yet (made at the first start)"


def _manifest(report: BackupReport) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "catalog": report.catalog,
        "catalog_file": SQLITE_FILE if report.catalog == "sqlite" else DUMP_FILE,
        "store": report.store,
        "images": report.images,
        "files": report.files,
        "bytes": report.bytes,
        "admin_key": report.admin_key,
        # deleted between the snapshot and their copy: rows dropped from the SQLite snapshot,
        # or still in the dump, without files, for restore to drop
        "dropped": report.dropped,
        "missing": report.missing,
        "thumbnails_made": report.remade,
    }


# --- restore ----------------------------------------------------------------------------------


def restore(settings: Settings, folder: Path, jobs: int = migrate.COPY_JOBS) -> RestoreReport:
    """Put the backup in `folder` into the empty installation of `settings`: the files, then
    the catalog, then the admin key. Raises BackupError (nothing changed) for a folder that is
    no backup, a catalog of the other kind, or an installation that is not empty; a file that
    cannot be copied is a failure in the report, and the catalog is not restored then."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    kind = manifest["catalog"]
    if kind == "sqlite" and settings.database_url:
        raise BackupError(
            "this backup holds a SQLite catalog: restore it without DATABASE_URL, then move it "
            "into PostgreSQL with `imagehost migrate-catalog`"
        )
    if kind == "postgres" and not settings.database_url:
        raise BackupError("this backup holds a pg_dump: set DATABASE_URL to an empty database")
    if kind == "postgres":
        _pg_program("pg_restore")
    if not (folder / IMAGES / THUMBS).is_dir():
        raise BackupError(f"{folder / IMAGES} is missing: the backup is damaged")
    source = LocalStore(folder / IMAGES)
    names = source.image_files()
    if len(names) != manifest["images"]:
        raise BackupError(
            f"{folder / IMAGES} holds {len(names)} originals, the manifest says "
            f"{manifest['images']}: the backup is damaged"
        )
    target = open_store(settings)
    in_store, thumbs_in_store = target.images(), target.thumbnails()
    where = _refuse_unless_empty(settings, kind, names, in_store, thumbs_in_store)
    report = RestoreReport(folder=folder.resolve(), images=len(names), tally=migrate.Tally())
    report.tally = _copy_back(source, target, names, in_store, thumbs_in_store, jobs)
    if report.tally.failed:
        return report
    if kind == "sqlite":
        _put_sqlite(folder / SQLITE_FILE, Path(settings.data_dir) / FILE_NAME)
    else:
        _put_postgres(folder / DUMP_FILE, settings.database_url)
    with contextlib.closing(open_catalog(settings)) as catalog:
        _tidy(catalog, manifest["missing"])
    report.catalog = where
    report.admin_key = _put_admin_key(settings, folder)
    found = check(settings, dry_run=True)
    report.check = [] if found.clean else found.lines()
    return report


def read_manifest(folder: Path) -> dict:
    """The manifest of the backup in `folder`; BackupError when it is none of ours."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(
            f"{path} is missing: not an imagehost backup, or one that did not finish"
        ) from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not the manifest of an imagehost backup")
    if manifest.get("version") != VERSION:
        raise BackupError(
            f"{path} is of backup version {manifest.get('version')!r}; this imagehost "
            f"restores version {VERSION}"
        )
    if manifest.get("catalog") not in ("sqlite", "postgres"):
        raise BackupError(f"{path} names no catalog this imagehost knows")
    if not isinstance(manifest.get("images"), int) or not isinstance(manifest.get("missing"), list):
        raise BackupError(f"{path} lacks the count of images or the list of missing ones")
    return manifest


def _refuse_unless_empty(
    settings: Settings,
    kind: str,
    names: list[str],
    in_store: dict[str, float],
    thumbs_in_store: dict[str, float],
) -> str:
    """BackupError unless the catalog has no image (nor album) and the store no object but
    those of this backup (left by an interrupted restore); where the catalog goes, in words."""
    if kind == "sqlite":
        path = Path(settings.data_dir) / FILE_NAME
        where = f"SQLite at {path}"
        if path.exists():
            with contextlib.closing(SQLiteCatalog(path)) as catalog:
                _refuse_if_used(catalog, where)
            # Closing the last connection removes the -wal file: one still there is another
            # process's, which would go on writing to the file replaced under it.
            if path.with_name(path.name + "-wal").exists():
                raise BackupError(f"{where} is open in another process: stop it first")
    else:
        where = f"PostgreSQL at {_libpq(settings.database_url)[2]}"
        with contextlib.closing(open_catalog(settings)) as catalog:
            _refuse_if_used(catalog, where)
    thumbs = {thumbnail_name(name) for name in names}
    foreign = sorted(in_store.keys() - set(names)) + sorted(
        f"{THUMBS}/{name}" for name in thumbs_in_store.keys() - thumbs
    )
    if foreign:
        raise BackupError(
            f"refused: the store already holds {len(foreign)} objects that are not in this "
            f"backup (such as {foreign[0]}); restore only into an empty installation"
        )
    return where


def _refuse_if_used(catalog: Catalog, where: str) -> None:
    total, albums = catalog.counters().total, len(catalog.album_ids())
    if total or albums:
        raise BackupError(
            f"refused: the catalog ({where}) already has {total} images and {albums} albums; "
            "restore only into an empty installation"
        )


def _copy_back(
    source: LocalStore,
    target: Store,
    names: list[str],
    in_store: dict[str, float],
    thumbs_in_store: dict[str, float],
    jobs: int,
) -> migrate.Tally:
    """Every original and thumbnail of the backup into the store, as migrate-store copies."""
    stop = threading.Event()

    def one(filename: str) -> migrate.Tally:
        if stop.is_set():
            return migrate.Tally(failed=[f"{filename}: not tried, the store stopped answering"])
        try:
            return migrate.copy_image(source, target, filename, in_store, thumbs_in_store)
        except ServiceUnavailable:
            stop.set()
            return migrate.Tally(failed=[f"{filename}: the store did not answer"])

    tally = migrate.Tally()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for done in pool.map(one, names):
            tally.add(done)
    return tally


def _put_sqlite(backup_file: Path, path: Path) -> None:
    """The snapshot as the installation's catalog: a copy, fsynced, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.restoring")
    shutil.copyfile(backup_file, partial)
    os.chmod(partial, PRIVATE_FILE)
    fsync_path(partial)
    path.with_name(path.name + "-shm").unlink(missing_ok=True)  # the old file's, if any
    os.replace(partial, path)
    fsync_path(path.parent)


def _put_postgres(dump: Path, database_url: str) -> None:
    """pg_restore in one transaction; --clean drops the empty tables a first start made."""
    dbname, env, where = _libpq(database_url)
    done = subprocess.run(
        [
            _pg_program("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={dbname}",
            str(dump),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(
            f"pg_restore into {where} failed (nothing of the catalog was restored; the files "
            f"are, and are skipped when run again): {_first_line(done.stderr)}"
        )


def _tidy(catalog: Catalog, missing: list[str]) -> None:
    """Drop the rows of images deleted during the backup, and forget every pending delete:
    their objects were the old store's, and none of them is in this one."""
    for filename in missing:
        catalog.remove(filename)
    while batch := catalog.pending_deletes(0, PENDING_BATCH):
        catalog.forget_deletes(batch)


def _put_admin_key(settings: Settings, folder: Path) -> str:
    key = rights.local_admin_key(folder)
    if settings.admin_key:
        return "ADMIN_KEY is set here, and wins"
    if settings.database_url:
        return "the one in the dump"
    if key is None:
        return "none in the backup (a new one is made at the first start)"
    _write_private(Path(settings.data_dir) / rights.ADMIN_KEY_FILE, key + "\n")
    return f"put back in {Path(settings.data_dir) / rights.ADMIN_KEY_FILE}"


# --- helpers ----------------------------------------------------------------------------------


def _pg_program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: {PG_CLIENT}")
    return found


def _libpq(database_url: str) -> tuple[str, dict[str, str], str]:
    """(the URL without its password, the environment with PGPASSWORD, "user@host/db" for
    messages): a password on a command line would be seen by every user's `ps`."""
    parts = urlsplit(database_url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_query = next((v for k, v in query if k == "password"), None)
    password = unquote(password) or in_query or ""
    kept = parts.query
    if in_query is not None:  # otherwise the query stays exactly as it was written
        kept = urlencode([(k, v) for k, v in query if k != "password"], quote_via=quote)
    url = urlunsplit(parts._replace(netloc=f"{user}{at}{hostport}", query=kept))
    env = dict(os.environ)
    env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_S)
    if password:
        env["PGPASSWORD"] = password
    return url, env, f"{unquote(user)}{at}{hostport}{parts.path}"


def _write_private(path: Path, text: str) -> None:
    """A new file of mode 0600 with `text`, fsynced, renamed into place."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(partial, PRIVATE_FILE)  # an existing file keeps its mode under O_CREAT
    os.replace(partial, path)
    fsync_path(path.parent)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")
