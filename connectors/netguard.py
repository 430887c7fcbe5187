"""SSRF guard: decide which addresses the fetcher may connect to, at connect time.

Feeds and pages come from strangers, and a URL (or a redirect, or a DNS answer) can point the fetcher
at the machine's own services or the private network. The guard refuses every address that is not
globally routable: private, loopback, link-local (cloud metadata at 169.254.169.254), multicast,
reserved, unspecified, shared/CGNAT (100.64.0.0/10), documentation and benchmarking ranges, and IPv6
forms that embed one of those (IPv4-mapped, 6to4, Teredo, NAT64). A host written in ``allow_hosts``
exactly as it appears in the URL (``127.0.0.1``, ``feeds.internal``) skips the address check.

The check runs on the *resolved* addresses inside the network backend that opens the socket
(:class:`GuardedBackend`, plugged into httpcore's connection pool): the name is resolved once, every
address is checked, and the socket is opened to the checked IP itself. There is no second lookup
between check and connect for a DNS-rebinding server to answer differently. TLS is unaffected:
httpcore upgrades the returned stream with ``server_hostname`` taken from the URL's host, so SNI
and certificate verification still use the name.

If any address of a name is refused, the whole name is refused: a round-robin answer that mixes a
public and a private address is an attack, not a configuration to work around.

Names under ``.invalid`` (RFC 6761) fail as unknown without any lookup, so tests of unknown hosts
never send a DNS query anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: ``resolver(host, port) -> addresses`` (textual IPs). Raise :class:`UnknownHost` for a name that
#: does not exist. Tests pass their own to answer without DNS.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class GuardError(Exception):
    """Raised from the network backend; the fetcher turns ``reason`` into its result's error."""

    reason = "blocked-address"


class BlockedAddress(GuardError):
    reason = "blocked-address"


class UnknownHost(GuardError):
    reason = "dns"


@dataclass(frozen=True)
class Decision:
    """One verdict of the guard, kept (a bounded log) so tests and operators can see what happened."""

    host: str
    address: str | None  # None when the name did not resolve
    allowed: bool
    why: str  # "public", "allow-listed", "loopback", "private", ..., "unknown host"


_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Ranges `ipaddress`' own flags miss or name too vaguely (3.11): checked first, for a precise reason.
_NAMED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified/this-network"),
    (_V4("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("240.0.0.0/4"), "reserved"),
)
_NAMED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("100::/64"), "discard-only"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("fc00::/7"), "unique local (private)"),
    (_V6("fec0::/10"), "site-local"),
)
_NAT64 = _V6("64:ff9b::/96")


def parse_ip(text: str) -> IPAddress | None:
    """The address in ``text`` (brackets and IPv6 zone ignored), or None when it is a name."""
    text = text.strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be connected to, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = ip.ipv4_mapped
        label = "IPv4-mapped"
        if embedded is None and ip.sixtofour is not None:
            embedded, label = ip.sixtofour, "6to4"
        if embedded is None and ip.teredo is not None:
            embedded, label = ip.teredo[1], "Teredo"
        if embedded is None and ip in _NAT64:
            embedded, label = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
        if embedded is not None:
            inner = address_problem(embedded)
            if inner is not None:
                return f"{label} {inner}"
        for net6, name in _NAMED_V6:
            if ip in net6:
                return name
    else:
        for net4, name in _NAMED_V4:
            if ip in net4:
                return name
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if not ip.is_global:
        return "not globally routable"
    return None


def normalise_host(host: str) -> str:
    """Host as compared with ``allow_hosts``: lower-case, no brackets, no trailing dot, IDNA."""
    host = host.strip().lower().strip("[]").rstrip(".")
    if parse_ip(host) is None:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return host


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo in the event loop's executor; unknown names raise :class:`UnknownHost`."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnknownHost(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnknownHost(f"{host} has no addresses")
    return addresses


class NetGuard:
    """Resolves a host and returns only addresses the fetcher may connect to, or raises."""

    def __init__(
        self,
        allow_hosts: Iterable[str] = (),
        *,
        resolver: Resolver | None = None,
        log_size: int = 512,
    ) -> None:
        self.allow_hosts = frozenset(normalise_host(h) for h in allow_hosts)
        self._resolver = resolver or system_resolver
        self.decisions: deque[Decision] = deque(maxlen=log_size)

    def _decide(self, host: str, address: str | None, allowed: bool, why: str) -> None:
        self.decisions.append(Decision(host, address, allowed, why))

    async def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """Checked addresses for ``host`` (a name or a literal IP), in the resolver's order.

        Raises :class:`BlockedAddress`, :class:`UnknownHost`, or httpcore's ``ConnectTimeout`` when
        resolution takes longer than ``timeout``.
        """
        key = normalise_host(host)
        allowed_host = key in self.allow_hosts
        literal = parse_ip(key)
        if literal is not None:
            addresses = [str(literal)]
        elif key == "invalid" or key.endswith(".invalid"):
            self._decide(key, None, False, "unknown host")
            raise UnknownHost(f"{host} is under .invalid and never resolves")
        else:
            try:
                async with asyncio.timeout(timeout):
                    addresses = await self._resolver(key, port)
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout}s") from exc
            except UnknownHost:
                self._decide(key, None, False, "unknown host")
                raise
        if not addresses:
            self._decide(key, None, False, "unknown host")
            raise UnknownHost(f"{host} has no addresses")
        checked: list[str] = []
        for text in addresses:
            ip = parse_ip(text)
            if ip is None:
                self._decide(key, text, False, "resolver returned a non-address")
                raise BlockedAddress(f"resolver returned {text!r} for {host}, not an IP address")
            if allowed_host:
                self._decide(key, str(ip), True, "allow-listed")
            else:
                problem = address_problem(ip)
                if problem is not None:
                    self._decide(key, str(ip), False, problem)
                    shown = host if host == str(ip) else f"{host} resolves to {ip}"
                    raise BlockedAddress(f"{shown}, a {problem} address (not allowed: --allow-host or NEWSWIRE_ALLOW_HOSTS allows it)")
                self._decide(key, str(ip), True, "public")
            checked.append(str(ip))
        return checked


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses the guard has checked."""

    def __init__(self, guard: NetGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.guard.resolve(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                # The checked IP, never the name: a second lookup could answer differently.
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address to connect to for {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
