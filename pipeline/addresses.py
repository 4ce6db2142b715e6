"""Which network addresses a result may be fetched from: public ones only.

A result URL comes from the API's answer, so a hostile or broken API could point aihd at the
machine's own services (``http://127.0.0.2/``, a cloud's metadata at ``169.254.169.254``, a router
at ``192.168.1.1``). Results are fetched only from public addresses, or from the API's own origin
(the local emulator serves its results from loopback). A host name is resolved and every one of
its addresses must be public; the connector checks them again when it connects, so a name that
resolves to a public address first and a private one later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["PublicOnlyResolver", "is_loopback", "non_public_reason"]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host) is this machine: a local emulator, not the API."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def non_public_reason(address: str) -> str | None:
    """Why ``address`` is not a public address (e.g. "a loopback address"), or None if it is."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            address.split("%", 1)[0]  # an IPv6 zone ("fe80::1%eth0") is not part of the address
        )
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one reaches that IPv4 host: judge the IPv4 address.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return non_public_reason(str(embedded))
    for kind, flag in (
        ("an unspecified", ip.is_unspecified),
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
    ):
        if flag:
            return f"{kind} address"
    if not ip.is_global:
        return "a non-public address"  # e.g. shared address space, 100.64.0.0/10
    return None


class PublicOnlyResolver(AbstractResolver):
    """The default resolver, refusing non-public addresses for every host but the API's own."""

    def __init__(self, api_host: str) -> None:
        self._api_host = api_host
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        if host == self._api_host:
            return found
        public = [entry for entry in found if non_public_reason(entry["host"]) is None]
        if not public:
            raise OSError(f"{host} resolves only to non-public addresses: not connecting")
        return public

    async def close(self) -> None:
        await self._resolver.close()

    def __repr__(self) -> str:
        return f"PublicOnlyResolver(api_host={self._api_host!r})"
