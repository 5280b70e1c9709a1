"""nginx in front of the workers: render the config from the settings, run it under `imagehost up`.

One template (`nginx.conf.template`, placeholders `@@NAME@@`) gives two renderings:

- **local** (`imagehost up`, `imagehost nginx-config`): nginx listens on HOST:PORT and proxies
  `/api/` to WORKER_HOST:START .. START+N-1; frontend from the package's `web/`, images from
  IMAGES_DIR, logs in LOG_DIR/nginx/, and its pid and temp folders in the runtime folder
  DATA_DIR/run/nginx/ that `up` owns. No root needed (as root, the nginx workers run as the
  same user as the Python workers, since nginx's default `nobody` could not read the images).
- **docker** (`imagehost nginx-config --docker`), a full nginx.conf for the official nginx
  image, run as `nginx -c <this file> -g 'daemon off;'`. Paths inside the nginx container:

      /srv/web                     the frontend (the package's web/ folder), read-only
      /srv/images                  IMAGES_DIR (the same volume the backend writes), read-only
      /var/log/imagehost/nginx     access.log and error.log (LOG_DIR/nginx on the host;
                                   the folder must exist: `nginx-config --docker` creates
                                   LOG_DIR/nginx when the backend shares that volume)
      /var/cache/nginx/…           temp folders, /tmp/nginx.pid (both exist in the image)

  nginx listens on port 80 and proxies to `backend:START` .. `backend:START+N-1` (the compose
  service name `backend`; WORKER_HOST must then be 0.0.0.0 inside the backend container).
  nginx resolves `backend` when it starts, so it must start after the backend is up.
"""

import contextlib
import grp
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import errors, formats, headers, logs, rights
from .config import Settings
from .errors import ConfigError
from .uploads import body_limit_bytes
from .workers import Child, Supervisor, descendants, worker_children

log = logging.getLogger("imagehost.front")

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
WEB_DIR = Path(__file__).with_name("web")
NGINX_FALLBACK = Path("/usr/sbin/nginx")  # Debian's nginx, when /usr/sbin is not on PATH

UPSTREAM_NAME_IN_DOCKER = "backend"
ERROR_PREFIX = "/_imagehost_error/"  # the template's internal location for nginx's own answers
START_TIMEOUT_S = 15  # how long `up` waits for nginx to listen before it gives up
# nginx's own statuses -> the catalogue's error we answer with. 494 is nginx's "request header
# too large"; 403 is a folder without index.html (serve answers 404 there too); 501 is a
# Transfer-Encoding nginx does not know, which the workers call bad_framing.
NGINX_ERRORS: dict[int, type[errors.ApiError]] = {
    400: errors.BadRequest,
    403: errors.NotFound,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    414: errors.UriTooLong,
    429: errors.RateLimited,  # limit_req and limit_conn (UPLOAD_RATE, UPLOAD_CONNECTIONS)
    494: errors.HeadersTooLarge,
    500: errors.ApiError,
    501: errors.BadFraming,
    502: errors.BadGateway,
    503: errors.ServiceUnavailable,
    504: errors.GatewayTimeout,
    505: errors.HttpVersionNotSupported,
}
# Only files are ever refused a method by nginx itself (/api/ passes every method on).
# A refused upload says when to try again (filled from UPLOAD_RATE by render()).
_ERROR_EXTRA_HEADERS = {
    errors.MethodNotAllowed: {"Allow": "GET, HEAD"},
    errors.RateLimited: {"Retry-After": "@@RETRY_AFTER@@"},
}
# STORAGE=s3: how long nginx serves a cached image before asking the bucket again (a cheap
# conditional GET, 304 while it exists). So a deleted image may be served from nginx's cache for
# up to this long after the delete; every other answer is immediate.
S3_CACHE_VALID = "60s"
_MODE_BLOCK = re.compile(r"^[ \t]*# @@BEGIN (\w+)@@\n(.*?)^[ \t]*# @@END \1@@\n", re.M | re.S)
# Settings land in the config text: nothing that could end a directive or start a variable.
_HOST = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")
_UNSAFE_IN_PATH = re.compile(r"[\s\"';{}$\\#]")


@dataclass(frozen=True)
class Paths:
    """Where a rendering puts things, as nginx (in its own file system) sees them."""

    web_dir: str
    images_dir: str
    log_dir: str  # nginx's own folder: access.log, error.log
    temp_dir: str
    pid_file: str


DOCKER_PATHS = Paths(
    web_dir="/srv/web",
    images_dir="/srv/images",
    log_dir="/var/log/imagehost/nginx",
    temp_dir="/var/cache/nginx",
    pid_file="/tmp/nginx.pid",
)


def runtime_dir(settings: Settings) -> Path:
    """The folder `up` owns: the rendered nginx.conf, nginx's pid file and temp folders."""
    return settings.data_dir.resolve() / "run" / "nginx"


def local_paths(settings: Settings) -> Paths:
    runtime = runtime_dir(settings)
    return Paths(
        web_dir=str(WEB_DIR.resolve()),
        images_dir=str(settings.images_dir.resolve()),
        log_dir=str(settings.log_dir.resolve() / "nginx"),
        temp_dir=str(runtime / "temp"),
        pid_file=str(runtime / "nginx.pid"),
    )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _user_directive() -> str:
    if os.geteuid() != 0:
        return "# (no user directive: nginx runs as the user who started it)"
    # As root, nginx would switch its workers to `nobody`, who cannot read IMAGES_DIR in
    # general; the workers get the same rights as the Python workers instead.
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};"


def render(
    settings: Settings,
    *,
    docker: bool = False,
    paths: Paths | None = None,
    user: str | None = None,
) -> str:
    """The nginx.conf text for these settings.

    `docker` switches to the container rendering (see the module docstring); `paths` and `user`
    override where files are and the `user` line (tests render the docker flavour with
    temporary paths to run `nginx -t` on it). Raises ConfigError for settings nginx cannot use.
    """
    if docker:
        paths = paths or DOCKER_PATHS
        listen = "80"
        upstream_host = UPSTREAM_NAME_IN_DOCKER
        user_line = "user nginx;" if user is None else user
    else:
        if settings.port == 0:
            raise ConfigError("PORT=0: nginx needs a fixed port to listen on")
        paths = paths or local_paths(settings)
        listen = _address(settings.host, settings.port)
        upstream_host = _connect_host(settings.worker_host)
        user_line = _user_directive() if user is None else user
    for name, value in (("HOST", settings.host), ("WORKER_HOST", settings.worker_host)):
        if not _HOST.match(value):
            raise ConfigError(f"{name}={value!r}: not an address nginx can use")
    for name, value in (
        ("IMAGES_DIR", paths.images_dir),
        ("LOG_DIR", paths.log_dir),
        ("DATA_DIR", paths.temp_dir),
        ("web folder", paths.web_dir),
    ):
        if _UNSAFE_IN_PATH.search(value):
            raise ConfigError(
                f"{name}={value!r}: nginx paths cannot contain quotes, spaces, "
                "$, ;, braces or backslashes"
            )
    servers = [_address(upstream_host, port) for port in settings.worker_ports]
    servers += list(settings.backends)
    upstream = "\n".join(f"        server {server} max_fails=0;" for server in servers)
    values = {
        "USER": user_line,
        "PID_FILE": paths.pid_file,
        "LOG_DIR": paths.log_dir,
        "TEMP_DIR": paths.temp_dir,
        "WEB_DIR": paths.web_dir,
        "IMAGES_DIR": paths.images_dir,
        "LISTEN": listen,
        "UPSTREAM_SERVERS": upstream,
        # the workers' own body limit (file + multipart slack): nginx refuses only what they would
        "CLIENT_MAX_BODY": f"{body_limit_bytes(settings.max_upload_bytes) // 1024}k",
        "REQUEST_TIMEOUT": str(settings.request_timeout),
        "UPSTREAM_IDLE_TIMEOUT": str(max(1, settings.request_timeout // 2)),
    }
    values.update(_derived_values())
    values.update(_bucket_values(settings))
    values.update(_limit_values(settings))
    kept = {settings.storage}
    if settings.upload_rate is not None:
        kept.add("upload_rate")
    if settings.upload_connections:
        kept.add("upload_connections")
    if settings.trusted_proxies:
        kept.add("trusted_proxies")
    text = _MODE_BLOCK.sub(lambda block: block[2] if block[1] in kept else "", TEMPLATE.read_text())
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", value)
    if "@@" in text:
        raise RuntimeError("nginx.conf.template has a placeholder render() does not fill")
    return text


def _derived_values() -> dict[str, str]:
    """The placeholders that come from the formats registry, the headers and the errors:
    the same for every rendering, so nginx and `serve` cannot disagree."""
    indent = " " * 16
    return {
        "IMAGE_NAME": formats.IMAGE_NAME_PATTERN,
        "THUMB_NAME": formats.THUMB_NAME_PATTERN,
        "IMAGE_TYPES": f"\n{indent}".join(
            f"{f.content_type} {f.ext};" for f in formats.STORED.values()
        ),
        "HEADERS_IMAGE": headers.nginx_lines(headers.IMAGE, " " * 12),
        "HEADERS_PAGE": headers.nginx_lines(headers.PAGE, " " * 12),
        "IMAGE_CACHE": headers.IMAGE_CACHE,
        "PAGE_CACHE": headers.PAGE_CACHE,
        "PAGE_MAX_AGE": str(headers.SHARED_PAGE_MAX_AGE_S),
        "ERROR_PAGES": "\n        ".join(
            f"error_page {status} ={error.status} {ERROR_PREFIX}{error.code};"
            for status, error in NGINX_ERRORS.items()
        ),
        # The file locations': a missing file (403 without read rights) is $imagehost_missing.
        "ERROR_PAGES_FILES": "\n            ".join(
            ["error_page 403 404 = $imagehost_missing;"]
            + [
                f"error_page {status} ={error.status} {ERROR_PREFIX}{error.code};"
                for status, error in NGINX_ERRORS.items()
                if status not in (403, 404)
            ]
        ),
        "NOT_FOUND_PAGE": f"{ERROR_PREFIX}{errors.NotFound.code}",
        "ERROR_LOCATIONS": "\n".join(
            _error_location(error) for error in dict.fromkeys(NGINX_ERRORS.values())
        ).strip(),
    }


def _limit_values(settings: Settings) -> dict[str, str]:
    """The per-client upload limits (limits.py's rule, in nginx's words) and the proxies whose
    X-Forwarded-For names the client (set_real_ip_from)."""
    rate = settings.upload_rate
    return {
        "UPLOAD_RATE": rate.nginx if rate else "",
        "UPLOAD_BURST": str(settings.upload_burst),
        "UPLOAD_CONNECTIONS": str(settings.upload_connections),
        "RETRY_AFTER": str(rate.retry_after_s if rate else 1),
        "TRUSTED_PROXIES": "\n        ".join(
            f"set_real_ip_from {network};" for network in settings.trusted_proxies
        ),
    }


def _bucket_values(settings: Settings) -> dict[str, str]:
    """Where nginx fetches images from in STORAGE=s3: the endpoint, path-style
    (endpoint/bucket/key) or virtual-host style (bucket.endpoint/key)."""
    if settings.storage != "s3":
        return {}
    parts = urlsplit(settings.s3_endpoint_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not settings.s3_path_style:
        host = f"{settings.s3_bucket}.{host}"
    if not _HOST.match(host):
        raise ConfigError(f"S3_ENDPOINT_URL={settings.s3_endpoint_url!r}: not a host nginx can use")
    default_port = port == (443 if parts.scheme == "https" else 80)
    return {
        "S3_SCHEME": parts.scheme,
        "S3_SERVER": _address(host, port),
        "S3_HOST": host if default_port else _address(host, port),
        "S3_SNI": host,
        "S3_PATH_PREFIX": f"/{settings.s3_bucket}" if settings.s3_path_style else "",
        "S3_CACHE_VALID": S3_CACHE_VALID,
        "IMAGE_TYPE_MAP": "\n        ".join(
            f"~\\.{f.ext}$ {f.content_type};" for f in formats.STORED.values()
        ),
    }


def _error_location(error: type[errors.ApiError]) -> str:
    """One internal location answering `error` as JSON, with the API's headers."""
    body = errors.error_body(error.code, error.detail).decode() + "\n"
    if "'" in body or "\\" in body or "$" in body:
        raise RuntimeError(f"the sentence of {error.code} cannot be written into nginx.conf")
    extra = {
        **headers.API,
        "Cache-Control": headers.ERROR_CACHE,
        **_ERROR_EXTRA_HEADERS.get(error, {}),
    }
    inner = " " * 16
    return (
        f"            location = {ERROR_PREFIX}{error.code} {{\n"
        f"{inner}{headers.nginx_lines(extra, inner)}\n"
        f"{inner}add_header X-Request-ID $request_id always;\n"
        f"{inner}return {error.status} '{body.rstrip()}\\n';\n"
        f"            }}\n"
    )


def find_nginx() -> str | None:
    """The nginx binary: from PATH, else Debian's /usr/sbin/nginx; None when not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return str(NGINX_FALLBACK) if os.access(NGINX_FALLBACK, os.X_OK) else None


def prepare_runtime(settings: Settings) -> Path:
    """Create the runtime and log folders and write the rendered config; returns its path."""
    paths = local_paths(settings)
    for folder in (paths.temp_dir, paths.log_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    conf = runtime_dir(settings) / "nginx.conf"
    _write_atomically(conf, render(settings))
    return conf


def nginx_argv(nginx: str, conf: Path, *, test: bool = False) -> list[str]:
    """nginx in the foreground (so the supervisor sees it die) with `conf`."""
    argv = [nginx, "-p", f"{conf.parent}/", "-c", str(conf), "-g", "daemon off;"]
    return [*argv, "-t", "-q"] if test else argv


def check_config(nginx: str, conf: Path) -> str | None:
    """nginx's own complaint about `conf` (`nginx -t`), or None when it is valid."""
    done = subprocess.run(nginx_argv(nginx, conf, test=True), capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or done.stdout.strip())


def write_config(settings: Settings, output: str | None, docker: bool) -> int:
    """`imagehost nginx-config`: print the rendered config, or write it to `output`."""
    text = render(settings, docker=docker)
    if output is None:
        sys.stdout.write(text)
        return 0
    _write_atomically(Path(output), text)
    # Make the written config usable as is: nginx creates neither log nor temp parents.
    if docker:
        with contextlib.suppress(OSError):
            (settings.log_dir / "nginx").mkdir(parents=True, exist_ok=True)
    else:
        paths = local_paths(settings)
        for folder in (paths.temp_dir, paths.log_dir):
            Path(folder).mkdir(parents=True, exist_ok=True)
    print(f"wrote {output}", file=sys.stderr)
    return 0


def up(settings: Settings, nginx: str, admin_key: str) -> int:
    """`imagehost up`: the workers and the `nginx` binary in front, supervised until
    SIGINT/SIGTERM; `admin_key` is logged in the management link once nginx listens.

    Returns 0 after a clean stop; 1 when nginx refuses the config or cannot listen; 2 for a
    setting nginx cannot use.
    """
    logs.setup(settings, role="up")
    try:
        conf = prepare_runtime(settings)
        _check_ports_free(settings)
    except ConfigError as exc:
        print(f"imagehost up: {exc}", file=sys.stderr)
        return 2
    problem = check_config(nginx, conf)
    if problem:
        print(
            f"imagehost up: nginx refuses the rendered config {conf}:\n{problem}", file=sys.stderr
        )
        return 1
    _become_subreaper()
    nginx_child = Child(
        name="nginx", argv=nginx_argv(nginx, conf), on_exit=lambda _pid: _reap_orphans()
    )
    supervisor = Supervisor([*worker_children(settings), nginx_child])
    failed = []

    listening = _listening(settings, nginx_child)

    def ready() -> bool:
        state = listening()
        if state is None:
            return False
        if state:
            _announce(settings, admin_key)
            return True
        print(
            f"imagehost up: nginx did not start on {settings.host}:{settings.port}; "
            f"see its message above and {settings.log_dir / 'nginx' / 'error.log'}",
            file=sys.stderr,
        )
        failed.append(True)
        supervisor.stopping = True
        return True

    code = supervisor.run(ready=ready)
    return 1 if failed else code


def _check_ports_free(settings: Settings) -> None:
    """Refuse to start when the front port or a worker port is taken (nginx would only retry)."""
    wanted = [("PORT", settings.host, settings.port)]
    wanted += [("WEB_SERVER_START_PORT", settings.worker_host, p) for p in settings.worker_ports]
    for name, host, port in wanted:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise ConfigError(
                    f"{name}: {_address(host, port)} is not free ({exc.strerror})"
                ) from None


def _listening(settings: Settings, nginx_child: Child) -> Callable[[], bool | None]:
    """A check the supervisor polls while `up` starts: None while waiting; False when nginx
    exited or did not listen on HOST:PORT within START_TIMEOUT_S; True once it listens and
    the workers do too (or the time is up: a late worker is the supervisor's to restart)."""
    front = (_connect_host(settings.host), settings.port)
    host = _connect_host(settings.worker_host)
    deadline = time.monotonic() + START_TIMEOUT_S
    listened = []  # once nginx has listened, its later deaths are the supervisor's to mend

    def check() -> bool | None:
        late = time.monotonic() > deadline
        if not listened:
            if not _accepts(*front):
                return False if nginx_child.proc is None or late else None
            listened.append(True)
        if not late and not all(_accepts(host, p) for p in settings.worker_ports):
            return None
        return True

    return check


def _announce(settings: Settings, admin_key: str) -> None:
    """Say where the front listens, and log the management link once (only `up` does)."""
    first, last = settings.worker_ports[0], settings.worker_ports[-1]
    log.info(
        "nginx on %s, %d workers on %s:%d-%d, nginx logs in %s",
        front_url(settings),
        len(settings.worker_ports),
        settings.worker_host,
        first,
        last,
        settings.log_dir / "nginx",
    )
    rights.log_management_link(front_url(settings), admin_key)


def front_url(settings: Settings) -> str:
    """Where users reach nginx: PUBLIC_URL, else HOST:PORT."""
    return settings.public_url or f"http://{_address(_link_host(settings.host), settings.port)}"


def _connect_host(host: str) -> str:
    """The address to connect to for one a socket is bound to: a socket bound to every
    interface is reached over loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _link_host(host: str) -> str:
    return "localhost" if host in ("0.0.0.0", "::", "") else host


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


# --- nginx's worker processes outlive a killed master ------------------------------------
# When the nginx master dies abruptly (SIGKILL, OOM), its workers keep running and keep the
# listening socket, so a restarted nginx could not bind. `up` makes itself their subreaper
# (they are re-parented to it, not to init) and ends them when the master is gone.

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    with contextlib.suppress(Exception):  # Linux only; elsewhere orphans go to init
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _orphaned_nginx_pids() -> list[int]:
    """Our own children that are nginx processes whose master has died (re-parented to us)."""
    me = os.getpid()
    return [
        pid
        for pid, (ppid, cmdline) in descendants(me).items()
        if ppid == me and cmdline.startswith("nginx: ")
    ]


def _reap_orphans() -> None:
    orphans = _orphaned_nginx_pids()
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for pid in orphans:
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
    if orphans:
        log.warning("ended %d nginx worker(s) left behind by their master", len(orphans))
