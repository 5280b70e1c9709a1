"""The command line, and where the application is assembled: serve, up, worker(s),
nginx-config, check, reindex, migrate-store, migrate-catalog, backup, restore, settings.

`server` knows only a handler and its Options; `api.App` knows nothing of HTTP framing; this
module puts them together, so neither imports the other (tests/test_imports.py).
"""

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from . import api, backup, config, front, logs, maintenance, metrics, migrate, rights, server
from .catalog import open_catalog
from .config import Settings
from .errors import ApiError, ConfigError
from .store import open_store
from .workers import Supervisor, worker_children


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagehost",
        description="Self-hosted image hosting. Settings come from the environment and .env "
        "(see `imagehost settings`).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="API, frontend and images in one process on HOST:PORT")
    commands.add_parser("up", help="nginx on HOST:PORT in front of WEB_SERVER_WORKERS workers")
    commands.add_parser("workers", help="only the supervised workers (nginx runs elsewhere)")
    one = commands.add_parser("worker", help="one worker on WORKER_HOST:PORT (used by up)")
    one.add_argument("--port", type=int, required=True)
    nginx = commands.add_parser("nginx-config", help="print or write the rendered nginx config")
    nginx.add_argument("--output", help="write here instead of printing")
    nginx.add_argument("--docker", action="store_true", help="for the compose nginx container")
    check = commands.add_parser("check", help="find and repair catalog/store drift")
    check.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    check.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="objects without a row count only when older than this (default: "
        f"{maintenance.ORPHAN_GRACE_S} with "
        "STORAGE=s3, where other nodes may be mid-upload; 0 for a local folder)",
    )
    commands.add_parser(
        "reindex",
        help="check, and index files dropped into IMAGES_DIR by hand (STORAGE=local only)",
    )
    store = commands.add_parser(
        "migrate-store",
        help="copy the images of a local folder into the bucket of STORAGE=s3 and S3_* "
        "(resumable: skips what is there)",
    )
    store.add_argument(
        "--from-dir",
        type=Path,
        metavar="DIR",
        help="the folder to copy from (default: IMAGES_DIR, whatever STORAGE says)",
    )
    store.add_argument(
        "--jobs",
        type=int,
        default=migrate.COPY_JOBS,
        help=f"images copied at once (default {migrate.COPY_JOBS})",
    )
    catalog = commands.add_parser(
        "migrate-catalog",
        help="copy a SQLite catalog into the PostgreSQL one of DATABASE_URL (skips rows there)",
    )
    catalog.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help="the SQLite catalog to copy (default: DATA_DIR/catalog.sqlite3); the admin key "
        "is taken from the admin_key file beside it",
    )
    saved = commands.add_parser(
        "backup",
        help="a consistent copy of the catalog, the images and the admin key into DIR (new or "
        "empty), while the service runs",
    )
    saved.add_argument("dir", type=Path, metavar="DIR")
    restored = commands.add_parser(
        "restore", help="put the backup in DIR back into an empty installation"
    )
    restored.add_argument("dir", type=Path, metavar="DIR")
    commands.add_parser("settings", help="print every setting with its meaning (.env.sample)")
    return parser


def _options(settings: Settings, app: api.App) -> server.Options:
    return server.Options(
        request_timeout_s=settings.request_timeout,
        max_body_bytes=app.body_limit_bytes,
        public_url=settings.public_url,
        fallback_host=f"{settings.host}:{settings.port}",
        trusted_proxies=settings.trusted_proxies,
    )


def serve(settings: Settings) -> int:
    """`imagehost serve`: API, frontend and images on HOST:PORT in one process."""
    logs.setup(settings, role="serve")
    metrics.reset(settings)
    metrics.setup(settings)
    app = api.App(settings, edge=True)  # no nginx in front: it applies the upload limits

    def ready(port: int) -> None:
        url = f"http://{settings.host}:{port}"
        logging.getLogger("imagehost").info("serving on %s", url)
        rights.log_management_link(url, app.admin_key)

    options = _options(settings, app)
    return server.run(app.handle, options, settings.host, settings.port, False, ready=ready)


def worker(settings: Settings, port: int) -> int:
    """`imagehost worker --port P`: one API worker behind nginx."""
    logs.setup(settings, role=f"worker:{port}")
    metrics.setup(settings)  # into the folder the supervisor emptied (PROMETHEUS_MULTIPROC_DIR)
    app = api.App(settings)
    return server.run(app.handle, _options(settings, app), settings.worker_host, port, True)


def _before_workers(settings: Settings) -> str:
    """Open the store and the catalog (applying its migrations) once, before the workers start,
    and return the admin key, made here once before the workers race for it: a database or
    bucket that cannot be reached stops start-up with one line (ConfigError) instead of
    workers that exit and are restarted forever."""
    open_store(settings)
    with contextlib.closing(open_catalog(settings)) as catalog:
        return rights.load_admin_key(settings, catalog)


def workers(settings: Settings) -> int:
    """`imagehost workers`: the supervised workers only; nginx runs elsewhere (Compose), so
    HOST:PORT / PUBLIC_URL are where users reach it."""
    admin_key = _before_workers(settings)
    logs.setup(settings, role="supervisor")

    def ready() -> bool:
        rights.log_management_link(front.front_url(settings), admin_key)
        return True

    return Supervisor(worker_children(settings)).run(ready=ready)


def up(settings: Settings) -> int:
    """`imagehost up`: nginx in front of the workers; `serve` when nginx is not installed."""
    nginx = front.find_nginx()
    if nginx is None:
        print(
            "nginx is not installed; falling back to `imagehost serve` (one process).", flush=True
        )
        return serve(settings)
    return front.up(settings, nginx, _before_workers(settings))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "settings":
        print(config.env_sample())
        return 0
    try:
        return _run(args, config.load())
    except ConfigError as exc:  # a bad setting, or a catalog or bucket it cannot reach
        print(f"imagehost: configuration error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return serve(settings)
    if args.command == "worker":
        return worker(settings, args.port)
    if args.command == "workers":
        return workers(settings)
    if args.command == "up":
        return up(settings)
    if args.command == "nginx-config":
        return front.write_config(settings, args.output, docker=args.docker)
    if args.command in ("migrate-store", "migrate-catalog"):
        return _migrate(args, settings)
    if args.command in ("backup", "restore"):
        return _backup(args, settings)
    report = maintenance.check(
        settings,
        dry_run=getattr(args, "dry_run", False),
        adopt_foreign=args.command == "reindex",
        orphan_grace_s=getattr(args, "grace", None),
    )
    print("\n".join(report.lines()))
    return 0 if report.clean else 1


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    """migrate-store / migrate-catalog: failures one per line on stderr, then the summary;
    1 when anything failed (run it again once the cause is fixed)."""
    try:
        if args.command == "migrate-store":
            report = migrate.migrate_store(settings, args.from_dir, args.jobs)
        else:
            report = migrate.migrate_catalog(settings, args.from_file)
    except ApiError as exc:  # the bucket or the database stopped answering part-way
        print(
            f"imagehost {args.command}: {exc.detail} Nothing is lost; run it again.",
            file=sys.stderr,
        )
        return 1
    for line in report.problems():
        print(line, file=sys.stderr)
    print(report.summary(), flush=True)
    return 0 if report.ok else 1


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    """backup / restore: the summary line, or the reasons on stderr and 1."""
    try:
        if args.command == "backup":
            report = backup.backup(settings, args.dir)
        else:
            report = backup.restore(settings, args.dir)
    except backup.BackupError as exc:
        print(f"imagehost {args.command}: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:  # the bucket or the database stopped answering part-way
        print(f"imagehost {args.command}: {exc.detail} Run it again.", file=sys.stderr)
        return 1
    for line in report.problems():
        print(line, file=sys.stderr)
    print(report.summary(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
