"""The command line: serve, up, worker, workers, nginx-config, check, reindex, settings."""

import argparse
import sys

from . import config
from .errors import ConfigError


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
    check = commands.add_parser("check", help="find and repair catalog/disk drift")
    check.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    commands.add_parser(
        "reindex", help="index every image file in IMAGES_DIR, including files dropped in by hand"
    )
    commands.add_parser("settings", help="print every setting with its meaning (.env.sample)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "settings":
        print(config.env_sample())
        return 0
    try:
        settings = config.load()
    except ConfigError as exc:
        print(f"imagehost: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from .server import serve

        return serve(settings)
    if args.command == "worker":
        from .server import worker

        return worker(settings, args.port)
    if args.command == "workers":
        from . import front, logs, rights
        from .workers import Supervisor, worker_children

        logs.setup(settings, role="supervisor")
        admin_key = rights.load_admin_key(settings.admin_key, settings.data_dir)
        # nginx runs elsewhere (Compose): HOST:PORT / PUBLIC_URL are where users reach it.
        return Supervisor(worker_children(settings)).run(
            ready=lambda: front.log_management_link(settings, admin_key)
        )
    if args.command == "up":
        from . import front

        return front.up(settings)
    if args.command == "nginx-config":
        from . import front

        return front.write_config(settings, args.output, docker=args.docker)
    from . import maintenance

    report = maintenance.check(
        settings, dry_run=getattr(args, "dry_run", False), adopt_foreign=args.command == "reindex"
    )
    print("\n".join(report.lines()))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
