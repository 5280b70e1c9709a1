"""The sweeper: removes expired images, and the objects of deletes whose store step failed
(S3 down, a node killed between the row and the objects), one sweeper at a time per
installation.

An expired image is hidden by every catalog read from its `expires_at` on; the round after
that moves its row to the pending deletes and removes its objects, so its files outlive its
expiry by at most SWEEP_INTERVAL_S plus one round's work (README: "Expiring uploads").

A delete removes the row and records the filename in the catalog's pending deletes in one
transaction, then deletes the objects and forgets the entry. Each worker process runs a
Sweeper thread; every `interval_s` it tries the catalog's sweeper lock without waiting (an
flock in DATA_DIR for SQLite, an advisory lock for PostgreSQL, so one sweeper runs however many
nodes), deletes the objects of up to `limit` entries older than `grace_s` and forgets them.
Store deletes are idempotent, so a sweep that races a delete still on its way does no harm.
Errors are logged and the entries stay for the next round; the thread never ends the worker.
"""

import logging
import threading

from . import metrics
from .catalog import Catalog
from .errors import ApiError
from .store import Store

log = logging.getLogger("imagehost.sweeper")

# How long the objects of a failed delete outlive their row once the store answers again — and
# a deleted image stays reachable at its URL, since images are served from the store, not the
# catalog. Each round costs a worker one lock attempt (and one indexed read for the winner),
# so 10 s is cheap even with dozens of workers.
SWEEP_INTERVAL_S = 10.0
# A delete forgets its own entry milliseconds after the row (or gives up after the store's
# timeout); the sweeper leaves entries this young to it rather than racing it.
SWEEP_GRACE_S = 5.0
SWEEP_LIMIT = 200  # entries per round: bounded work; a backlog drains over several rounds


def sweep(catalog: Catalog, store: Store, older_than_s: float, limit: int) -> list[str]:
    """Delete the objects of up to `limit` pending deletes older than `older_than_s` seconds
    and forget them; the filenames done. Stops at the first store failure (the store is down:
    the rest would fail alike) and raises it after forgetting those done."""
    return _delete_objects(catalog, store, catalog.pending_deletes(older_than_s, limit))


def sweep_expired(catalog: Catalog, store: Store, limit: int) -> list[str]:
    """Remove up to `limit` expired images: their rows (into the pending deletes, as a delete
    does), then their objects at once; the filenames. Raises like sweep(); an image whose
    objects were not removed stays a pending delete for the next round."""
    return _delete_objects(catalog, store, catalog.expire(limit))


def _delete_objects(catalog: Catalog, store: Store, filenames: list[str]) -> list[str]:
    done: list[str] = []
    try:
        for filename in filenames:
            store.delete(filename)
            done.append(filename)
    finally:
        if done:
            catalog.forget_deletes(done)
    return done


class Sweeper:
    """The sweeper thread of one worker process over `catalog` and `store`."""

    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        interval_s: float = SWEEP_INTERVAL_S,
        grace_s: float = SWEEP_GRACE_S,
        limit: int = SWEEP_LIMIT,
    ):
        self.catalog, self.store = catalog, store
        self.interval_s, self.grace_s, self.limit = interval_s, grace_s, limit
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the daemon thread (it dies with the process; nothing of a sweep needs
        finishing: an entry is forgotten only after its objects are gone)."""
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self.sweep_once()
            except (OSError, ApiError) as exc:  # S3 or the database still down
                log.warning(
                    "sweep stopped (%s: %s); next round in %.0f s",
                    type(exc).__name__,
                    exc,
                    self.interval_s,
                )
            except Exception:  # never end the worker: the next round tries again
                log.exception("sweep failed; next round in %.0f s", self.interval_s)

    def sweep_once(self) -> list[str] | None:
        """One round: None when another sweeper holds the lock, else the filenames whose
        objects were removed. Raises what the store or the catalog raised (those done are
        forgotten first); the entries left wait for the next round."""
        with self.catalog.sweeper_lock() as held:
            if not held:
                metrics.sweep_done("skipped")
                return None
            try:
                expired = sweep_expired(self.catalog, self.store, self.limit)
                done = sweep(self.catalog, self.store, self.grace_s, self.limit)
            except BaseException:
                metrics.sweep_done("failed")
                raise
        metrics.sweep_done("swept", len(expired), len(done))
        if expired:
            log.info("removed %d expired images", len(expired))
        if done:
            log.info("swept the objects of %d deleted images", len(done))
        return expired + done
