"""Which network addresses a result may be fetched from: public ones only.

A result URL comes from the API's answer, so a hostile or broken API could point aihd at the
machine's own services (``http://127.0.0.2/``, a cloud's metadata at ``169.254.169.254``, a router
at ``192.168.1.1``). Results are fetched only from public addresses, or from the API's own origin
(the local emulator serves its results from loopback). A host name is resolved and every one of
its addresses must be public; the connector checks them again when it connects, so a name that
resolves to a public address first and a private one later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

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


# What aiohttp's ThreadedResolver asks and answers with (its default without aiodns).
_AI_ADDRCONFIG = getattr(socket, "AI_ADDRCONFIG", 0)
_NUMERIC_SOCKET_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
_NAME_SOCKET_FLAGS = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV


class PublicOnlyResolver:
    """Host names resolved as aiohttp's default resolver does (``getaddrinfo`` off the loop),
    refusing non-public addresses for every host but the API's own.

    Both clients ask it: http1 for the API's calls (the v3 tools list may be on another host),
    aiohttp's connector for result downloads, whose ``AbstractResolver`` interface it has
    (``resolve``, ``close``; answers shaped as ``aiohttp.abc.ResolveResult``) without importing
    aiohttp: a run that downloads nothing never loads it.
    """

    def __init__(self, api_host: str) -> None:
        self._api_host = api_host

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:
        found = await _resolved(host, port, family)
        if host == self._api_host:
            return found
        public = [entry for entry in found if non_public_reason(entry["host"]) is None]
        if not public:
            raise OSError(f"{host} resolves only to non-public addresses: not connecting")
        return public

    async def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"PublicOnlyResolver(api_host={self._api_host!r})"


async def _resolved(host: str, port: int, family: socket.AddressFamily) -> list[dict[str, Any]]:
    """aiohttp's ThreadedResolver.resolve (3.14), without aiohttp."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, family=family, flags=_AI_ADDRCONFIG
    )
    hosts: list[dict[str, Any]] = []
    for found_family, _, proto, _, address in infos:
        if found_family == socket.AF_INET6:
            if len(address) < 3:
                continue  # IPv6 not supported by this Python build or host
            if address[3]:  # a link-local address's scope: resolved by name
                resolved_host, found_port = await loop.getnameinfo(address, _NAME_SOCKET_FLAGS)
                port = int(found_port)
            else:
                resolved_host, port = str(address[0]), int(address[1])
        else:
            resolved_host, port = str(address[0]), int(address[1])
        hosts.append(
            {
                "hostname": host,
                "host": resolved_host,
                "port": port,
                "family": found_family,
                "proto": proto,
                "flags": _NUMERIC_SOCKET_FLAGS,
            }
        )
    return hosts
