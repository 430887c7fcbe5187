"""Scriptable local HTTP/1.1 servers for tests: well-behaved, slow, lying, or hostile.

A :class:`HostileServer` runs an asyncio server in its own thread (so a test's own event loop can
block or be busy without stalling the server) on a chosen loopback address (``127.0.0.x`` or
``::1``) and an ephemeral port. Each path maps to a *handler*, an async function given a
:class:`Conn`; the factories below script common behaviours (plain answers, redirects, conditional
GET, endless or bomb bodies, stalls, trickles, raw garbage). Every connection is closed after one
response, so ``active``/``max_active`` count simultaneous requests exactly.

The server keeps a log of requests (method, target, lower-cased headers, client address), the
number of TCP connections accepted and the body bytes it managed to send, so tests can prove
that a refused URL was never fetched, that a capped download stopped early, and so on.

:class:`RecordingBackend` is an httpcore network backend for the fetcher's ``network_backend``
hook: it records every connect attempt and refuses anything that is not loopback, so a test can
never send a packet off the machine even if the code under test is wrong.

Use::

    with HostileServer() as server:
        server.route("/feed", respond(b"<rss/>", content_type="application/rss+xml"))
        url = server.url("/feed")
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import struct
import threading
import time
import typing
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

import brotli
import httpcore

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
Handler = Callable[["Conn"], Awaitable[None]]

_REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class RequestRecord:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    client: tuple[str, int]
    at: float  # time.monotonic()
    server_name: str | None = None  # TLS SNI, when the server speaks TLS

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


class ActiveCounter:
    """Counts simultaneous connections; share one between servers to measure overall concurrency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def enter(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1


class Conn:
    """One request on one connection, as a handler sees it."""

    def __init__(self, server: HostileServer, request: RequestRecord, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.request = request
        self.writer = writer

    async def head(self, status: int, headers: Headers = (), *, reason: str | None = None) -> None:
        """Status line and headers. ``Connection: close`` is added unless given."""
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        if not any(k.lower() == "connection" for k, _ in items):
            items.append(("Connection", "close"))
        text = f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Whatever')}\r\n"
        text += "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"
        self.writer.write(text.encode("latin-1"))
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        """Body bytes as they are (the handler chose Content-Length or close-delimited framing)."""
        self.writer.write(data)
        await self.writer.drain()
        self.server._count_sent(len(data))

    async def send_chunk(self, data: bytes) -> None:
        """One chunk of a ``Transfer-Encoding: chunked`` body."""
        if data:
            self.writer.write(b"%x\r\n" % len(data) + data + b"\r\n")
            await self.writer.drain()
            self.server._count_sent(len(data))

    async def end_chunks(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()


# --------------------------------------------------------------------------- behaviours


def respond(
    body: bytes = b"",
    status: int = 200,
    headers: Headers = (),
    *,
    content_type: str = "text/plain; charset=utf-8",
) -> Handler:
    """A complete answer with Content-Length."""
    extra = list(headers.items()) if isinstance(headers, Mapping) else list(headers)

    async def handler(conn: Conn) -> None:
        await conn.head(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
        await conn.send(body)

    return handler


def redirect(location: str, status: int = 302) -> Handler:
    return respond(b"", status, [("Location", location)])


def conditional(
    body: bytes,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    content_type: str = "application/rss+xml",
) -> Handler:
    """200 with the validators, or 304 when the request's If-None-Match/If-Modified-Since match them."""
    validators = [("ETag", etag)] if etag else []
    validators += [("Last-Modified", last_modified)] if last_modified else []

    async def handler(conn: Conn) -> None:
        h = conn.request.headers
        if (etag and h.get("if-none-match") == etag) or (
            last_modified and h.get("if-modified-since") == last_modified
        ):
            await conn.head(304, validators)
            return
        await respond(body, 200, validators, content_type=content_type)(conn)

    return handler


def stream(
    total_bytes: int,
    *,
    chunk: bytes = b"x" * 65536,
    declare_length: bool = False,
    headers: Headers = (),
) -> Handler:
    """A generated body of ``total_bytes`` (never held in memory): chunked, or with Content-Length."""
    extra = list(headers.items()) if isinstance(headers, Mapping) else list(headers)

    async def handler(conn: Conn) -> None:
        framing = ("Content-Length", str(total_bytes)) if declare_length else ("Transfer-Encoding", "chunked")
        await conn.head(200, [("Content-Type", "text/html"), framing, *extra])
        left = total_bytes
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            if declare_length:
                await conn.send(piece)
            else:
                await conn.send_chunk(piece)
            left -= len(piece)
        if not declare_length:
            await conn.end_chunks()

    return handler


def gzip_bomb(decoded_bytes: int, *, block: int = 1 << 20) -> Handler:
    """A valid gzip stream of ``decoded_bytes`` zeros, sent chunked and generated on the fly.

    Blocks are separated by full flushes, so every block after the first compresses to the same
    ~1 KB: the stream costs nothing to produce however many GB it claims.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(block)
    first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    repeat = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    blocks = max(1, decoded_bytes // block)

    async def handler(conn: Conn) -> None:
        await conn.head(
            200,
            [("Content-Type", "text/html"), ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")],
        )
        crc = zlib.crc32(zeros)
        await conn.send_chunk(first)
        for _ in range(blocks - 1):
            crc = zlib.crc32(zeros, crc)
            await conn.send_chunk(repeat)
        await conn.send_chunk(b"\x03\x00" + struct.pack("<II", crc, (blocks * block) & 0xFFFFFFFF))
        await conn.end_chunks()

    return handler


def compressed(body: bytes, encoding: str, *, content_type: str = "text/html") -> Handler:
    """``body`` compressed with gzip, deflate (zlib-wrapped), raw-deflate (sent as deflate) or br."""
    if encoding == "gzip":
        data, name = zlib.compress(body, 6, wbits=31), "gzip"
    elif encoding == "deflate":
        data, name = zlib.compress(body, 6), "deflate"
    elif encoding == "raw-deflate":
        data, name = zlib.compress(body, 6, wbits=-15), "deflate"
    elif encoding == "br":
        data, name = brotli.compress(body, quality=5), "br"
    else:
        raise ValueError(encoding)
    return respond(data, headers=[("Content-Encoding", name)], content_type=content_type)


def stall(seconds: float, *, after_headers: bool = True) -> Handler:
    """Say nothing for ``seconds`` (before or after the headers), then finish a small body."""

    async def handler(conn: Conn) -> None:
        if after_headers:
            await conn.head(200, [("Content-Type", "text/html"), ("Content-Length", "2")])
        await asyncio.sleep(seconds)
        if not after_headers:
            await conn.head(200, [("Content-Type", "text/html"), ("Content-Length", "2")])
        await conn.send(b"ok")

    return handler


def trickle(total_bytes: int, interval: float) -> Handler:
    """One byte every ``interval`` seconds: never slow enough for a read timeout, slow overall."""

    async def handler(conn: Conn) -> None:
        await conn.head(200, [("Content-Type", "text/html"), ("Content-Length", str(total_bytes))])
        for _ in range(total_bytes):
            await conn.send(b"x")
            await asyncio.sleep(interval)

    return handler


def delayed(seconds: float, then: Handler) -> Handler:
    """Wait (a realistic network delay, or to hold a connection open), then behave like ``then``."""

    async def handler(conn: Conn) -> None:
        await asyncio.sleep(seconds)
        await then(conn)

    return handler


def raw(data: bytes) -> Handler:
    """Exactly these bytes on the wire, then close: for malformed responses."""

    async def handler(conn: Conn) -> None:
        await conn.send(data)

    return handler


async def not_found(conn: Conn) -> None:
    await respond(b"not found", 404)(conn)


# --------------------------------------------------------------------------- the server


class HostileServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        routes: Mapping[str, Handler] | None = None,
        default: Handler = not_found,
        ssl_context: ssl.SSLContext | None = None,
        counter: ActiveCounter | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.routes: dict[str, Handler] = dict(routes or {})
        self.default = default
        self.counter = counter or ActiveCounter()
        self._ssl = ssl_context
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self.connections = 0
        self.bytes_sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sni: dict[int, str | None] = {}

    # --- public view

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def max_active(self) -> int:
        return self.counter.max_active

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def _count_sent(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    # --- lifecycle

    def start(self) -> typing.Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, self.port, ssl=self._ssl)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except Exception as exc:  # noqa: BLE001 - surfaced to the thread that called start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        if self._ssl is not None:
            self._ssl.sni_callback = self._remember_sni
        self._thread = threading.Thread(target=run, name=f"hostile-{self.host}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(shutdown()))
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> typing.Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- serving

    def _remember_sni(self, sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self._sni[id(sslobj)] = name

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(typing.cast("asyncio.Task[None]", task))
        with self._lock:
            self.connections += 1
        self.counter.enter()
        try:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = (lines[0].split(" ") + ["", "", ""])[:3]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            sslobj = writer.get_extra_info("ssl_object")
            peer = writer.get_extra_info("peername") or ("?", 0)
            record = RequestRecord(
                method=method,
                target=target,
                headers=headers,
                client=(str(peer[0]), int(peer[1])),
                at=time.monotonic(),
                server_name=self._sni.pop(id(sslobj), None) if sslobj is not None else None,
            )
            with self._lock:
                self._requests.append(record)
            handler = self.routes.get(record.path, self.default)
            # Cancelled only by stop(); ending normally keeps asyncio's stream callback quiet.
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await handler(Conn(self, record, writer))
        finally:
            self.counter.leave()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(typing.cast("asyncio.Task[None]", task))


# --------------------------------------------------------------------------- client-side helper


@dataclass
class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Inner network backend for the fetcher: records connect attempts, connects only to loopback."""

    attempts: list[tuple[str, int]] = field(default_factory=list)
    _inner: httpcore.AsyncNetworkBackend = field(default_factory=httpcore.AnyIOBackend)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False  # a name here means the guard did not hand over a checked IP
        if not loopback:
            raise httpcore.ConnectError(f"test backend refuses to connect to non-loopback {host!r}")
        return await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("test backend refuses unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# --------------------------------------------------------------------------- TLS for tests


def tls_contexts(cert_hosts: Iterable[str]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a throw-away CA and a leaf for ``cert_hosts``.

    Needs ``cryptography`` (installed with the project's dependencies); import it lazily so servers
    without TLS do not.
    """
    import datetime
    import tempfile
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newswire test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    hosts = list(cert_hosts)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp, "leaf.pem"), Path(tmp, "leaf.key")
        cert_file.write_bytes(leaf_cert.public_bytes(pem))
        key_file.write_bytes(
            leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca_cert.public_bytes(pem).decode("ascii"))
    return server, client
