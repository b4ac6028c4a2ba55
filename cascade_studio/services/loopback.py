"""Is a host this machine? Checked, not assumed (issue 33).

`core.tiers.is_loopback_host` says which names claim to be this machine (loopback addresses,
`localhost`, `*.localhost`). A name is resolved, and a resolver may send `evil.localhost` anywhere, so
a key goes over plain http to a name only when it resolves to loopback addresses alone: here when a
tier's key is looked up (`secrets.resolve`, the Keys page's "http (this machine)"), and again at the
moment of connecting (`LoopbackOnlyBackend`), which connects to the very address it checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import httpcore2
from httpcore2._backends.auto import AutoBackend


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return None


def _getaddrinfo(host: str, port: int | None) -> list[str]:
    """The addresses a name resolves to (the one seam tests replace)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def addresses_of(host: str, port: int | None = None) -> list[str]:
    literal = _literal(host)
    if literal is not None:
        return [str(literal)]
    try:
        return _getaddrinfo(host, port)
    except (OSError, UnicodeError):
        return []


def _problem(host: str, addresses: list[str]) -> str | None:
    if not addresses:
        return f"{host} does not resolve to any address"
    others = sorted({a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback})
    if others:
        return f"{host} resolves to {', '.join(others[:3])}, which is not this machine"
    return None


class NotLoopback(ConnectionError):
    """A plain-http connection refused: the name does not resolve to this machine alone."""


async def checked_loopback_address(host: str, port: int | None) -> str:
    """The loopback address to connect to for `host`, resolved once and checked: every address it
    resolves to must be this machine's (else NotLoopback, in words). Connecting to the returned address
    leaves no second lookup that a resolver could answer differently."""
    addresses = addresses_of(host) if _literal(host) is not None else await asyncio.to_thread(addresses_of, host, port)
    problem = _problem(host, addresses)
    if problem:
        raise NotLoopback(f"{problem}: a key is sent over plain http to this machine only; not connected")
    return addresses[0]


def not_loopback_reason(host: str, port: int | None = None) -> str | None:
    """None when `host` is this machine (a loopback address, or a name resolving to loopback addresses
    only, now); else why not, in words."""
    return _problem(host, addresses_of(host, port))


class LoopbackOnlyBackend(httpcore2.AsyncNetworkBackend):
    """A network backend that connects only to loopback addresses: it resolves the name itself, refuses
    when any address is not loopback, and connects to the address it checked (no second lookup that a
    resolver could answer differently)."""

    def __init__(self, inner: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self.inner = inner or AutoBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[object] | None = None) -> httpcore2.AsyncNetworkStream:
        try:
            address = await checked_loopback_address(host, port)
        except NotLoopback as exc:
            raise httpcore2.ConnectError(str(exc)) from None
        return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                            socket_options=socket_options)  # type: ignore[arg-type]

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[object] | None = None) -> httpcore2.AsyncNetworkStream:
        return await self.inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)  # type: ignore[arg-type]

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
