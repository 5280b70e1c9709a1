"""The image catalog: one row per stored image, and the only package that writes SQL.

base      ImageRow, Counters, the Catalog interface, reading migrations/<dialect>/NNN_*.sql
sqlite    the default: DATA_DIR/catalog.sqlite3 in WAL mode, migrations under BEGIN IMMEDIATE
postgres  DATABASE_URL: the only importer of psycopg; a connection pool, timeouts → 503,
          migrations under an advisory lock

open_catalog(settings) picks one. Both keep the listing's counters in triggers, so its ETag and
X-Total-Count are one read, and both raise errors.ServiceUnavailable (503) rather than wait
longer than their timeout. Both record a removed row's filename as a pending delete in the same
transaction, and keep the installation's sweeper lock (sweeper.py finishes those deletes).
psycopg is imported only when DATABASE_URL is set.
"""

from pathlib import Path

from ..config import Settings
from .base import Catalog as Catalog  # re-exported: callers import from the package
from .base import Counters as Counters
from .base import ImageRow as ImageRow
from .base import ImportConflict as ImportConflict

FILE_NAME = "catalog.sqlite3"  # in DATA_DIR


def open_catalog(settings: Settings) -> Catalog:
    """The installation's catalog: SQLite in DATA_DIR when DATABASE_URL is empty, else
    PostgreSQL. Applies pending migrations first. Raises errors.ConfigError (one line naming
    DATABASE_URL, never the password) when the database cannot be reached or migrated."""
    if not settings.database_url:
        from .sqlite import SQLiteCatalog

        return SQLiteCatalog(Path(settings.data_dir) / FILE_NAME)
    from .postgres import PostgresCatalog

    return PostgresCatalog(settings.database_url)
