"""HTTP fetcher for feeds and article pages, built to survive hostile servers.

``Fetcher.fetch`` never raises for a network or server problem: it returns a
:class:`~newswire.records.FetchResult` whose ``error`` is one of these reason codes and whose
``detail`` is a human sentence.

===================== ==============================================================================
reason code           meaning
===================== ==============================================================================
``bad-scheme``        the URL (or a redirect target) is not http/https (``file:``, ``ftp:``, ...)
``bad-url``           the URL (or a redirect's Location) cannot be parsed or has no host
``blocked-address``   the host is, or resolves to, a private/loopback/link-local/... address and is
                      not in ``allow_hosts`` (see :mod:`newswire.connectors.netguard`); nothing was
                      sent to it
``dns``               the host name does not resolve
``connect``           no connection could be made (refused, unreachable, TLS handshake or
                      certificate failure), or the connection broke while talking
``timeout``           connect (DNS included), read (no data for ``read_timeout``) or total
                      (``total_timeout``: network time of the whole fetch, redirects included;
                      waiting for a concurrency slot does not count) time limit exceeded
``too-large``         the body (declared by Content-Length, received, or decoded) exceeds the cap
                      for its kind
``too-many-redirects`` more than ``max_redirects`` redirects
``http-<status>``     the final response has status >= 400 (``http-404``, ``http-429``, ...);
                      ``status`` and ``headers`` (e.g. ``retry-after``) are kept, ``body`` is empty
``decode``            the body's Content-Encoding is broken, truncated, or not one we asked for
``protocol``          the server broke HTTP (malformed response, a 3xx without Location, ...)
===================== ==============================================================================

On success ``status`` is 200..299, ``body`` the decoded bytes (gzip, deflate and brotli are
undone here), ``headers`` every response header with a lower-case name (repeated headers joined
with ", "), and ``final_url`` the URL after redirects. A 304 answer to a conditional GET is
``status=304``, an empty body and ``error=None``.

Why httpcore and not ``httpx.AsyncClient``: the SSRF guard has to sit where sockets are opened,
which is httpcore's ``AsyncConnectionPool(network_backend=...)``. ``httpx.AsyncHTTPTransport``
builds that pool itself with no way to pass a backend, so plugging in through httpx means
overwriting its private ``_pool``, which an httpx upgrade can silently undo. Nothing else of
``httpx.AsyncClient`` is wanted here (redirects, cookies, netrc auth, environment proxies are all
things a fetcher of untrusted URLs must not do on its own), so the fetcher drives httpcore's
public pool API directly and uses ``httpx.URL`` only to parse and join URLs.

Bodies are decoded here from the raw stream with the bounded decompressors of ``content_coding``,
because httpx's decoders inflate each network chunk in one call: one 64 KiB chunk of a gzip bomb
becomes ~64 MiB, one brotli chunk far more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal, Self

import httpcore
import httpx

from newswire import __version__
from newswire.records import FetchResult, RedirectHop

from .content_coding import DecodeError, decoders_for, finish, through
from .netguard import GuardedBackend, GuardError, NetGuard, Resolver  # relative: mypy can follow it

log = logging.getLogger(__name__)

FetchKind = Literal["feed", "page"]

#: Operators should set their own contact URL (``user_agent_for``); this one only marks the gap.
DEFAULT_CONTACT_URL = "https://newswire.invalid/contact"


def user_agent_for(contact_url: str = DEFAULT_CONTACT_URL) -> str:
    """A descriptive User-Agent: site operators can see what fetches them and whom to ask."""
    return f"newswire/{__version__} (+{contact_url})"


ACCEPT: dict[str, str] = {
    "feed": (
        "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
        "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.1"
    ),
    "page": "text/html, application/xhtml+xml;q=0.9, */*;q=0.5",
}
ACCEPT_ENCODING = "gzip, deflate, br"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchSettings:
    allow_hosts: frozenset[str] = frozenset()  # host names/IPs allowed to resolve to private/loopback/etc.
    user_agent: str = user_agent_for()
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_feed_bytes: int = 10 * 1024 * 1024
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    concurrency: int = 32  # overall
    per_host: int = 4  # per host

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"fetch setting {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("max_feed_bytes", "max_page_bytes", "concurrency", "per_host"):
            if getattr(self, name) < 1:
                raise ValueError(f"fetch setting {name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_redirects < 0:
            raise ValueError(f"fetch setting max_redirects must be >= 0, got {self.max_redirects!r}")

    def cap(self, kind: FetchKind) -> int:
        return self.max_feed_bytes if kind == "feed" else self.max_page_bytes


class _Failure(Exception):
    """A fetch that ends without a usable response; becomes a FetchResult with ``error`` set."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.url = url  # the URL being fetched when it failed
        self.reason = reason
        self.detail = detail
        self.status = status
        self.headers = headers or {}


# --------------------------------------------------------------------------- helpers


def _header_dict(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name_b, value_b in raw:
        name = name_b.decode("latin-1").lower()
        value = value_b.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _safe_header_value(value: str | None) -> str | None:
    """A stored validator sent back as-is, unless it could not be a legal header value."""
    if not value:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F or ord(c) > 0xFF for c in value):
        return None
    return value


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise _Failure("bad-url", f"cannot parse URL {url[:200]!r}: {exc}", url=url) from exc
    if parsed.scheme not in ("http", "https"):
        what = f"not {parsed.scheme}" if parsed.scheme else "and this URL has no scheme"
        raise _Failure("bad-scheme", f"only http and https are fetched, {what} ({url[:200]})", url=url)
    if not parsed.host:
        raise _Failure("bad-url", f"URL has no host: {url[:200]}", url=url)
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise _Failure("bad-url", f"URL port {parsed.port} is not in 1-65535: {url[:200]}", url=url)
    return parsed


@dataclass
class _HostSlot:
    semaphore: asyncio.Semaphore
    users: int = 0


@dataclass(frozen=True)
class _Redirect:
    location: str
    status: int


# --------------------------------------------------------------------------- the fetcher


class Fetcher:
    """Async context manager owning one connection pool; ``fetch`` is safe to call concurrently.

    ``resolver``, ``network_backend`` and ``ssl_context`` exist for tests and special deployments:
    a resolver answering without DNS, an inner backend that records or restricts connects, a
    context trusting a private CA. ``guard`` exposes the SSRF guard and its decision log.
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.guard = NetGuard(settings.allow_hosts, resolver=resolver)
        self._backend = GuardedBackend(self.guard, network_backend)
        self._ssl_context = ssl_context
        self._pool: httpcore.AsyncConnectionPool | None = None
        self._overall: asyncio.Semaphore | None = None
        self._hosts: dict[str, _HostSlot] = {}

    async def __aenter__(self) -> Self:
        s = self.settings
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=self._ssl_context,
            max_connections=s.concurrency,
            max_keepalive_connections=s.concurrency,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=self._backend,
        )
        self._overall = asyncio.Semaphore(s.concurrency)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    async def fetch(
        self,
        url: str,
        *,
        kind: FetchKind,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResult:
        if kind not in ACCEPT:
            raise ValueError(f"kind must be 'feed' or 'page', not {kind!r}")
        if self._pool is None or self._overall is None:
            raise RuntimeError("Fetcher.fetch called outside 'async with Fetcher(...)'")
        fetched_at = datetime.now(UTC)
        try:
            return await self._follow(url, kind, etag, last_modified, fetched_at, self._pool)
        except _Failure as failure:
            return FetchResult(
                url=url,
                final_url=failure.url or url,
                status=failure.status,
                headers=failure.headers,
                body=b"",
                fetched_at=fetched_at,
                error=failure.reason,
                detail=failure.detail,
            )

    @contextlib.asynccontextmanager
    async def _host_slot(self, host: str) -> AsyncIterator[None]:
        slot = self._hosts.get(host)
        if slot is None:
            slot = self._hosts[host] = _HostSlot(asyncio.Semaphore(self.settings.per_host))
        slot.users += 1
        assert self._overall is not None
        try:
            # the host's slot first: requests queued for one busy host must not sit on overall slots
            # that requests to other hosts could use
            async with slot.semaphore, self._overall:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._hosts[host]

    async def _follow(
        self,
        url: str,
        kind: FetchKind,
        etag: str | None,
        last_modified: str | None,
        fetched_at: datetime,
        pool: httpcore.AsyncConnectionPool,
    ) -> FetchResult:
        s = self.settings
        loop = asyncio.get_running_loop()
        too_slow = f"fetch took longer than the total limit of {s.total_timeout:g}s"
        remaining = s.total_timeout  # waiting for a host slot does not count, network time does
        current = url
        redirects = 0
        hops: list[RedirectHop] = []  # archived with the answer, so a replay can follow them too
        while True:
            parsed = _parse_url(current)
            async with self._host_slot(parsed.host):
                started = loop.time()
                try:
                    async with asyncio.timeout(remaining) as deadline:
                        outcome = await self._one_hop(
                            parsed, kind, etag, last_modified, fetched_at, url, pool
                        )
                except _Failure as failure:
                    failure.url = str(parsed)
                    raise
                except TimeoutError as exc:
                    if not deadline.expired():
                        raise
                    raise _Failure("timeout", too_slow, url=str(parsed)) from exc
                remaining -= loop.time() - started
            if isinstance(outcome, FetchResult):
                return replace(outcome, redirects=tuple(hops)) if hops else outcome
            if redirects >= s.max_redirects:
                raise _Failure(
                    "too-many-redirects",
                    f"more than {s.max_redirects} redirects (last: {outcome.status} to "
                    f"{outcome.location[:200]})",
                    status=outcome.status,
                    url=str(parsed),
                )
            redirects += 1
            try:
                current = str(parsed.join(outcome.location))
            except (httpx.InvalidURL, TypeError, ValueError) as exc:
                raise _Failure(
                    "bad-url",
                    f"redirect to an unparseable Location {outcome.location[:200]!r}",
                    url=str(parsed),
                ) from exc
            hops.append(RedirectHop(str(parsed), outcome.status, current))
            if remaining <= 0:
                raise _Failure("timeout", too_slow, url=current)

    def _request_headers(
        self, parsed: httpx.URL, kind: FetchKind, etag: str | None, last_modified: str | None
    ) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"Host", parsed.netloc),
            (b"User-Agent", self.settings.user_agent.encode("latin-1", "replace")),
            (b"Accept", ACCEPT[kind].encode("ascii")),
            (b"Accept-Encoding", ACCEPT_ENCODING.encode("ascii")),
        ]
        if (value := _safe_header_value(etag)) is not None:
            headers.append((b"If-None-Match", value.encode("latin-1")))
        if (value := _safe_header_value(last_modified)) is not None:
            headers.append((b"If-Modified-Since", value.encode("latin-1")))
        return headers

    async def _one_hop(
        self,
        parsed: httpx.URL,
        kind: FetchKind,
        etag: str | None,
        last_modified: str | None,
        fetched_at: datetime,
        original_url: str,
        pool: httpcore.AsyncConnectionPool,
    ) -> FetchResult | _Redirect:
        s = self.settings
        target = httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        )
        timeouts = {
            "connect": s.connect_timeout,
            "read": s.read_timeout,
            "write": s.read_timeout,
            "pool": s.total_timeout,
        }
        try:
            async with pool.stream(
                "GET",
                target,
                headers=self._request_headers(parsed, kind, etag, last_modified),
                extensions={"timeout": timeouts},
            ) as response:
                headers = _header_dict(response.headers)
                status = response.status
                if status in _REDIRECT_STATUSES:
                    location = headers.get("location", "").strip()
                    if not location:
                        raise _Failure(
                            "protocol",
                            f"{status} redirect without a Location header",
                            status=status,
                            headers=headers,
                        )
                    return _Redirect(location, status)
                if status == 304:
                    return FetchResult(
                        url=original_url,
                        final_url=str(parsed),
                        status=304,
                        headers=headers,
                        body=b"",
                        fetched_at=fetched_at,
                    )
                if status >= 400:
                    raise _Failure(
                        f"http-{status}", f"server answered {status}", status=status, headers=headers
                    )
                if not 200 <= status < 300:
                    raise _Failure("protocol", f"unexpected status {status}", status=status, headers=headers)
                body = await self._read_body(response, headers, kind, status)
                return FetchResult(
                    url=original_url,
                    final_url=str(parsed),
                    status=status,
                    headers=headers,
                    body=body,
                    fetched_at=fetched_at,
                )
        except (_Failure, asyncio.CancelledError):
            raise
        except Exception as exc:  # every transport failure becomes a reason code
            reason, detail = self._explain(exc, parsed)
            raise _Failure(reason, detail) from exc

    async def _read_body(
        self, response: httpcore.Response, headers: dict[str, str], kind: FetchKind, status: int
    ) -> bytes:
        cap = self.settings.cap(kind)

        def too_large(what: str) -> _Failure:
            return _Failure(
                "too-large", f"{what} exceeds the {kind} cap of {cap} bytes", status=status, headers=headers
            )

        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > cap:
            raise too_large(f"Content-Length {declared}")
        try:
            decoders = decoders_for(headers.get("content-encoding"))
            received = 0
            body = bytearray()
            async for chunk in response.aiter_stream():
                received += len(chunk)
                if received > cap:
                    raise too_large("body")
                for piece in through(decoders, chunk):
                    if len(body) + len(piece) > cap:
                        raise too_large("decoded body")
                    body += piece
            for piece in finish(decoders):
                if len(body) + len(piece) > cap:
                    raise too_large("decoded body")
                body += piece
        except DecodeError as exc:
            raise _Failure("decode", str(exc), status=status, headers=headers) from exc
        return bytes(body)

    def _explain(self, exc: Exception, parsed: httpx.URL | None) -> tuple[str, str]:
        s = self.settings
        where = (
            f"{parsed.host}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"
            if parsed
            else "server"
        )
        if isinstance(exc, GuardError):
            return exc.reason, str(exc)
        if isinstance(exc, httpcore.ConnectTimeout):
            return "timeout", f"connecting to {where} took longer than {s.connect_timeout:g}s"
        if isinstance(exc, httpcore.ReadTimeout):
            return "timeout", f"no data from the server for {s.read_timeout:g}s"
        if isinstance(exc, httpcore.TimeoutException):
            return "timeout", f"timed out talking to {where}: {exc}"
        if isinstance(exc, httpcore.ConnectError):
            return "connect", f"cannot connect to {where}: {exc or type(exc).__name__}"
        if isinstance(exc, httpcore.NetworkError):
            return "connect", f"connection to {where} broke: {exc or type(exc).__name__}"
        if isinstance(exc, httpcore.UnsupportedProtocol):
            return "bad-scheme", str(exc)
        if isinstance(exc, httpcore.ProtocolError):
            return "protocol", f"{where} broke HTTP: {exc or type(exc).__name__}"
        log.warning("unexpected error fetching from %s", where, exc_info=exc)
        return "protocol", f"unexpected {type(exc).__name__} talking to {where}: {exc}"
