"""A small HTTP/1.1 load generator for uploads: asyncio streams, keep-alive, N concurrent clients.

wrk measures the GETs; it cannot send a different multipart body per request from Python's
side of the fence, so uploads use this client. Each client keeps one connection open and sends
one request after another: request number n is `request(n)`, a few parts written in turn — a
small part made per request (where the fixture's bytes differ, fixtures.Fixture.variant) and
the large rest built once, so the client's own cost per request stays a write and a header
parse. It records, per request, the latency from the first
byte written to the last byte of the response, the status, and the bytes sent; a connection
that breaks mid-request (reset, EOF, timeout) counts as *dropped*, apart from answers with an
unexpected status.
"""

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.http import multipart, parse_response

HEAD_LIMIT_BYTES = 64 * 1024


@dataclass
class Result:
    """What one load run saw. Rates use `seconds`, from the first request to the last answer."""

    seconds: float
    ok: int  # answers with the expected status
    bad_status: int  # answers with another status
    dropped: int  # requests that got no whole answer (connection reset, EOF, timeout)
    payload_bytes: int  # image bytes (not multipart framing) of the ok requests
    latencies_s: list[float]  # of the ok requests
    statuses: Counter = field(default_factory=Counter)
    client_cpu_s: float = 0.0  # CPU this process spent generating the load

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        """Image data accepted, in MB (10^6 bytes) per second."""
        return self.payload_bytes / 1e6 / self.seconds if self.seconds else 0.0

    def percentile_ms(self, p: float) -> float | None:
        return percentile(self.latencies_s, p) * 1000 if self.latencies_s else None

    def summary(self) -> dict:
        return {
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "bad_status": self.bad_status,
            "dropped": self.dropped,
            "requests_per_s": round(self.requests_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 2),
            "p50_ms": _round(self.percentile_ms(50)),
            "p99_ms": _round(self.percentile_ms(99)),
            "max_ms": _round(max(self.latencies_s) * 1000 if self.latencies_s else None),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=str)},
            "client_cpu_share": round(self.client_cpu_s / self.seconds, 2) if self.seconds else 0,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def multipart_upload(
    host: str, port: int, path: str, data: bytes, filename: str, content_type: str
) -> bytes:
    """A whole POST request carrying `data` as the form field `file`, as a browser sends it."""
    boundary = f"----bench{uuid.UUID(int=len(data)).hex}"
    body = multipart([("file", filename, data)], boundary, part_type=content_type)
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


Request = Callable[[int], tuple[bytes, ...]]  # upload number -> the parts to write, in order


def varied_upload(whole: bytes, data: bytes, head: int, variant: Callable[[int], bytes]) -> Request:
    """Request n of `whole` (a request carrying `data`) with data[:head] replaced by
    variant(n), of the same length: the parts before and after it are built once."""
    start = whole.index(data)
    before, after = whole[:start], whole[start + head :]
    return lambda n: (before, variant(n), after)


def _same(request: bytes) -> Request:
    """Every request the same bytes."""
    parts = (request,)
    return lambda n: parts


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parts: tuple[bytes, ...]
) -> tuple[int, bool]:
    """Send one request and read its whole answer; returns (status, server wants close)."""
    for part in parts:
        writer.write(part)
    await writer.drain()
    status, headers, _ = parse_response(await reader.readuntil(b"\r\n\r\n"))
    close = headers.get("connection", "").lower() == "close"
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif status not in (204, 304) and not 100 <= status < 200:
        await reader.read()  # delimited by close (RFC 9112 §6.3)
        close = True
    return status, close


async def _run(
    host: str,
    port: int,
    request: Request,
    payload_bytes: int,
    concurrency: int,
    duration_s: float | None,
    count: int | None,
    expect: int,
    timeout_s: float,
) -> Result:
    latencies: list[float] = []
    statuses: Counter = Counter()
    tally = {"ok": 0, "bad": 0, "dropped": 0, "started": 0}
    started = time.monotonic()
    deadline = started + duration_s if duration_s is not None else None
    last_answer = [started]

    def may_start() -> int | None:
        """The number of the next request, or None when the run is over."""
        if deadline is not None and time.monotonic() >= deadline:
            return None
        if count is not None and tally["started"] >= count:
            return None
        tally["started"] += 1
        return tally["started"] - 1

    async def client() -> None:
        reader = writer = None
        try:
            while (number := may_start()) is not None:
                try:
                    if writer is None:
                        reader, writer = await asyncio.wait_for(
                            asyncio.open_connection(host, port, limit=HEAD_LIMIT_BYTES), timeout_s
                        )
                    t0 = time.monotonic()
                    status, close = await asyncio.wait_for(
                        _exchange(reader, writer, request(number)), timeout_s
                    )
                    t1 = time.monotonic()
                except (OSError, EOFError, ValueError, TimeoutError, asyncio.IncompleteReadError):
                    tally["dropped"] += 1
                    statuses["dropped"] += 1
                    close = True
                    await asyncio.sleep(0.01)  # a refusing server is not spun against
                else:
                    last_answer[0] = max(last_answer[0], t1)
                    statuses[status] += 1
                    if status == expect:
                        tally["ok"] += 1
                        latencies.append(t1 - t0)
                    else:
                        tally["bad"] += 1
                if close and writer is not None:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    cpu0 = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    cpu = time.process_time() - cpu0
    end = last_answer[0] if tally["ok"] + tally["bad"] else time.monotonic()
    return Result(
        seconds=max(end - started, 1e-9),
        ok=tally["ok"],
        bad_status=tally["bad"],
        dropped=tally["dropped"],
        payload_bytes=tally["ok"] * payload_bytes,
        latencies_s=latencies,
        statuses=statuses,
        client_cpu_s=cpu,
    )


def run(
    host: str,
    port: int,
    request: Request | bytes,
    *,
    payload_bytes: int,
    concurrency: int,
    duration_s: float | None = None,
    count: int | None = None,
    expect: int = 201,
    timeout_s: float = 30.0,
) -> Result:
    """Send `request` (the same bytes each time, or request(n) for the n-th) over
    `concurrency` keep-alive connections for `duration_s` or `count`.

    Bounded either way: no request starts after the duration (or count) is used up, and each
    one gets at most `timeout_s` seconds, after which it counts as dropped.
    """
    if duration_s is None and count is None:
        raise ValueError("give a duration or a count")
    if isinstance(request, bytes):
        request = _same(request)
    return asyncio.run(
        _run(host, port, request, payload_bytes, concurrency, duration_s, count, expect, timeout_s)
    )
