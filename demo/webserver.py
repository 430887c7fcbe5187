"""A small local web server for the demo, the integration tests and the benchmarks.

It serves a directory (and optional in-memory routes) on loopback with what a feed poller needs to be
exercised honestly: ETag and Last-Modified on every 200, 304 on a matching conditional GET, gzip when
the client asks for it, 404 for what is missing, correct content types for feeds and pages, and an
in-memory log of every request so a test can see what the client sent.

Text files may contain the placeholder ``__BASE__``; it is replaced with the server's own address
(``http://127.0.0.1:PORT``) when served, so bundled feeds link to pages on whatever port the server got.

Library use::

    with start_server("demo/sample") as srv:
        feed_url = srv.url("/feeds/courier.xml")
        ...
        assert srv.requests[-1].status == 200

Script use: ``python demo/webserver.py demo/sample --port 8000``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import mimetypes
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self, cast
from urllib.parse import unquote, urlsplit

PLACEHOLDER = b"__BASE__"

# Only these are rewritten: replacing bytes inside images or archives would corrupt them.
TEXT_SUFFIXES = frozenset(
    {".html", ".htm", ".xml", ".rdf", ".rss", ".atom", ".json", ".txt", ".opml", ".css", ".js", ".csv"}
)

_XML_ROOT_TYPES = {
    b"rss": "application/rss+xml",
    b"feed": "application/atom+xml",
    b"rdf:rdf": "application/rdf+xml",
    b"opml": "text/x-opml",
}
_FIXED_TYPES = {
    ".rdf": "application/rdf+xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".opml": "text/x-opml",
    ".txt": "text/plain; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
_ROOT_RE = re.compile(rb"<(?![?!])([A-Za-z_][\w:.-]*)")
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it. Header names are lower-cased; repeated headers are joined."""

    method: str
    path: str  # the request target as sent, query string included
    headers: dict[str, str]
    status: int
    at: float  # time.time() when the response was ready to send
    client: str  # peer address, e.g. "127.0.0.1"


@dataclass(frozen=True)
class Route:
    """An in-memory response for one path (matched without the query string).

    A 200 route gets the same treatment as a file (ETag, Last-Modified, 304, gzip); any other status is
    sent as given, so a route can also be a 500, a redirect (``headers={"Location": ...}``) or a 410.
    """

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None  # default: from the path and the body, as for files
    substitute: bool = False  # replace __BASE__ in the body
    delay: float | None = None  # seconds; overrides the server's delay for this path
    last_modified: float = field(default_factory=time.time)


def sniff_html_charset(data: bytes, limit: int = 65536) -> str | None:
    """The charset an HTML page declares in a <meta> (``charset=`` or ``http-equiv``), lower-cased, or None.

    Looks further than a browser's 1 KB prescan: real pages put long scripts before their meta tags.
    """
    m = _META_CHARSET_RE.search(data[:limit])
    return m.group(1).decode("ascii").lower() if m else None


def content_type_for(path: str, body: bytes) -> str:
    """Content type for a served file: feeds by their root element, HTML with its declared charset.

    XML types carry no charset on purpose: without one, the XML declaration decides (RFC 7303), which is
    right for feeds in any encoding.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".html", ".htm"):
        charset = sniff_html_charset(body)
        if charset is None:
            try:
                body.decode("utf-8")
                charset = "utf-8"
            except UnicodeDecodeError:
                return "text/html"
        return f"text/html; charset={charset}"
    if suffix == ".xml":
        m = _ROOT_RE.search(body[:4096])
        root = m.group(1).lower() if m else b""
        return _XML_ROOT_TYPES.get(root, "application/xml")
    if suffix == ".json":
        return "application/feed+json" if b"jsonfeed.org/version" in body[:2048] else "application/json"
    if suffix in _FIXED_TYPES:
        return _FIXED_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest()[:24] + '"'


def _gzip_etag(etag: str) -> str:
    # A strong validator must differ between encodings of the same resource (RFC 9110 8.8.3).
    return etag[:-1] + '-gz"'


def _accepts_gzip(header: str | None) -> bool:
    if not header:
        return False
    allowed: dict[str, float] = {}
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        allowed[token.strip().lower()] = q
    if "gzip" in allowed:
        return allowed["gzip"] > 0
    return allowed.get("*", 0.0) > 0


def _etag_matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    wanted = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return etag in wanted or _gzip_etag(etag) in wanted


def _not_modified_since(if_modified_since: str, last_modified: float) -> bool:
    try:
        since = parsedate_to_datetime(if_modified_since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an unparseable date is ignored, as RFC 9110 asks
    return int(last_modified) <= since


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open many connections at once; the default backlog of 5 drops some on a busy box.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        root: Path | None,
        delay: float,
        verbose: bool,
        address_family: socket.AddressFamily,
    ) -> None:
        self.address_family = address_family
        super().__init__(address, _Handler)
        self.root = root
        self.delay = delay
        self.verbose = verbose
        self.base_url = ""
        self.routes: dict[str, Route] = {}
        self.log: list[RequestRecord] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive for pooled clients; every response therefore sets Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_version = "newswire-demo-web/1"

    @property
    def srv(self) -> _Server:
        return cast(_Server, self.server)

    def log_message(self, format: str, *args: object) -> None:
        if self.srv.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _method_not_allowed(self) -> None:
        self._respond(
            405, b"method not allowed\n", {"Allow": "GET, HEAD", "Content-Type": "text/plain"}, True
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = _method_not_allowed

    def _serve(self, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path) or "/"
        route = self.srv.routes.get(path)
        delay = route.delay if route is not None and route.delay is not None else self.srv.delay
        if delay > 0:
            time.sleep(delay)
        if route is not None:
            body = self._substitute(route.body) if route.substitute else route.body
            if route.status != 200:
                headers = {"Content-Type": route.content_type or "text/plain", **route.headers}
                self._respond(route.status, body, headers, send_body)
                return
            ctype = route.content_type or content_type_for(path, body)
            self._send_entity(body, ctype, route.last_modified, dict(route.headers), send_body)
            return
        found = self._find_file(path)
        if found is None:
            self._respond(404, b"not found\n", {"Content-Type": "text/plain; charset=utf-8"}, send_body)
            return
        try:
            body = found.read_bytes()
            mtime = found.stat().st_mtime
        except OSError:
            self._respond(404, b"not found\n", {"Content-Type": "text/plain; charset=utf-8"}, send_body)
            return
        if found.suffix.lower() in TEXT_SUFFIXES:
            body = self._substitute(body)
        self._send_entity(body, content_type_for(found.name, body), mtime, {}, send_body)

    def _substitute(self, body: bytes) -> bytes:
        return body.replace(PLACEHOLDER, self.srv.base_url.encode("ascii"))

    def _find_file(self, path: str) -> Path | None:
        root = self.srv.root
        if root is None:
            return None
        candidate = (root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(root):
            return None  # ../ escapes are treated as missing, not as errors
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None

    def _send_entity(
        self, body: bytes, ctype: str, mtime: float, extra: dict[str, str], send_body: bool
    ) -> None:
        etag = _etag(body)
        use_gzip = _accepts_gzip(self.headers.get("Accept-Encoding")) and len(body) > 0
        headers = {
            "Content-Type": ctype,
            "ETag": _gzip_etag(etag) if use_gzip else etag,
            "Last-Modified": formatdate(int(mtime), usegmt=True),
            "Vary": "Accept-Encoding",
            **extra,
        }
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        # If-None-Match wins over If-Modified-Since when both are sent (RFC 9110 13.1.3).
        if (inm is not None and _etag_matches(inm, etag)) or (
            inm is None and ims is not None and _not_modified_since(ims, mtime)
        ):
            del headers["Content-Type"]
            self._respond(304, b"", headers, send_body=False)
            return
        if use_gzip:
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self._respond(200, body, headers, send_body)

    def _respond(self, status: int, body: bytes, headers: Mapping[str, str], send_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        # Logged before the first byte goes out, so a client that has its response sees it in the log.
        self._record(status)
        self.end_headers()
        if send_body and status != 304:
            self.wfile.write(body)

    def _record(self, status: int) -> None:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record = RequestRecord(self.command, self.path, headers, status, time.time(), self.client_address[0])
        with self.srv.lock:
            self.srv.log.append(record)


class RunningServer:
    """Handle on a server running in a background thread. Also a context manager that stops it."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def root(self) -> Path | None:
        return self._server.root

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def substitute(self, data: bytes) -> bytes:
        """``data`` with ``__BASE__`` replaced by this server's base URL, as served."""
        return data.replace(PLACEHOLDER, self.base_url.encode("ascii"))

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._server.lock:
            return list(self._server.log)

    def requests_for(self, path: str) -> list[RequestRecord]:
        """Logged requests whose path (query string ignored) is ``path``."""
        return [r for r in self.requests if urlsplit(r.path).path == path]

    def clear_requests(self) -> None:
        with self._server.lock:
            self._server.log.clear()

    def add_route(
        self,
        path: str,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        substitute: bool = False,
        delay: float | None = None,
    ) -> None:
        """Serve ``body`` at ``path`` (before any file of the same path). Replaces an earlier route."""
        self._server.routes[path] = Route(
            body, status, dict(headers or {}), content_type, substitute, delay, time.time()
        )

    def set_route(self, path: str, route: Route) -> None:
        self._server.routes[path] = route

    def remove_route(self, path: str) -> None:
        self._server.routes.pop(path, None)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(
    root: str | Path | None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    delay: float = 0.0,
    routes: Mapping[str, Route] | None = None,
    base_url: str | None = None,
    verbose: bool = False,
) -> RunningServer:
    """Start serving ``root`` (a directory, or None for routes only) in a background thread.

    ``port=0`` picks a free port. ``delay`` (seconds) is waited before every response, to stand in for
    network latency in benchmarks. ``base_url`` overrides what ``__BASE__`` becomes (default
    ``http://HOST:PORT``; a wildcard host is shown as loopback).
    """
    root_path: Path | None = None
    if root is not None:
        root_path = Path(root).resolve()
        if not root_path.is_dir():
            raise NotADirectoryError(f"not a directory: {root}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = _Server((host, port), root_path, delay, verbose, family)
    if routes:
        server.routes.update(routes)
    actual_port = int(server.server_address[1])
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{shown}]" if ":" in shown else shown
    server.base_url = (base_url or f"http://{shown}:{actual_port}").rstrip("/")
    # A short poll interval keeps stop() quick in tests; the cost is a wake-up every 50 ms.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"webserver:{actual_port}",
        daemon=True,
    )
    thread.start()
    return RunningServer(server, thread)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a directory of feeds and pages on loopback.")
    parser.add_argument("root", help="directory to serve (e.g. demo/sample)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before every response")
    parser.add_argument("--base-url", default=None, help="what __BASE__ becomes (default http://HOST:PORT)")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    try:
        srv = start_server(
            args.root, args.host, args.port, delay=args.delay, base_url=args.base_url, verbose=not args.quiet
        )
    except (OSError, ValueError) as exc:
        print(f"webserver: {exc}", file=sys.stderr)
        return 2
    print(f"Serving {srv.root} at {srv.base_url}/ (Ctrl-C to stop)", flush=True)
    # A demo script stops the server with SIGTERM; treat it like Ctrl-C so the socket is closed cleanly.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
