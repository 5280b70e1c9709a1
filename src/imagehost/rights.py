"""Who may do what: the admin key, delete tokens, and the UPLOADS / LISTING policies.

The admin key is ADMIN_KEY, or one made on first start and kept where every process that must
agree on it can read it: in the shared catalog with DATABASE_URL, else in DATA_DIR.

Secrets are compared with hmac.compare_digest; delete tokens are stored only as SHA-256
hashes, so a leaked catalog does not let anyone delete.
"""

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path

from .catalog import Catalog, open_catalog
from .config import Settings
from .errors import Forbidden, Unauthorized

ADMIN_KEY_FILE = "admin_key"  # in DATA_DIR
ADMIN_KEY_SETTING = "admin_key"  # its name in a shared catalog's settings


def load_admin_key(settings: Settings, catalog: Catalog | None = None) -> str:
    """The admin key of this node; every process of a node, and every node, gets the same one.

    ADMIN_KEY when set always wins. Otherwise, with DATABASE_URL, the key kept in the shared
    catalog: the first node to start stores a new one and every node reads that. Otherwise
    DATA_DIR/admin_key, made on first start. `catalog` is the caller's open catalog; without
    one, one is opened (and closed) here when DATABASE_URL is set. Raises errors.ConfigError or
    ServiceUnavailable when the database cannot be reached."""
    if settings.admin_key:
        return settings.admin_key
    if catalog is None and settings.database_url:
        with contextlib.closing(open_catalog(settings)) as opened:
            return load_admin_key(settings, opened)
    if catalog is not None:
        kept = keep_admin_key(catalog, secrets.token_urlsafe(32))
        if kept is not None:
            return kept
    return _key_file(Path(settings.data_dir) / ADMIN_KEY_FILE)


def keep_admin_key(catalog: Catalog, key: str) -> str | None:
    """The key a shared catalog keeps, `key` unless it keeps one already; None for SQLite."""
    return catalog.keep_setting(ADMIN_KEY_SETTING, key)


def local_admin_key(data_dir: Path) -> str | None:
    """The key kept in `data_dir`/admin_key, or None when there is none (never made here)."""
    try:
        return (Path(data_dir) / ADMIN_KEY_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def _key_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of several workers starting at once, exactly one writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
        out.flush()
        os.fsync(out.fileno())
    return key


def new_delete_token() -> tuple[str, str]:
    """A fresh delete token and the hash to store."""
    token = secrets.token_urlsafe(24)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def is_admin(authorization: str | None, admin_key: str) -> bool:
    """True only for `Authorization: Bearer <ADMIN_KEY>`; raises Forbidden for a wrong key."""
    given = bearer(authorization)
    if given is None:
        return False
    if not hmac.compare_digest(given.encode(), admin_key.encode()):
        raise Forbidden("The admin key is wrong.")
    return True


def require_admin(
    authorization: str | None, admin_key: str, what: str, other_token: str = ""
) -> None:
    """The admin key, or `other_token` when one is set (METRICS_TOKEN for scrapers); 401
    without a bearer token, 403 for a wrong one."""
    given = bearer(authorization)
    if other_token and given and hmac.compare_digest(given.encode(), other_token.encode()):
        return
    if not is_admin(authorization, admin_key):
        raise Unauthorized(f"{what} needs the admin key (Authorization: Bearer <key>).")


def check_delete(
    authorization: str | None, delete_token: str | None, admin_key: str, token_hash: str | None
) -> None:
    """Allow a delete by the admin key or the image's own delete token; raise otherwise."""
    if is_admin(authorization, admin_key):
        return
    if not delete_token:
        raise Unauthorized("Deleting needs this image's delete token or the admin key.")
    if not token_hash or not hmac.compare_digest(hash_token(delete_token), token_hash):
        raise Forbidden("The delete token is wrong for this image.")


def log_management_link(base_url: str, admin_key: str) -> None:
    """Log, once per start, the link that stores the admin key in a browser: whoever opens it
    may list and delete every image, hence "keep it private"."""
    logging.getLogger("imagehost").info(
        "management link (keep it private): %s/upload.html#key=%s", base_url, admin_key
    )
