"""Which URLs a webhook may reach: none inside the network prefloop runs in (SSRF), unless named.

A receiver URL is typed by an admin, but the request goes out from the server, so without a check
an endpoint could read cloud metadata (169.254.169.254), the database, or any loopback service and
probe it through the delivery log. The rule, applied when an endpoint is saved and again on every
delivery:
- http or https only, no user:password@ in the URL;
- the host is resolved (numeric forms such as 2130706433, 0x7f.1 or 127.1 resolve like any name)
  and every address must be globally routable: loopback, private, link-local, unspecified,
  multicast, reserved and shared (CGNAT) ranges are refused, IPv4-mapped IPv6 by its IPv4 address;
- hosts listed in WEBHOOK_ALLOWED_HOSTS are exempt: an admin's explicit choice of an internal receiver.

At delivery, GuardedTransport connects to the very address it checked (the URL's host is replaced by
that IP while the Host header and TLS SNI keep the name), so a DNS answer that changes between the
check and the connect (DNS rebinding) cannot redirect the request inward. This is the pattern of
gradio's safehttpx and of ssrf-proxies such as Smokescreen, in a sync httpx transport: httpcore
takes the name to verify the certificate against from the "sni_hostname" request extension.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection

import httpx

Resolver = Callable[[str, int], list[str]]


class UnsafeTarget(Exception):
    """The URL may not be delivered to; the message says why (shown to the admin)."""


class Unresolvable(Exception):
    """The host has no address right now (a network condition: retried at delivery)."""


def resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (the resolver the connection would use)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal(address: str) -> str | None:
    """What kind of internal address this IP is (why connecting to it is refused), or None if public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 inside IPv6 (::ffff:a.b.c.d, and 6to4's 2002:aabb:ccdd::) is judged as that IPv4 address.
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    kinds = (
        ("an unspecified", ip.is_unspecified),
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
        ("a non-public", not ip.is_global),
    )
    return next((kind for kind, hit in kinds if hit), None)


def _normalized(host: str) -> str:
    return host.lower().rstrip(".")


def check(url: str, *, allowed_hosts: Collection[str], resolver: Resolver = resolve) -> list[str] | None:
    """The checked addresses of url's host, or None when the host is on the allow-list.

    Raises UnsafeTarget for a URL that may not be reached, Unresolvable when the name has no address.
    """
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise UnsafeTarget("Only http and https URLs can receive webhooks.")
    if parsed.userinfo:
        raise UnsafeTarget("Credentials in the URL are not allowed; the signature authenticates deliveries.")
    if not parsed.host:
        raise UnsafeTarget("The URL has no host.")
    if _normalized(parsed.host) in allowed_hosts:
        return None
    addresses = resolver(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
    for address in addresses:
        if kind := refusal(address):
            where = address if address == parsed.host else f"{parsed.host} resolves to {address}, which"
            raise UnsafeTarget(
                f"{where} is {kind} address; an internal receiver must be named in PREFLOOP_WEBHOOK_ALLOWED_HOSTS."
            )
    if not addresses:
        raise Unresolvable(f"{parsed.host} has no address")
    return addresses


class GuardedTransport(httpx.BaseTransport):
    """Checks each request's target (see check) and connects to the checked address itself."""

    def __init__(
        self,
        *,
        allowed_hosts: Collection[str],
        resolver: Resolver = resolve,
        connect: httpx.BaseTransport | None = None,
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.resolver = resolver
        self._connect = connect or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            addresses = check(str(request.url), allowed_hosts=self.allowed_hosts, resolver=self.resolver)
        except Unresolvable as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        if addresses is not None:
            name = request.url.host
            # The Host header was set from the name when the request was built and stays as it is.
            request.url = request.url.copy_with(host=addresses[0])
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": name}
        return self._connect.handle_request(request)

    def close(self) -> None:
        self._connect.close()
