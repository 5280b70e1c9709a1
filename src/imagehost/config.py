"""The settings table: every variable's name, default and meaning, parsed and validated once.

Values come from an injectable mapping (the process environment by default) layered over an
optional `.env` file. The same table drives `imagehost settings`, `.env.sample` and the README.
"""

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from dotenv import dotenv_values

from . import expiry, limits
from .errors import ConfigError
from .formats import BY_EXT, CEILING_FRAMES, CEILING_PIXELS, NAMES


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _formats(raw: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    names = [BY_EXT[n].name if n in BY_EXT else n for n in names]  # "jpg" means jpeg
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise ValueError(f"must be a comma-separated subset of {','.join(NAMES)}")
    return tuple(dict.fromkeys(names))


def _lifetime(raw: str) -> int | None:
    """Seconds, or None (empty or "never"): see expiry.py for the forms accepted."""
    return expiry.parse(raw) if raw.strip() else None


def _networks(raw: str) -> tuple[str, ...]:
    """`addr[/prefix],…` → normalized networks ("127.0.0.1/32", …)."""
    out = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(
                "must be IP addresses or networks (CIDR), separated by commas"
            ) from None
    return tuple(out)


def _public_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


def _key(raw: str) -> str:
    value = raw.strip()
    if value and len(value) < 16:
        raise ValueError("must be at least 16 characters (or empty to generate one)")
    return value


def _database_url(raw: str) -> str:
    value = raw.strip()
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be empty (SQLite in DATA_DIR) or a postgresql:// URL")
    return value


def _endpoint(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not re.match(r"^https?://[A-Za-z0-9.\[\]:-]+$", value):
        raise ValueError("must be http(s)://host[:port], without a path")
    return value


def _bucket(raw: str) -> str:
    value = raw.strip()
    # S3's bucket naming rules (lowercase, digits, dots, hyphens), which also keep it safe in
    # the nginx config and in URLs.
    if value and not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", value):
        raise ValueError("must be a valid S3 bucket name (3-63 of a-z 0-9 . -)")
    return value


def _backends(raw: str) -> tuple[str, ...]:
    """`host:port[-port],…` → ("host:port", …), each range expanded."""
    out = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        found = re.match(
            r"^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\]):(\d{1,5})(?:-(\d{1,5}))?$", item
        )
        if not found:
            raise ValueError("must be host:port or host:first-last, separated by commas")
        host, first = found[1], int(found[2])
        last = int(found[3] or first)
        if not 1 <= first <= last <= 65535 or last - first >= 64:
            raise ValueError("ports must be 1-65535, first <= last, at most 64 in a range")
        out += [f"{host}:{port}" for port in range(first, last + 1)]
    return tuple(out)


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    parse: Callable[[str], object] = str
    aliases: tuple[str, ...] = ()
    secret: bool = False  # never printed, not even in an error about it


def _cpu_count() -> str:
    return str(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


# name, default, meaning, parser. Order is the order of .env.sample and the README table.
TABLE: tuple[Setting, ...] = (
    Setting("IMAGES_DIR", "./images", "where image files are stored (served at /images/)", Path),
    Setting("LOG_DIR", "./logs", "app.log here, nginx logs in nginx/", Path, ("LOGS_DIR",)),
    Setting("DATA_DIR", "./data", "catalog database and generated admin key; never served", Path),
    Setting("WEB_SERVER_WORKERS", "", "worker processes (default: number of CPUs)", _int(1, 64)),
    Setting(
        "WEB_SERVER_START_PORT",
        "8000",
        "first worker port; worker i listens on START+i",
        _int(1, 65535),
    ),
    Setting(
        "WORKER_HOST",
        "127.0.0.1",
        "address the workers bind (keep loopback; 0.0.0.0 only inside a container network)",
    ),
    Setting("HOST", "127.0.0.1", "address the front (nginx or serve) listens on"),
    Setting("PORT", "8080", "port the front (nginx or serve) listens on", _int(0, 65535)),
    Setting(
        "PUBLIC_URL",
        "",
        "base of handed-out URLs, e.g. https://img.example.org (default: from the request's Host)",
        _public_url,
    ),
    Setting("MAX_UPLOAD_MB", "5", "largest accepted upload, in MiB", _int(1, 1024)),
    Setting(
        "MAX_IMAGE_PIXELS",
        "50000000",
        "larger images are refused (decompression bombs)",
        _int(1, CEILING_PIXELS),
    ),
    Setting(
        "MAX_FRAMES",
        "1000",
        "animated images with more frames are refused",
        _int(1, CEILING_FRAMES),
    ),
    Setting("ALLOWED_FORMATS", ",".join(NAMES), "accepted formats, by detected content", _formats),
    Setting(
        "ADMIN_KEY",
        "",
        "lists-all and deletes-any key (default: generated once, kept in DATA_DIR/admin_key, "
        "or in the catalog with DATABASE_URL, where the first node to start makes it)",
        _key,
    ),
    Setting(
        "UPLOADS",
        "open",
        "open: anyone may upload; key: uploads need the admin key",
        _choice("open", "key"),
    ),
    Setting(
        "LISTING",
        "public",
        "public: anyone may list; key: listing needs the admin key",
        _choice("public", "key"),
    ),
    Setting(
        "DEFAULT_EXPIRY",
        "",
        "lifetime of an upload that asks for none: seconds or ISO 8601 (PT1H, P1D, P1W, P1M); "
        "empty: never (MAX_EXPIRY when that is set)",
        _lifetime,
    ),
    Setting(
        "MAX_EXPIRY",
        "",
        "longest lifetime an upload may ask for (longer is refused, never shortened); "
        "empty: no limit, uploads may be kept forever",
        _lifetime,
    ),
    Setting(
        "UPLOAD_RATE",
        "60/minute",
        "uploads one client address may make: N/second or N/minute (on top of UPLOAD_BURST); "
        "off: no limit",
        limits.parse_rate,
    ),
    Setting(
        "UPLOAD_BURST",
        "30",
        "uploads a client may make at once above UPLOAD_RATE before it is refused (429)",
        _int(0, 100_000),
    ),
    Setting(
        "UPLOAD_CONNECTIONS",
        "8",
        "uploads one client address may have in progress at once; 0: no limit",
        _int(0, 10_000),
    ),
    Setting(
        "TRUSTED_PROXIES",
        "",
        "proxies in front of this server (IPs or CIDRs) whose X-Forwarded-For names the client; "
        "empty: the client is the peer",
        _networks,
    ),
    Setting(
        "MAX_STORAGE_MB",
        "0",
        "storage quota: uploads are refused (507) once the stored images reach this many MiB; "
        "0: none",
        _int(0, 1 << 30),
    ),
    Setting("METRICS", "true", "serve Prometheus metrics at /api/metrics (false: off)", _bool),
    Setting(
        "METRICS_TOKEN",
        "",
        "a bearer token for Prometheus to read /api/metrics with (the admin key works too)",
        _key,
        secret=True,
    ),
    Setting("STRIP_METADATA", "true", "remove EXIF/GPS/XMP/IPTC from stored originals", _bool),
    Setting(
        "REQUEST_TIMEOUT", "30", "seconds a client has to send one whole request", _int(1, 3600)
    ),
    Setting(
        "LOG_LEVEL",
        "info",
        "debug, info, warning or error",
        _choice("debug", "info", "warning", "error"),
    ),
    Setting(
        "LOG_FORMAT", "text", "text, or json for one JSON object per line", _choice("text", "json")
    ),
    Setting(
        "DATABASE_URL",
        "",
        "empty: the catalog is SQLite in DATA_DIR; postgresql://user:pass@host:port/db: PostgreSQL",
        _database_url,
        secret=True,
    ),
    Setting(
        "STORAGE",
        "local",
        "local: image files in IMAGES_DIR; s3: objects in S3_BUCKET",
        _choice("local", "s3"),
    ),
    Setting(
        "S3_ENDPOINT_URL", "", "with STORAGE=s3: the S3 server, http(s)://host[:port]", _endpoint
    ),
    Setting("S3_BUCKET", "", "with STORAGE=s3: the bucket (it must exist)", _bucket),
    Setting("S3_REGION", "us-east-1", "with STORAGE=s3: the bucket's region"),
    Setting(
        "S3_ACCESS_KEY_ID",
        "",
        "with STORAGE=s3: the access key",
        aliases=("AWS_ACCESS_KEY_ID",),
        secret=True,
    ),
    Setting(
        "S3_SECRET_ACCESS_KEY",
        "",
        "with STORAGE=s3: the secret key",
        aliases=("AWS_SECRET_ACCESS_KEY",),
        secret=True,
    ),
    Setting(
        "S3_PATH_STYLE",
        "true",
        "with STORAGE=s3: true: endpoint/bucket/key; false: bucket.endpoint/key",
        _bool,
    ),
    Setting(
        "BACKENDS",
        "",
        "for up/nginx-config: other nodes' workers, host:port[-port],… balanced with this node's",
        _backends,
    ),
)


@dataclass(frozen=True)
class Settings:
    images_dir: Path
    log_dir: Path
    data_dir: Path
    web_server_workers: int
    web_server_start_port: int
    worker_host: str
    host: str
    port: int
    public_url: str
    max_upload_mb: int
    max_image_pixels: int
    max_frames: int
    allowed_formats: tuple[str, ...]
    admin_key: str
    uploads: str
    listing: str
    default_expiry: int | None  # seconds; None: never
    max_expiry: int | None
    upload_rate: limits.Rate | None
    upload_burst: int
    upload_connections: int
    trusted_proxies: tuple[str, ...]
    max_storage_mb: int
    metrics: bool
    metrics_token: str
    strip_metadata: bool
    request_timeout: int
    log_level: str
    log_format: str
    database_url: str
    storage: str
    s3_endpoint_url: str
    s3_bucket: str
    s3_region: str
    s3_access_key_id: str
    s3_secret_access_key: str
    s3_path_style: bool
    backends: tuple[str, ...]

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def worker_ports(self) -> list[int]:
        start = self.web_server_start_port
        return list(range(start, start + self.web_server_workers))

    def replace(self, **changes) -> "Settings":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)

    def as_environ(self) -> dict[str, str]:
        """These settings as variables, so a child process (a worker) reads the same ones."""
        out = {}
        for setting in TABLE:
            value = getattr(self, setting.name.lower())
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif value is None:
                value = "off" if setting.name == "UPLOAD_RATE" else ""
            elif isinstance(value, limits.Rate):
                value = f"{value.count}/{value.unit}"
            out[setting.name] = str(value)
        return out


def load(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Settings from `environ` (default `os.environ`) over `env_file` if it exists.

    Raises ConfigError with one line naming the variable and its value when a value is bad.
    """
    source: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        source.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    source.update(os.environ if environ is None else environ)
    values = {}
    for setting in TABLE:
        raw = next(
            (source[n] for n in (setting.name, *setting.aliases) if source.get(n, "") != ""),
            setting.default,
        )
        if setting.name == "WEB_SERVER_WORKERS" and raw == "":
            raw = _cpu_count()
        try:
            values[setting.name.lower()] = setting.parse(raw)
        except ValueError as exc:
            reason = str(exc) if "must" in str(exc) else "is not valid"
            shown = setting.name if setting.secret else f"{setting.name}={raw!r}"
            raise ConfigError(f"{shown}: {reason}") from None
    settings = Settings(**values)
    if settings.storage == "s3":
        for name in ("S3_ENDPOINT_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
            if not getattr(settings, name.lower()):
                raise ConfigError(f"{name}: must be set with STORAGE=s3")
    if settings.max_expiry is not None:
        if settings.default_expiry is None and source.get("DEFAULT_EXPIRY", "").strip():
            raise ConfigError("DEFAULT_EXPIRY=never: must not exceed MAX_EXPIRY")
        if settings.default_expiry is None:
            settings = settings.replace(default_expiry=settings.max_expiry)
        elif settings.default_expiry > settings.max_expiry:
            raise ConfigError(
                f"DEFAULT_EXPIRY={source.get('DEFAULT_EXPIRY')!r}: must not exceed MAX_EXPIRY"
            )
    last_port = settings.web_server_start_port + settings.web_server_workers - 1
    if last_port > 65535:
        raise ConfigError(
            f"WEB_SERVER_START_PORT={settings.web_server_start_port}: "
            f"{settings.web_server_workers} workers would pass port 65535"
        )
    return settings


def env_sample() -> str:
    """The text of .env.sample: every setting with its meaning and default."""
    lines = ["# Image host settings. Every line is optional; the value shown is the default.", ""]
    for setting in TABLE:
        lines.append(f"# {setting.help}")
        lines.append(f"#{setting.name}={setting.default}")
        lines.append("")
    return "\n".join(lines)
