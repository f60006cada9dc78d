"""Requests the service itself sends (webhook deliveries, checkpoints to a witness URL):
only to the public internet, unless an admin allow-listed a host by name.

An admin who registers a URL must not make the service reach what only the service can
reach: its own loopback, the database's port, the cloud's metadata endpoint, the private
network. So a URL is checked twice: when it is registered (its form, and its name's
addresses if it resolves) and before every request. At request time the name is resolved
once, every address it resolves to must be public, and the connection goes to the address
that was checked, with the name kept in the Host header and the TLS SNI (so the certificate
is still checked against the name): a resolver that answers a public address first and a
private one next (DNS rebinding) cannot move the connection. Redirects are not followed and
proxies from the environment are not used, for the same reason.

Numeric host forms that the C resolver reads as IPv4 (`0x7f000001`, `2130706433`, `127.1`,
`0177.0.0.1`) and IPv6 addresses that carry an IPv4 one (mapped, 6to4, NAT64,
IPv4-compatible) are judged by the address they denote."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from governance.domain.errors import InputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) → the addresses the name resolves to, as text; raises OSError when it does not.
Resolve = Callable[[str, int], list[str]]

MAX_URL_LENGTH = 2000
DEFAULT_PORTS = {"http": 80, "https": 443}
# Names of cloud metadata services and of this machine, refused before any resolution:
# outside the cloud they may not resolve at all, inside it they answer with credentials.
BLOCKED_NAMES = frozenset(
    {"localhost", "metadata", "metadata.google.internal", "metadata.goog", "instance-data"}
)
BLOCKED_SUFFIXES = (".localhost", ".metadata.google.internal", ".ec2.internal")
SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
ALLOW_FIX = (
    "give a public https:// address, or have an administrator allow-list this host "
    "(GOVERNANCE_WEBHOOK_ALLOW_HOSTS=host or host:port)"
)


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, IPv4 and IPv6."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def numeric_address(host: str) -> IPAddress | None:
    """The address a host written as a number denotes, in any form the resolver accepts."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))  # 0x7f000001, 2130706433, 127.1
    except (OSError, UnicodeError, ValueError):
        return None


def refusal(address: IPAddress) -> str | None:
    """Why the service must not connect to `address` (None: it is a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo:
            return "a Teredo tunnel address"
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in NAT64 or address in IPV4_COMPATIBLE):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and address not in (ipaddress.IPv6Address("::"),):
            inner = refusal(embedded)
            if inner:
                return f"{inner} (inside {address})"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in SHARED, "a CGNAT address"),
        (
            isinstance(address, ipaddress.IPv6Address)
            and (address in ipaddress.ip_network("fc00::/7") or address.is_site_local),
            "a unique-local address",
        ),
        (address.is_private, "a private address"),
        (address.is_reserved or not address.is_global, "not a public address"),
    )
    return next((why for refused, why in checks if refused), None)


@dataclass(frozen=True)
class Target:
    """A checked URL: the name it gives and the address the connection must go to."""

    url: str
    scheme: str
    host: str
    port: int
    allow_listed: bool


@dataclass(frozen=True)
class Outbound:
    """Where the service may send requests: public https addresses, and the hosts an
    administrator named (`host` or `host:port`; plain http to them when `allow_http`)."""

    allow_hosts: frozenset[str] = frozenset()
    allow_http: bool = False
    resolve: Resolve = field(default=system_resolve, compare=False)

    @classmethod
    def of(cls, hosts: Iterable[str], allow_http: bool = False) -> Outbound:
        return cls(frozenset(h.strip().lower() for h in hosts if h.strip()), allow_http)

    def checked(self, url: str, field_name: str = "url") -> Target:
        """The URL's form checked (scheme, host, no credentials, an allowed host), and, when
        its name resolves now, its addresses: what a subscription is refused for (422).
        A name that does not resolve yet is accepted; each request checks it again."""
        target = self._form(url, field_name)
        if not target.allow_listed:
            try:
                addresses = self.resolve(target.host, target.port)
            except OSError:
                return target
            self._public(target, addresses, field_name)
        return target

    def pinned(self, url: str) -> tuple[Target, str]:
        """The target and the one address to connect to, resolved once now: every address
        the name resolves to must be allowed. Raises InputError (nothing is sent)."""
        target = self._form(url, "url")
        try:
            addresses = self.resolve(target.host, target.port)
        except OSError as exc:
            raise InputError("url", f"host {target.host} does not resolve ({exc})") from None
        if not addresses:
            raise InputError("url", f"host {target.host} resolves to no address")
        if not target.allow_listed:
            self._public(target, addresses, "url")
        return target, addresses[0]

    def post(
        self, client: httpx.Client, url: str, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """POST to the address that was checked, never following a redirect."""
        target, address = self.pinned(url)
        request_url = httpx.URL(url).copy_with(host=address)
        host = f"[{target.host}]" if ":" in target.host else target.host
        default = DEFAULT_PORTS[target.scheme] == target.port
        name = host if default else f"{host}:{target.port}"
        extensions: dict[str, Any] = {}
        if target.scheme == "https" and numeric_address(target.host) is None:
            extensions["sni_hostname"] = target.host  # and the certificate is checked for it
        return client.post(
            request_url,
            content=content,
            headers={**headers, "Host": name},
            extensions=extensions,
            follow_redirects=False,
        )

    def _form(self, url: str, field_name: str) -> Target:
        url = url.strip()
        fix = "give an https:// address with a host, e.g. https://hooks.example.com/governance"
        if len(url) > MAX_URL_LENGTH:
            raise InputError(
                field_name, f"is {len(url)} characters", f"use at most {MAX_URL_LENGTH}"
            )
        if any(c.isspace() or not c.isprintable() for c in url):
            raise InputError(
                field_name, "contains white space or control characters", "percent-encode them"
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InputError(field_name, f"is not a valid address ({exc})", fix) from None
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise InputError(field_name, f"is {url!r}", fix)
        if parts.username or parts.password:
            raise InputError(
                field_name,
                "carries a user name or password",
                "leave credentials out of the address: receivers check the signature header",
            )
        host = parts.hostname.lower().rstrip(".")
        if "%" in host:  # an encoded name, or an IPv6 zone: nothing a receiver needs
            raise InputError(field_name, f"has a percent sign in its host ({host})", fix)
        port = port or DEFAULT_PORTS[parts.scheme]
        listed = self._listed(host, port)
        target = Target(url, parts.scheme, host, port, listed)
        if parts.scheme == "http" and not (listed and self.allow_http):
            raise InputError(
                field_name,
                f"is plain http ({url!r})",
                "use https://; plain http only to an allow-listed host with "
                "GOVERNANCE_WEBHOOK_ALLOW_HTTP=1",
            )
        if listed:
            return target
        if host in BLOCKED_NAMES or host.endswith(BLOCKED_SUFFIXES):
            raise InputError(field_name, f"names {host}, a local or metadata host", ALLOW_FIX)
        address = numeric_address(host)
        why = refusal(address) if address is not None else None
        if why:
            raise InputError(field_name, f"names {host}: {why}", ALLOW_FIX)
        return target

    def _listed(self, host: str, port: int) -> bool:
        bare = host.strip("[]")
        written = f"[{bare}]" if ":" in bare else bare
        return bool({bare, written, f"{written}:{port}"} & self.allow_hosts)

    @staticmethod
    def _public(target: Target, addresses: list[str], field_name: str) -> None:
        for text in addresses:
            why = refusal(ipaddress.ip_address(text.split("%")[0]))
            if why:
                raise InputError(
                    field_name, f"host {target.host} resolves to {text}: {why}", ALLOW_FIX
                )
