"""The HTTP layer, and the only module that imports http.server: bytes → Request → handler →
Response → bytes.

It knows the application only as a callable (`Handle`, which __main__ binds to api.App.handle)
and its `Options`; it imports neither api nor front. Each worker is a ThreadingHTTPServer
speaking HTTP/1.1 with keep-alive. A reaper thread enforces REQUEST_TIMEOUT on every request
from its first byte to its last, so a client that trickles bytes (slowloris) cannot hold a
thread forever; an idle keep-alive connection is closed by the socket timeout. Every error
becomes the JSON shape of errors.error_body here, through messages.Response.error.
"""

import contextlib
import ctypes
import ipaddress
import logging
import random
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .errors import (
    ApiError,
    BadFraming,
    BadLength,
    BadPath,
    BadRequest,
    HeadersTooLarge,
    HttpVersionNotSupported,
    ServiceUnavailable,
    UriTooLong,
    error_body,
)
from .messages import JSON_HEADERS, Body, Request, Response, Stream

log = logging.getLogger("imagehost.request")

M_ARENA_MAX = -8  # from <malloc.h>
MAX_CONNECTIONS = 512  # per process; each is a thread, so this bounds memory under a flood
LINGER_S = 2.0  # after refusing a body, read and discard what is in flight for this long
_BUSY = error_body(ServiceUnavailable.code, "The server is busy; try again shortly.")
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"X-Content-Type-Options: nosniff\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)
# http.server's own refusals (bad request line, headers too large …), by status.
_PROTOCOL_ERRORS = {
    e.status: e for e in (BadRequest, UriTooLong, HeadersTooLarge, HttpVersionNotSupported)
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(:\d{1,5})?$")


@dataclass(frozen=True)
class Options:
    """What the HTTP layer needs besides the handler: its limits and how to make base URLs."""

    request_timeout_s: int  # first byte to last byte of one request; also the idle limit
    max_body_bytes: int  # larger bodies are refused (413) before they are read
    public_url: str = ""  # base of handed-out URLs; empty: from the request's Host
    fallback_host: str = "127.0.0.1"  # host[:port] when the request's Host is unusable
    # TRUSTED_PROXIES (serve): peers whose X-Forwarded-For may name the client
    trusted_proxies: tuple[str, ...] = ()


Handle = Callable[[Request], Response]  # the application: api.App.handle


class Deadlines:
    """Sockets with a time by which their current request must have arrived in full."""

    def __init__(self):
        self._due: dict[socket.socket, float] = {}
        self._lock = threading.Lock()

    def set(self, sock: socket.socket, seconds: float) -> None:
        with self._lock:
            self._due[sock] = time.monotonic() + seconds

    def clear(self, sock: socket.socket) -> None:
        with self._lock:
            self._due.pop(sock, None)

    def reap_forever(self, interval: float = 0.5) -> None:
        while True:
            time.sleep(interval)
            now = time.monotonic()
            with self._lock:
                late = [s for s, due in self._due.items() if due < now]
                for sock in late:
                    del self._due[sock]
            for sock in late:
                log.info(
                    "closing a connection whose request took too long",
                    extra={"fields": {"reason": "request_timeout"}},
                )
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address, handler: Handle, options: Options, behind_proxy: bool):
        self.handler = handler
        self.options = options
        self.behind_proxy = behind_proxy
        self.trusted_networks = [ipaddress.ip_network(n) for n in options.trusted_proxies]
        self.deadlines = Deadlines()
        self.in_flight = 0  # requests being handled; shutdown waits for them
        self.in_flight_lock = threading.Lock()
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, Handler)
        threading.Thread(target=self.deadlines.reap_forever, daemon=True).start()

    def process_request(self, request, client_address) -> None:
        """One thread per connection, up to MAX_CONNECTIONS; past that, a quick 503."""
        if not self.connections.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(BUSY_RESPONSE)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY a response written in two parts waits ~40 ms for the peer's
    # delayed ACK (Nagle); with keep-alive that was most of every request's latency.
    disable_nagle_algorithm = True
    server_version = "imagehost"
    sys_version = ""
    server: Server

    def setup(self) -> None:
        self.timeout = self.server.options.request_timeout_s  # idle keep-alive limit
        super().setup()

    def handle_one_request(self) -> None:
        self.server.deadlines.set(self.connection, self.server.options.request_timeout_s)
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            self.server.deadlines.clear(self.connection)

    def handle_expect_100(self) -> bool:
        """Answer `Expect: 100-continue` with 100 only when the body could be accepted."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > self.server.options.max_body_bytes:
            return True  # no 100: the handler refuses with 413 and the client never sends
        return super().handle_expect_100()

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # every method reaches the router, which answers 404/405
            return self.dispatch
        raise AttributeError(name)

    def dispatch(self) -> None:
        with self.server.in_flight_lock:
            self.server.in_flight += 1
        try:
            self._dispatch()
        finally:
            with self.server.in_flight_lock:
                self.server.in_flight -= 1

    def _dispatch(self) -> None:
        started = time.perf_counter()
        request, response = None, None
        try:
            request = self._request()
            response = self.server.handler(request)
            if not request.body.done:  # handler did not read the body: don't reuse the socket
                self.close_connection = True
        except ApiError as exc:
            response = Response.error(exc)
            if request is None or not request.body.done:
                self.close_connection = True
        except Exception:
            log.exception("unexpected error", extra={"fields": self._fields(request)})
            response = Response.error(ApiError())
            self.close_connection = True
        self.server.deadlines.clear(self.connection)
        sent = self._send(response, request)
        if self.close_connection and request is not None and not request.body.done:
            self._linger()
        fields = self._fields(request)
        fields.update(
            status=response.status, bytes=sent, ms=round((time.perf_counter() - started) * 1000, 1)
        )
        level = logging.WARNING if response.status >= 400 else logging.INFO
        if response.status >= 500:
            level = logging.ERROR
        log.log(level, "%s %s", self.command, self.path[:200], extra={"fields": fields})

    def _fields(self, request: Request | None) -> dict:
        if request is None:
            return {"client": self.client_address[0]}
        return {"rid": request.request_id, "client": request.client}

    def _request(self) -> Request:
        parts = urlsplit(self.path)
        if not parts.path.startswith("/") or parts.scheme or parts.netloc:
            raise BadPath()
        headers = self.headers
        coding = headers.get("Transfer-Encoding")
        if coding is not None:
            # RFC 9112 §6.1/§6.3: only plain chunked, and never together with Content-Length —
            # anything else could frame the body differently than a proxy did (smuggling).
            if coding.strip().lower() != "chunked" or "Content-Length" in headers:
                raise BadFraming()
            length = None
        else:
            raw = (headers.get("Content-Length") or "0").strip()
            if (
                not (raw.isascii() and raw.isdigit())
                or len(headers.get_all("Content-Length") or ()) > 1
            ):
                raise BadLength()
            length = int(raw)
        body = Body(self.rfile, length, self.server.options.max_body_bytes)
        rid = headers.get("X-Request-ID") or ""
        behind = self.server.behind_proxy
        return Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
            base_url=self._base_url(headers, behind),
            request_id=rid if _REQUEST_ID.match(rid) else f"{random.getrandbits(64):016x}",
            client=self._client(headers, behind),
        )

    def _client(self, headers, behind_proxy: bool) -> str:
        """The client's address: behind our own nginx, the X-Real-IP it sets; else the peer,
        unless the peer is a trusted proxy — then the last X-Forwarded-For address that is not
        one (what a proxy appended, never what the client wrote first)."""
        peer = self.client_address[0]
        if behind_proxy:
            return headers.get("X-Real-IP") or peer
        trusted = self.server.trusted_networks
        if not trusted or not _within(peer, trusted):
            return peer
        forwarded = ",".join(headers.get_all("X-Forwarded-For") or ())
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            if not _within(hop, trusted):
                return hop if _is_address(hop) else peer
        return peer

    def _base_url(self, headers, behind_proxy: bool) -> str:
        options = self.server.options
        if options.public_url:
            return options.public_url
        scheme = "http"
        if behind_proxy and headers.get("X-Forwarded-Proto") in ("http", "https"):
            scheme = headers["X-Forwarded-Proto"]
        host = headers.get("Host") or ""
        if not _HOST.match(host):
            host = options.fallback_host
        return f"{scheme}://{host}"

    def _send(self, response: Response, request: Request | None) -> int:
        """Write the whole response; returns the body bytes sent."""
        headers = dict(response.headers)
        if request is not None:
            headers["X-Request-ID"] = request.request_id
        if response.file is not None:
            length = response.file.stat().st_size
        elif response.stream is not None:
            length = response.stream.length
        else:
            length = len(response.body)
        if response.status != 304:
            headers["Content-Length"] = str(length)
        if self.close_connection:
            headers["Connection"] = "close"
        head = [
            f"HTTP/1.1 {response.status} {_reason(response.status)}",
            f"Date: {self.date_time_string()}",
        ]
        head += [f"{name}: {value}" for name, value in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        bodyless = self.command == "HEAD" or response.status in (204, 304)
        try:
            if bodyless or response.file is not None or response.stream is not None:
                self.wfile.write(data)
            else:
                self.wfile.write(data + response.body)  # one write: one packet when small
            if bodyless:
                return 0
            if response.file is not None:
                with open(response.file, "rb") as f:
                    self.connection.sendfile(f)  # wfile is unbuffered, so this keeps order
            if response.stream is not None:
                return self._send_stream(response.stream)
            return length
        except OSError:
            self.close_connection = True
            return 0
        finally:
            if response.stream is not None:
                response.stream.close()

    def _send_stream(self, stream: Stream) -> int:
        """Write a streamed body after its headers. The status is sent already: a part that
        fails, or parts that fall short of the Content-Length, end the connection instead."""
        sent = 0
        try:
            for chunk in stream.chunks:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            raise  # the client went away: handled like any failed write
        except Exception as exc:
            log.warning(
                "a streamed body failed part-way; closing the connection",
                extra={"fields": {"error": type(exc).__name__, "bytes": sent}},
            )
        if sent != stream.length:
            self.close_connection = True
        return sent

    def _linger(self) -> None:
        """Half-close and drain briefly, so the client reads our answer instead of a reset."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            until = time.monotonic() + LINGER_S
            while time.monotonic() < until and self.connection.recv(65536):
                pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """http.server's own refusals (bad request line, header too large …) as JSON."""
        error = _PROTOCOL_ERRORS.get(code, BadRequest)
        body = error_body(error.code, error.detail)
        self.close_connection = True
        try:
            self.send_response_only(error.status)
            for name, value in JSON_HEADERS.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass
        log.warning(
            "refused a malformed request",
            extra={"fields": {"status": code, "client": self.client_address[0]}},
        )

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
        pass  # dispatch() logs every request once, with our fields


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas (M_ARENA_MAX): with one thread per connection,
    each thread's arena kept its own freed decode buffers and a worker's peak RSS during a
    burst of 4 MB uploads went from ~50 MB to ~115 MB (bench, memory stage)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def run(
    handler: Handle, options: Options, host: str, port: int, behind_proxy: bool, ready=None
) -> int:
    """Serve `handler` on host:port until SIGTERM/SIGINT; in-flight requests are finished.

    `ready(port)` is called once the socket listens (port 0 picks a free one).
    """
    _limit_malloc_arenas()
    httpd = Server((host, port), handler, options, behind_proxy)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2})
    thread.start()
    if ready:
        ready(httpd.server_address[1])
    stop.wait()
    httpd.shutdown()  # stops accepting; requests in flight run to the end (idle ones don't)
    httpd.server_close()
    deadline = time.monotonic() + 10
    while httpd.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    return 0


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(address: str, networks: list) -> bool:
    """`address` is in one of `networks` (False for anything that is not an address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
