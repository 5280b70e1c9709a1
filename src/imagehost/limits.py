"""Abuse limits on uploads, per client: a rate (a token bucket with a burst) and a number of
uploads at once — the rule nginx applies in `up` and Compose (limit_req, limit_conn; the
template renders it from the same settings), applied here by `serve`, which is its own edge.

Workers behind nginx do not apply it again: every request reaches them from nginx, and each
process would see a part of a client's uploads. Deletes are never limited, so the admin key is
never kept from removing things.
"""

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import RateLimited, TooManyUploads

PER = {"second": 1, "minute": 60}  # the units nginx's limit_req knows (r/s, r/m)
MAX_CLIENTS = 65536  # buckets kept; the least recently seen client is forgotten first


@dataclass(frozen=True)
class Rate:
    """`count` uploads per `unit` (second or minute), as UPLOAD_RATE says."""

    count: int
    unit: str

    @property
    def per_second(self) -> float:
        return self.count / PER[self.unit]

    @property
    def nginx(self) -> str:
        """limit_req_zone's rate= value."""
        return f"{self.count}r/{self.unit[0]}"

    @property
    def retry_after_s(self) -> int:
        """How long until one more upload is allowed once the burst is spent."""
        return max(1, math.ceil(1 / self.per_second))


def parse_rate(raw: str) -> Rate | None:
    """`60/minute`, `2/second` → Rate; `off` or empty → None (no limit)."""
    text = raw.strip().lower()
    if text in ("", "off"):
        return None
    count, _, unit = text.partition("/")
    unit = {"s": "second", "sec": "second", "m": "minute", "min": "minute"}.get(unit, unit)
    if not (count.isascii() and count.isdigit()) or unit not in PER:
        raise ValueError("must be N/second, N/minute or off")
    if not 1 <= int(count) <= 100_000:
        raise ValueError("must allow between 1 and 100000 uploads per unit")
    return Rate(int(count), unit)


class UploadLimiter:
    """The per-client rule for one `serve` process: thread-safe, bounded in memory."""

    def __init__(self, rate: Rate | None, burst: int, at_once: int):
        self.rate, self.burst, self.at_once = rate, burst, at_once
        self._lock = threading.Lock()
        # client -> (tokens, when last refilled): a bucket of burst + 1, as nginx's burst is
        # the requests beyond the one the rate allows now
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._running: dict[str, int] = {}

    @contextmanager
    def upload(self, client: str) -> Iterator[None]:
        """Admit one upload of `client` for the block, or raise RateLimited / TooManyUploads
        (429, with Retry-After)."""
        with self._lock:
            self._take_token(client)
            running = self._running.get(client, 0)
            if self.at_once and running >= self.at_once:
                raise TooManyUploads(
                    f"At most {self.at_once} uploads at once from one address; wait for one "
                    "to finish.",
                    headers={"Retry-After": "1"},
                )
            self._running[client] = running + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running[client] - 1
                if left:
                    self._running[client] = left
                else:
                    del self._running[client]

    def _take_token(self, client: str) -> None:
        if self.rate is None:
            return
        now = time.monotonic()
        capacity = self.burst + 1
        tokens, since = self._buckets.pop(client, (capacity, now))
        tokens = min(capacity, tokens + (now - since) * self.rate.per_second)
        if tokens < 1:
            self._keep(client, tokens, now)
            wait = math.ceil((1 - tokens) / self.rate.per_second)
            raise RateLimited(
                f"Too many uploads from this address: at most {self.rate.count} per "
                f"{self.rate.unit} (and {self.burst} at once above that). Try again in "
                f"{wait} s.",
                headers={"Retry-After": str(wait)},
            )
        self._keep(client, tokens - 1, now)

    def _keep(self, client: str, tokens: float, now: float) -> None:
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
