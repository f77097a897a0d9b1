"""Where a registered agent may send a query: public addresses, unless the operator allows a network.

A registrant controls an agent's URL, so without this the service would call anything it can reach on
their behalf (SSRF): the cloud metadata endpoint at 169.254.169.254, Redis on loopback, pods on the
cluster network. Every address a URL's host resolves to must be public (not loopback, private, link-local,
shared, unique-local, multicast, reserved or unspecified, IPv4-mapped forms included) or inside one of the
operator's ``allow_networks``. The check runs at registration and again before every call, on a fresh
resolution, so a name that later resolves elsewhere (DNS rebinding) is caught at call time. What remains:
the HTTP client resolves the name once more itself, a window of one lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


VIA_HEADER = "x-swarm-route-via"  # sent on every agent call: which swarm_route the call came from


def service_id(namespace: str, redis_url: str | None) -> str:
    """The same for every replica of one deployment (one store, one namespace), different for another
    swarm_route that may legitimately be registered as an agent of this one."""
    return hashlib.sha256(f"{namespace}|{redis_url}".encode()).hexdigest()[:16]


def came_from(headers_value: str, me: str) -> bool:
    """Whether a request carrying ``VIA_HEADER: headers_value`` was sent by this service's own agent call:
    an agent whose endpoint is this service would otherwise recurse without limit."""
    return me in (part.strip() for part in headers_value.split(","))


MAX_REPLAY_BYTES = 256 * 2**20  # a routing matrix far larger than this is not a recording but an attack


def replay_files(endpoint: str, roots: Sequence[str | Path] | None) -> list[Path]:
    """The CSV files a replay agent's ``endpoint`` names (comma-separated), each a regular file of at most
    ``MAX_REPLAY_BYTES`` under one of ``roots`` (None: anywhere, for a benchmark's own files). One message
    for every refusal, so the answer never tells a caller whether a path exists (or is a FIFO, /dev/zero …)."""
    where = "under agent_policy.replay_dirs" if roots is not None else ""
    refused = Unreachable(f"replay files must be regular CSV files of at most {MAX_REPLAY_BYTES >> 20} MiB {where}")
    allowed = [Path(r).resolve() for r in roots] if roots is not None else None
    files = []
    for name in endpoint.split(","):
        try:
            path = Path(name).resolve()
            info = path.stat()
        except (OSError, RuntimeError):
            raise refused from None
        inside = allowed is None or any(path.is_relative_to(r) for r in allowed)
        if not (inside and stat.S_ISREG(info.st_mode) and info.st_size <= MAX_REPLAY_BYTES):
            raise refused
        files.append(path)
    return files


class Unreachable(ValueError):
    """The URL's host resolves to an address agents may not be called at, or does not resolve."""


def networks(cidrs: Sequence[str]) -> list[Network]:
    """Parsed CIDRs; a bad one raises ``ValueError`` naming it."""
    out = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not a network (CIDR, e.g. 10.0.0.0/8 or ::1/128)") from None
    return out


def _public(ip: Address) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class Reachability:
    def __init__(self, allow_networks: Sequence[str] = ()) -> None:
        self.allowed = networks(allow_networks)

    def permits(self, ip: Address) -> bool:
        return _public(ip) or any(ip in net for net in self.allowed if ip.version == net.version)

    async def check(self, url: str) -> None:
        """Raises ``Unreachable`` unless every address ``url``'s host resolves to is permitted."""
        parsed = urlparse(url)
        host = parsed.hostname
        if not host:
            raise Unreachable("the URL has no host")
        for ip in await _resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80)):
            if not self.permits(ip):
                raise Unreachable(
                    f"host {host!r} resolves to {ip}, a non-public address; an operator may allow its network "
                    "in agent_policy.allow_networks"
                )


async def _resolve(host: str, port: int) -> set[Address]:
    try:
        return {ipaddress.ip_address(host.strip("[]"))}
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise Unreachable(f"host {host!r} does not resolve") from None
    return {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
