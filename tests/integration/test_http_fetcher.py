"""The HTTP fetcher against real local servers (127.0.0.x / ::1, ephemeral ports), hostile ones included.

Nothing here sends a packet off the machine: servers listen on loopback, non-loopback addresses
appear only in URLs the guard must refuse, and those tests run the fetcher over
``RecordingBackend``, which records every connect attempt and refuses any that is not loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
import tracemalloc
import zlib
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import brotli
import pytest

from newswire.connectors.http import ACCEPT, Fetcher, FetchKind, FetchSettings
from newswire.connectors.netguard import NetGuard, Resolver, UnknownHost, address_problem
from newswire.records import FetchResult
from tests.support.hostile_server import (
    ActiveCounter,
    HostileServer,
    RecordingBackend,
    compressed,
    conditional,
    delayed,
    gzip_bomb,
    raw,
    redirect,
    respond,
    stall,
    stream,
    tls_contexts,
    trickle,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T = TypeVar("T")
LOOPBACK_ONLY = frozenset({"127.0.0.1"})
MiB = 1024 * 1024
PUBLIC_IP = "93.184.215.14"  # a real public address: only ever handed to the guard, never connected to


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fast(**overrides: Any) -> FetchSettings:
    """Small limits so every hostile case ends in well under a second."""
    values: dict[str, Any] = {
        "allow_hosts": LOOPBACK_ONLY,
        "connect_timeout": 2.0,
        "read_timeout": 1.0,
        "total_timeout": 5.0,
        "max_feed_bytes": MiB,
        "max_page_bytes": MiB,
        "max_redirects": 3,
    }
    values.update(overrides)
    return FetchSettings(**values)


async def fetch_one(
    url: str,
    settings: FetchSettings | None = None,
    *,
    kind: FetchKind = "page",
    etag: str | None = None,
    last_modified: str | None = None,
    resolver: Resolver | None = None,
    network_backend: RecordingBackend | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> FetchResult:
    """One fetch with a fetcher of its own (a fresh pool, so no connection is reused between calls)."""
    fetcher = Fetcher(
        settings or fast(), resolver=resolver, network_backend=network_backend, ssl_context=ssl_context
    )
    async with fetcher:
        result: FetchResult = await fetcher.fetch(url, kind=kind, etag=etag, last_modified=last_modified)
    return result


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer("127.0.0.1") as srv:
        yield srv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- well-behaved servers


def test_plain_200_keeps_headers_and_sends_descriptive_request(server: HostileServer) -> None:
    server.route(
        "/feed.xml",
        respond(
            b"<rss/>",
            headers={"ETag": '"v1"', "Cache-Control": "max-age=60"},
            content_type="application/rss+xml",
        ),
    )
    result = run(fetch_one(server.url("/feed.xml"), kind="feed"))

    assert result.ok and result.error is None and result.status == 200
    assert result.body == b"<rss/>"
    assert result.final_url == result.url == server.url("/feed.xml")
    assert result.headers["etag"] == '"v1"'
    assert result.headers["cache-control"] == "max-age=60"
    assert result.headers["content-type"] == "application/rss+xml"
    assert all(name == name.lower() for name in result.headers)
    (request,) = server.requests
    assert request.headers["user-agent"].startswith("newswire/")
    assert "(+" in request.headers["user-agent"]
    assert request.headers["accept"] == ACCEPT["feed"]
    assert "application/rss+xml" in request.headers["accept"]
    assert request.headers["accept-encoding"] == "gzip, deflate, br"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert "if-none-match" not in request.headers and "if-modified-since" not in request.headers


def test_page_accepts_html_and_custom_user_agent(server: HostileServer) -> None:
    server.route("/a", respond(b"<html></html>", content_type="text/html"))
    ua = "newswire/9.9 (+https://ops.example.org/bot)"
    result = run(fetch_one(server.url("/a"), fast(user_agent=ua), kind="page"))
    assert result.ok
    (request,) = server.requests
    assert request.headers["accept"].startswith("text/html")
    assert request.headers["user-agent"] == ua


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate", "br"])
def test_compressed_bodies_are_decoded(server: HostileServer, encoding: str) -> None:
    body = ("<p>Kabul, Moscow and Beijing: the same sentence again. " * 4000).encode()  # ~220 KB
    server.route("/x", compressed(body, encoding))
    result = run(fetch_one(server.url("/x")))
    assert result.ok, result.detail
    assert result.body == body
    assert result.headers["content-encoding"] in ("gzip", "deflate", "br")


def test_concatenated_gzip_members_are_all_decoded(server: HostileServer) -> None:
    data = zlib.compress(b"first ", wbits=31) + zlib.compress(b"second", wbits=31)
    server.route("/x", respond(data, headers={"Content-Encoding": "gzip"}))
    result = run(fetch_one(server.url("/x")))
    assert result.body == b"first second"


def test_large_compressed_body_under_the_cap_decodes_exactly(server: HostileServer) -> None:
    # Many decoder pieces of 64 KiB from few network chunks: the bounded loop must not drop any.
    body = bytes(range(256)) * 1024 + bytes(700_000)
    server.route("/gz", respond(zlib.compress(body, 9, wbits=31), headers={"Content-Encoding": "gzip"}))
    server.route("/br", respond(brotli.compress(body, quality=5), headers={"Content-Encoding": "br"}))
    for path in ("/gz", "/br"):
        result = run(fetch_one(server.url(path)))
        assert result.ok, result.detail
        assert result.body == body


# --------------------------------------------------------------------------- conditional GET


def test_conditional_get_with_etag_gets_304(server: HostileServer) -> None:
    server.route("/feed", conditional(b"<rss>v1</rss>", etag='"abc"'))
    first = run(fetch_one(server.url("/feed"), kind="feed"))
    assert first.status == 200 and first.headers["etag"] == '"abc"'

    again = run(fetch_one(server.url("/feed"), kind="feed", etag=first.headers["etag"]))
    assert again.status == 304 and again.not_modified
    assert again.error is None and again.body == b""
    assert server.requests[-1].headers["if-none-match"] == '"abc"'

    stale = run(fetch_one(server.url("/feed"), kind="feed", etag='"old"'))
    assert stale.status == 200 and stale.body == b"<rss>v1</rss>"


def test_conditional_get_with_last_modified_gets_304(server: HostileServer) -> None:
    stamp = "Wed, 04 Nov 2026 10:00:00 GMT"
    server.route("/feed", conditional(b"<feed/>", last_modified=stamp))
    first = run(fetch_one(server.url("/feed"), kind="feed"))
    assert first.status == 200 and first.headers["last-modified"] == stamp

    again = run(fetch_one(server.url("/feed"), kind="feed", last_modified=first.headers["last-modified"]))
    assert again.status == 304 and again.error is None and again.body == b""
    assert server.requests[-1].headers["if-modified-since"] == stamp
    assert "if-none-match" not in server.requests[-1].headers


def test_validator_that_could_inject_headers_is_not_sent(server: HostileServer) -> None:
    server.route("/feed", respond(b"ok"))
    result = run(fetch_one(server.url("/feed"), kind="feed", etag='"a"\r\nX-Evil: 1'))
    assert result.ok
    assert "if-none-match" not in server.requests[0].headers
    assert "x-evil" not in server.requests[0].headers


# --------------------------------------------------------------------------- redirects


def test_redirect_chain_is_followed_across_hosts() -> None:
    with HostileServer("127.0.0.1") as a, HostileServer("127.0.0.3") as b:
        a.route("/start", redirect("/hop"))  # relative
        a.route("/hop", redirect(b.url("/moved"), status=301))  # absolute, another host
        b.route("/moved", redirect("end?x=1", status=308))  # relative to the path
        b.route("/end", respond(b"arrived"))
        result = run(fetch_one(a.url("/start"), fast(allow_hosts=frozenset({"127.0.0.1", "127.0.0.3"}))))
        assert result.ok, result.detail
        assert result.body == b"arrived"
        assert result.url == a.url("/start")
        assert result.final_url == b.url("/end?x=1")
        assert [r.target for r in a.requests] == ["/start", "/hop"]
        assert [r.target for r in b.requests] == ["/moved", "/end?x=1"]


def test_redirect_loop_stops_at_max_redirects(server: HostileServer) -> None:
    server.route("/a", redirect("/b"))
    server.route("/b", redirect("/a"))
    result = run(fetch_one(server.url("/a"), fast(max_redirects=3)))
    assert result.error == "too-many-redirects"
    assert result.status == 302
    assert len(server.requests) == 4  # the first request and three redirects followed


def test_redirect_to_file_scheme_is_refused(server: HostileServer) -> None:
    server.route("/r", redirect("file:///etc/passwd"))
    result = run(fetch_one(server.url("/r")))
    assert result.error == "bad-scheme"
    assert "file" in (result.detail or "")
    assert result.body == b""


def test_redirect_to_a_loopback_address_not_allowed_is_refused(server: HostileServer) -> None:
    with HostileServer("127.0.0.2") as internal:
        internal.route("/admin", respond(b"secret"))
        server.route("/r", redirect(internal.url("/admin")))
        server.route("/l", redirect(f"http://localhost:{internal.port}/admin"))
        for path in ("/r", "/l"):
            result = run(fetch_one(server.url(path)))
            assert result.error == "blocked-address", result.detail
            assert "--allow-host" in (result.detail or "")  # names the option, not a setting's field
            assert result.body == b""
        assert internal.connections == 0 and internal.requests == []
        assert [r.path for r in server.requests] == ["/r", "/l"]


# --------------------------------------------------------------------------- SSRF guard


@pytest.mark.parametrize("host", ["127.0.0.2", "::1"])
def test_literal_loopback_url_is_refused_without_connecting(host: str) -> None:
    with HostileServer(host) as target:
        target.route("/", respond(b"internal"))
        backend = RecordingBackend()
        result = run(fetch_one(target.url("/"), network_backend=backend))
        assert result.error == "blocked-address", result.detail
        assert "loopback" in (result.detail or "")
        assert target.connections == 0 and target.requests == []
        assert backend.attempts == []

        # The same server is reachable once allowed: the refusal above was the guard's doing.
        allowed = run(fetch_one(target.url("/"), fast(allow_hosts=frozenset({host}))))
        assert allowed.ok and allowed.body == b"internal"


def test_numeric_forms_of_loopback_are_checked_after_resolution() -> None:
    with HostileServer("127.0.0.2") as target:
        backend = RecordingBackend()
        # 2130706434 is 127.0.0.2 written as one integer; getaddrinfo turns it into the address.
        result = run(fetch_one(f"http://2130706434:{target.port}/", network_backend=backend))
        assert result.error == "blocked-address"
        assert "127.0.0.2" in (result.detail or "")
        assert target.connections == 0 and backend.attempts == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1:8080/",
        "http://100.64.0.1/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00::1]/",
        "https://0.0.0.0/",
    ],
)
def test_non_loopback_private_addresses_are_refused_before_any_connect(url: str) -> None:
    backend = RecordingBackend()

    async def go() -> tuple[FetchResult, NetGuard]:
        async with Fetcher(fast(), network_backend=backend) as fetcher:
            return await fetcher.fetch(url, kind="page"), fetcher.guard

    result, guard = run(go())
    assert result.error == "blocked-address", result.detail
    assert backend.attempts == []
    (decision,) = guard.decisions
    assert decision.allowed is False and decision.address is not None


def test_name_resolving_to_loopback_is_refused_unless_allowed(server: HostileServer) -> None:
    server.route("/", respond(b"hi"))
    url = f"http://localhost:{server.port}/"
    refused = run(fetch_one(url))  # 127.0.0.1 is allowed, but the host as written is "localhost"
    assert refused.error == "blocked-address"
    assert "localhost resolves to 127.0.0.1" in (refused.detail or "")
    assert server.connections == 0

    allowed = run(fetch_one(url, fast(allow_hosts=frozenset({"LOCALHOST."}))))  # normalised
    assert allowed.ok and allowed.body == b"hi"


def test_dns_rebinding_second_answer_is_checked_at_connect_time(server: HostileServer) -> None:
    """A validator that looks a name up before fetching sees a public address; the fetch's own
    lookup (the only one used to connect) gets loopback and is refused."""
    server.route("/", respond(b"internal"))
    answers = iter([PUBLIC_IP, "127.0.0.1"])
    asked: list[str] = []

    async def rebinding_resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return [next(answers)]  # a third lookup would raise StopIteration and fail the test

    backend = RecordingBackend()

    async def go() -> tuple[list[str], FetchResult, NetGuard]:
        async with Fetcher(fast(), resolver=rebinding_resolver, network_backend=backend) as fetcher:
            precheck = await fetcher.guard.resolve("rebind.test", server.port)  # decision only
            result = await fetcher.fetch(f"http://rebind.test:{server.port}/", kind="page")
            return precheck, result, fetcher.guard

    precheck, result, guard = run(go())
    assert precheck == [PUBLIC_IP]
    assert result.error == "blocked-address"
    assert asked == ["rebind.test", "rebind.test"]
    assert [(d.address, d.allowed) for d in guard.decisions] == [(PUBLIC_IP, True), ("127.0.0.1", False)]
    assert backend.attempts == []  # neither answer was connected to
    assert server.connections == 0


def test_name_with_mixed_public_and_private_answers_is_refused(server: HostileServer) -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return [PUBLIC_IP, "127.0.0.1"]

    backend = RecordingBackend()
    result = run(fetch_one(f"http://mixed.test:{server.port}/", resolver=mixed, network_backend=backend))
    assert result.error == "blocked-address"
    assert backend.attempts == [] and server.connections == 0


def test_allowed_name_connects_to_the_checked_ip_not_the_name(server: HostileServer) -> None:
    server.route("/", respond(b"feeds"))

    async def internal(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    backend = RecordingBackend()
    settings = fast(allow_hosts=frozenset({"feeds.internal.test"}))
    result = run(
        fetch_one(
            f"http://feeds.internal.test:{server.port}/", settings, resolver=internal, network_backend=backend
        )
    )
    assert result.ok and result.body == b"feeds"
    assert backend.attempts == [("127.0.0.1", server.port)]
    assert server.requests[0].headers["host"] == f"feeds.internal.test:{server.port}"


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        (PUBLIC_IP, None),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified/this-network"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("fd12:3456::1", "unique local (private)"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("2002:7f00:1::", "6to4 loopback"),
        ("2002:a9fe:a9fe::", "6to4 link-local"),
        ("64:ff9b::a9fe:a9fe", "NAT64 link-local"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_address_classification(address: str, problem: str | None) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


def test_guard_refuses_literal_before_resolving() -> None:
    async def must_not_resolve(host: str, port: int) -> list[str]:
        raise AssertionError(f"resolver asked about {host}")

    guard = NetGuard(resolver=must_not_resolve)
    with pytest.raises(Exception, match="link-local"):
        run(guard.resolve("169.254.169.254", 80))
    assert [(d.address, d.allowed, d.why) for d in guard.decisions] == [
        ("169.254.169.254", False, "link-local")
    ]


# --------------------------------------------------------------------------- size caps


def _peak_during(make: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, int, float]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        started = time.monotonic()
        value = run(make())
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return value, peak, elapsed


def test_endless_body_stops_at_the_cap_with_bounded_memory(server: HostileServer) -> None:
    server.route("/huge", stream(400 * MiB))  # chunked, no Content-Length, generated
    result, peak, elapsed = _peak_during(lambda: fetch_one(server.url("/huge")))
    assert result.error == "too-large"
    assert result.body == b""
    assert elapsed < 3.0
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB for a 1 MiB cap"
    assert server.bytes_sent < 40 * MiB  # the server was cut off, not read to the end


def test_declared_content_length_over_the_cap_fails_before_reading(server: HostileServer) -> None:
    server.route("/huge", stream(400 * MiB, declare_length=True))
    result = run(fetch_one(server.url("/huge"), fast(max_page_bytes=MiB)))
    assert result.error == "too-large"
    assert "Content-Length" in (result.detail or "")
    assert server.bytes_sent < 40 * MiB


def test_feed_and_page_caps_are_separate(server: HostileServer) -> None:
    server.route("/doc", respond(b"x" * 3000))
    settings = fast(max_feed_bytes=4000, max_page_bytes=2000)
    assert run(fetch_one(server.url("/doc"), settings, kind="feed")).ok
    assert run(fetch_one(server.url("/doc"), settings, kind="page")).error == "too-large"


def test_gzip_bomb_in_one_chunk_stops_at_the_cap(server: HostileServer) -> None:
    bomb = zlib.compress(bytes(64 * MiB), 9, wbits=31)  # ~64 KB on the wire
    assert len(bomb) < 100_000
    server.route("/bomb", respond(bomb, headers={"Content-Encoding": "gzip"}, content_type="text/html"))
    result, peak, elapsed = _peak_during(lambda: fetch_one(server.url("/bomb")))
    assert result.error == "too-large"
    assert "decoded" in (result.detail or "")
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB for a 1 MiB cap"
    assert elapsed < 3.0


def test_streamed_gigabyte_gzip_bomb_stops_at_the_cap(server: HostileServer) -> None:
    server.route("/bomb", gzip_bomb(1024 * MiB))
    result, peak, elapsed = _peak_during(lambda: fetch_one(server.url("/bomb")))
    assert result.error == "too-large"
    assert peak < 6 * MiB
    assert elapsed < 3.0
    assert server.bytes_sent < 2 * MiB  # ~1 KB per MiB of zeros: the client stopped early


def test_brotli_bomb_stops_at_the_cap(server: HostileServer) -> None:
    bomb = brotli.compress(bytes(256 * MiB), quality=5)  # a few hundred bytes
    assert len(bomb) < 10_000
    server.route("/bomb", respond(bomb, headers={"Content-Encoding": "br"}))
    result, peak, elapsed = _peak_during(lambda: fetch_one(server.url("/bomb")))
    assert result.error == "too-large"
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB for a 1 MiB cap"
    assert elapsed < 3.0


# --------------------------------------------------------------------------- timeouts


def test_server_stalling_after_headers_hits_the_read_timeout(server: HostileServer) -> None:
    server.route("/slow", stall(10))
    started = time.monotonic()
    result = run(fetch_one(server.url("/slow"), fast(read_timeout=0.3)))
    elapsed = time.monotonic() - started
    assert result.error == "timeout"
    assert "no data" in (result.detail or "")
    assert 0.25 < elapsed < 2.0


def test_server_stalling_before_headers_hits_the_read_timeout(server: HostileServer) -> None:
    server.route("/slow", stall(10, after_headers=False))
    started = time.monotonic()
    result = run(fetch_one(server.url("/slow"), fast(read_timeout=0.3)))
    assert result.error == "timeout"
    assert time.monotonic() - started < 2.0


def test_trickling_server_hits_the_total_timeout(server: HostileServer) -> None:
    server.route("/trickle", trickle(1000, interval=0.05))  # would take 50 s; each byte well within read
    started = time.monotonic()
    result = run(fetch_one(server.url("/trickle"), fast(read_timeout=0.5, total_timeout=1.0)))
    elapsed = time.monotonic() - started
    assert result.error == "timeout"
    assert "total" in (result.detail or "")
    assert 0.9 < elapsed < 2.5
    assert 5 < server.bytes_sent < 1000


def test_total_timeout_covers_the_whole_redirect_chain(server: HostileServer) -> None:
    server.route("/a", delayed(0.4, redirect("/b")))
    server.route("/b", delayed(0.4, redirect("/c")))
    server.route("/c", delayed(0.4, respond(b"late")))
    result = run(fetch_one(server.url("/a"), fast(total_timeout=1.0)))
    assert result.error == "timeout"
    assert result.final_url == server.url("/c")


# --------------------------------------------------------------------------- errors


def test_server_error_is_reported_with_status(server: HostileServer) -> None:
    server.route("/boom", respond(b"oops", 500))
    result = run(fetch_one(server.url("/boom")))
    assert result.error == "http-500" and result.status == 500
    assert not result.ok and result.body == b""


def test_429_keeps_retry_after(server: HostileServer) -> None:
    server.route("/feed", respond(b"slow down", 429, headers={"Retry-After": "120"}))
    result = run(fetch_one(server.url("/feed"), kind="feed"))
    assert result.error == "http-429" and result.status == 429
    assert result.headers["retry-after"] == "120"


def test_unknown_host_is_dns_without_any_lookup() -> None:
    async def must_not_resolve(host: str, port: int) -> list[str]:
        raise AssertionError("a .invalid name reached the resolver")

    result = run(fetch_one("http://nothing.invalid/feed", resolver=must_not_resolve))
    assert result.error == "dns"
    assert "nothing.invalid" in (result.detail or "")


def test_resolver_saying_unknown_is_dns() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise UnknownHost(f"cannot resolve {host}: Name or service not known")

    result = run(fetch_one("http://gone.test/", resolver=nxdomain))
    assert result.error == "dns"


def test_connection_refused_is_connect() -> None:
    port = free_port()
    result = run(fetch_one(f"http://127.0.0.1:{port}/"))
    assert result.error == "connect"
    assert f"127.0.0.1:{port}" in (result.detail or "")


@pytest.mark.parametrize(
    ("data", "encoding", "fragment"),
    [
        (b"\x1f\x8b\x08\x00garbage-not-deflate-data" * 10, "gzip", "broken gzip"),
        (zlib.compress(bytes(range(256)) * 64, wbits=31)[:-12], "gzip", "truncated"),
        (brotli.compress(bytes(range(256)) * 64)[:-8], "br", "truncated"),
        (b"\xff\xff\xff\xffnot brotli" * 10, "br", "broken br"),
        (b"plain", "zstd", "unsupported content-encoding"),
    ],
    ids=["broken-gzip", "truncated-gzip", "truncated-br", "broken-br", "unsupported"],
)
def test_broken_encodings_are_decode(
    server: HostileServer, data: bytes, encoding: str, fragment: str
) -> None:
    server.route("/x", respond(data, headers={"Content-Encoding": encoding}))
    result = run(fetch_one(server.url("/x")))
    assert result.error == "decode"
    assert fragment in (result.detail or "")
    assert result.status == 200 and result.body == b""


def test_garbage_instead_of_http_is_protocol(server: HostileServer) -> None:
    server.route("/x", raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    server.route("/noloc", raw(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    server.route("/short", raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this"))
    server.route("/endless-head", raw(b"HTTP/1.1 200 OK\r\nX-Junk: " + b"a" * (4 * MiB)))
    assert run(fetch_one(server.url("/x"))).error == "protocol"
    no_location = run(fetch_one(server.url("/noloc")))
    assert no_location.error == "protocol" and "Location" in (no_location.detail or "")
    assert run(fetch_one(server.url("/short"))).error == "protocol"  # closed before Content-Length
    started = time.monotonic()
    assert run(fetch_one(server.url("/endless-head"))).error == "protocol"  # h11's head size limit
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/feed", "bad-scheme"),
        ("file:///etc/passwd", "bad-scheme"),
        ("gopher://127.0.0.1:70/", "bad-scheme"),
        ("not a url", "bad-scheme"),
        ("http:///nohost", "bad-url"),
    ],
)
def test_bad_urls_are_refused_without_network(url: str, reason: str) -> None:
    backend = RecordingBackend()
    result = run(fetch_one(url, network_backend=backend))
    assert result.error == reason, result.detail
    assert backend.attempts == []


# --------------------------------------------------------------------------- concurrency


def test_per_host_limit_is_honoured(server: HostileServer) -> None:
    server.route("/slow", delayed(0.25, respond(b"ok")))

    async def go() -> list[FetchResult]:
        async with Fetcher(fast(per_host=2, concurrency=32)) as fetcher:
            jobs = [fetcher.fetch(server.url("/slow"), kind="page") for _ in range(8)]
            results: list[FetchResult] = await asyncio.gather(*jobs)
            return results

    results = run(go())
    assert all(r.ok for r in results)
    assert server.max_active == 2  # reached, never exceeded


def test_per_host_limit_is_per_host_and_overall_limit_caps_the_sum() -> None:
    hosts = ["127.0.0.1", "127.0.0.3", "127.0.0.4"]
    counter = ActiveCounter()
    servers = [HostileServer(h, counter=counter).start() for h in hosts]
    try:
        for srv in servers:
            srv.route("/slow", delayed(0.25, respond(b"ok")))
        allow = frozenset(hosts)

        async def go(settings: FetchSettings) -> list[FetchResult]:
            async with Fetcher(settings) as fetcher:
                jobs = [fetcher.fetch(srv.url("/slow"), kind="page") for srv in servers for _ in range(3)]
                results: list[FetchResult] = await asyncio.gather(*jobs)
                return results

        # per_host=1: each host serves one at a time, but the three hosts run side by side
        assert all(r.ok for r in run(go(fast(allow_hosts=allow, per_host=1, concurrency=32))))
        assert counter.max_active == 3
        assert all(srv.max_active == 3 for srv in servers)  # shared counter

        # overall 2: never more than two at once across all hosts
        counter.max_active = 0
        assert all(r.ok for r in run(go(fast(allow_hosts=allow, per_host=4, concurrency=2))))
        assert counter.max_active == 2
    finally:
        for srv in servers:
            srv.stop()


# --------------------------------------------------------------------------- TLS


def test_tls_uses_the_host_name_for_sni_and_certificate_while_connecting_to_the_checked_ip() -> None:
    pytest.importorskip("cryptography")
    server_ctx, client_ctx = tls_contexts(["feeds.tls.test"])
    with HostileServer("127.0.0.1", ssl_context=server_ctx) as srv:
        srv.route("/feed", respond(b"<rss/>"))

        async def to_loopback(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        backend = RecordingBackend()
        settings = fast(allow_hosts=frozenset({"feeds.tls.test", "other.tls.test"}))
        url = f"https://feeds.tls.test:{srv.port}/feed"
        result = run(
            fetch_one(url, settings, resolver=to_loopback, network_backend=backend, ssl_context=client_ctx)
        )
        assert result.ok, result.detail
        assert result.body == b"<rss/>"
        assert backend.attempts == [("127.0.0.1", srv.port)]
        assert srv.requests[0].server_name == "feeds.tls.test"

        # A certificate that does not name the host fails verification: the check is on the name.
        wrong = run(
            fetch_one(
                f"https://other.tls.test:{srv.port}/feed",
                settings,
                resolver=to_loopback,
                ssl_context=client_ctx,
            )
        )
        assert wrong.error == "connect"
        assert "certificate" in (wrong.detail or "").lower()


# --------------------------------------------------------------------------- settings and misuse


def test_invalid_settings_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="read_timeout"):
        FetchSettings(read_timeout=0)
    with pytest.raises(ValueError, match="per_host"):
        FetchSettings(per_host=0)


def test_fetch_outside_the_context_manager_is_a_programming_error() -> None:
    fetcher = Fetcher(fast())
    with pytest.raises(RuntimeError, match="async with"):
        run(fetcher.fetch("http://127.0.0.1/", kind="page"))


def test_a_busy_host_does_not_hold_overall_slots_other_hosts_could_use() -> None:
    from demo.webserver import start_server

    with start_server(None, "127.0.0.1") as slow, start_server(None, "127.0.0.2") as quick:
        slow.add_route("/slow", b"<p>slow</p>", delay=0.8)
        quick.add_route("/quick", b"<p>quick</p>")
        settings = fast(concurrency=2, per_host=1, allow_hosts=frozenset({"127.0.0.1", "127.0.0.2"}))

        async def scenario() -> float:
            async with Fetcher(settings) as fetcher:
                queued = [asyncio.create_task(fetcher.fetch(slow.url("/slow"), kind="page")) for _ in range(3)]
                await asyncio.sleep(0.1)  # the slow host's three requests are in: one running, two queued
                started = time.monotonic()
                result = await fetcher.fetch(quick.url("/quick"), kind="page")
                waited = time.monotonic() - started
                assert result.ok
                assert all(r.ok for r in await asyncio.gather(*queued))
                return waited

        # with an overall slot taken before the host slot, the quick host would wait for a slow answer
        assert run(scenario()) < 0.5
