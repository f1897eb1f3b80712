"""One small HTTP server per session, serving routes registered by name.

Spark's driver runs one Jetty server on ``spark.ui.port`` (default 4040, the next port
when taken, up to ``spark.port.maxRetries`` tries) and mounts its servlets on it: the UI
pages and the PrometheusServlet. ``UiServer`` plays that part: a route is a path and a
function returning a ``Response``; whoever needs a page (Prometheus metrics today, the
Structured Streaming pages later) registers it. Requests are served on daemon threads,
never on a query's thread. The port is bound at once (its URL is known and a taken
range fails the caller), but ``http.server`` (with ``http.client``, ``ssl`` and
``email``) is imported and the server built on the serving thread when the first
request arrives: a session's start-up does not pay for them (issue 15), and a UI nobody
opens never does.
"""

from __future__ import annotations

import functools
import logging
import os
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["PrefixRoute", "Response", "Route", "UiServer", "bind_first_free"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Response:
    """What a route answers: a body and its content type (status 200 unless told)."""

    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    status: int = 200


Route = Callable[[], Response]
# Answers every path under a prefix; gets the rest of the path (``/q/abc`` -> ``"abc"``).
PrefixRoute = Callable[[str], Response]


class UiServer:
    """The session's HTTP server: ``add_route("/metrics/prometheus", fn)`` mounts a page.

    >>> server = UiServer.start("127.0.0.1", 0)
    >>> server.add_route("/hello", lambda: Response(b"hi"))
    >>> import urllib.request
    >>> urllib.request.urlopen(server.url + "/hello").read()
    b'hi'
    >>> server.close()
    """

    def __init__(self, listening: socket.socket) -> None:
        self._socket = listening
        self._routes: dict[str, Route] = {}
        self._prefixes: dict[str, PrefixRoute] = {}
        self._lock = threading.Lock()
        # The loop sleeps until a request or close() writes to this pipe: no polling, so
        # an idle UI costs a running query nothing and a stop does not wait for a poll.
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="unbounded-ui", daemon=True)

    @classmethod
    def start(cls, host: str, port: int, max_retries: int = 16) -> UiServer:
        """Bind ``host:port`` or the next free port (``port`` 0: any free port)."""
        server = cls(bind_first_free(host, port, max_retries))
        server._thread.start()
        log.info("Serving the unbounded UI and metrics at %s", server.url)
        return server

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def add_route(self, path: str, route: Route) -> None:
        """Mount ``route`` at ``path``; a second registration of one path replaces it."""
        with self._lock:
            self._routes[path] = route

    def add_prefix_route(self, prefix: str, route: PrefixRoute) -> None:
        """Mount ``route`` for every path ``prefix/<rest>`` (an exact route wins)."""
        with self._lock:
            self._prefixes[prefix.rstrip("/") + "/"] = route

    def remove_route(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)
            self._prefixes.pop(path.rstrip("/") + "/", None)

    def route_for(self, path: str) -> Route | None:
        clean = urlsplit(path).path.rstrip("/") or "/"
        with self._lock:
            exact = self._routes.get(clean)
            if exact is not None:
                return exact
            for prefix, route in self._prefixes.items():
                if clean.startswith(prefix):
                    return functools.partial(route, clean[len(prefix):])
        return None

    def _serve(self) -> None:
        httpd: ThreadingHTTPServer | None = None
        with selectors.DefaultSelector() as selector:
            selector.register(self._socket, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not any(key.fd == self._wake_read for key, _ in selector.select()):
                httpd = httpd or _http_server(self._socket, self)
                httpd.handle_request()

    def close(self) -> None:
        os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            self._thread.join()
        self._socket.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def bind_first_free(host: str, port: int, max_retries: int) -> socket.socket:
    """Spark's port search: ``port``, then ``port + 1``... up to ``max_retries`` more;
    the socket is listening (as ``http.server`` binds: IPv4, address reuse)."""
    last: OSError | None = None
    for candidate in _candidates(port, max_retries):
        try:
            return _listening(host, candidate)
        except OSError as error:
            last = error
    raise OSError(f"Could not bind the UI server on {host}: ports {port} to "
                  f"{port + max_retries} are taken ({last}). Set spark.ui.port to a free "
                  "port, or 0 for any free port.")


def _listening(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


_BACKLOG = 5  # socketserver's request_queue_size


def _http_server(listening: socket.socket, server: UiServer) -> ThreadingHTTPServer:
    """A ``ThreadingHTTPServer`` over the socket ``bind_first_free`` bound."""
    from http.server import ThreadingHTTPServer

    httpd = ThreadingHTTPServer(listening.getsockname()[:2], _handler_for(server),
                                bind_and_activate=False)
    httpd.socket.close()  # the unbound socket it made; ours is bound and listening
    host, port = listening.getsockname()[:2]
    httpd.socket, httpd.server_address = listening, (host, port)
    httpd.server_name, httpd.server_port = str(host), int(port)
    httpd.daemon_threads = True
    httpd.timeout = 0  # handle_request() is only called once the socket is readable
    return httpd


def _candidates(port: int, max_retries: int) -> list[int]:
    return [0] if port == 0 else [port + i for i in range(max_retries + 1) if port + i < 65536]


def _answer(route: Route | None) -> Response:
    if route is None:
        return Response(b"Not found\n", status=404)
    try:
        return route()
    except Exception:
        log.exception("A UI route failed")
        return Response(b"Internal error; see the driver's log\n", status=500)


def _handler_for(server: UiServer) -> type[BaseHTTPRequestHandler]:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            response = _answer(server.route_for(self.path))
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler
