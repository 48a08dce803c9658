"""The outbound policy: which addresses Shipyard may connect to on a tenant's behalf.

Every address a tenant can set (git provider and repository URLs, CI/CD provider URLs, SSH host
addresses; later notification and webhook URLs) is checked here, after DNS resolution: every
address a name resolves to must pass, and the connection then goes to a checked address (see
:mod:`shipyard.outbound.transport` for HTTP, ``hosts.executor.ssh`` for SSH, ``git.gitcmd`` for
git), so a name cannot resolve to something else between the check and the connect.

- Link-local and cloud metadata addresses are always refused: ``169.254.0.0/16`` (in every
  spelling: ``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376``, ``::ffff:169.254.169.254``),
  ``fe80::/10``, ``fd00:ec2::254``, ``100.100.100.200`` and names such as
  ``metadata.google.internal``. No setting allows them.
- Loopback and private ranges are allowed unless ``SHIPYARD_OUTBOUND_ALLOW_PRIVATE=false``;
  ``SHIPYARD_OUTBOUND_ALLOW`` then lists exceptions (CIDRs, addresses, host names,
  ``*.domain``).

Build one per process with :meth:`OutboundPolicy.from_settings` (the runtime's ``outbound``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from shipyard.config import Settings
from shipyard.errors import ValidationFailed
from shipyard.outbound.errors import OutboundRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Refusal = Literal["always", "private"]

ALLOW_PRIVATE_SETTING = "SHIPYARD_OUTBOUND_ALLOW_PRIVATE"
ALLOW_SETTING = "SHIPYARD_OUTBOUND_ALLOW"
DNS_TIMEOUT_SECONDS = 5.0
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Where cloud metadata services (and their credentials) live: never reachable, whatever the
# settings say. 169.254.169.254 (AWS, GCP, Azure, OCI...), AWS's IPv6 fd00:ec2::254, Alibaba's
# 100.100.100.200, and the rest of link-local with them.
ALWAYS_REFUSED = _networks("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)
# Loopback, private, shared (CGNAT), "this network", benchmark, multicast and reserved ranges:
# refused when private addresses are not allowed, unless an exception lists them.
PRIVATE = _networks(
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fec0::/10",
    "ff00::/8",
)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NUMERIC_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def parse_ipv4_loosely(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address as the C resolver reads it (``inet_aton``), or None.

    ``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376`` and ``169.254.43518`` are all
    169.254.169.254 to ``getaddrinfo``, so they are to the policy too.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(part) for part in parts):
        return None
    values: list[int] = []
    for part in parts:
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif part.startswith("0"):
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def parse_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells (any IPv4 spelling, IPv6 with or without brackets)."""
    text = host.strip().removeprefix("[").removesuffix("]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return parse_ipv4_loosely(text.rstrip("."))


def normalise_name(host: str) -> str:
    """A host name compared case-insensitively, without its trailing dot(s)."""
    name = host.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        return name


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, SIIT, NAT64, 6to4, Teredo, compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    value = int(address)
    if value >> 32 == 0xFFFF0000 or address in NAT64:  # ::ffff:0:a.b.c.d, 64:ff9b::a.b.c.d
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d (deprecated "compatible")
        return ipaddress.IPv4Address(value)
    return None


def _within(addresses: list[IPAddress], networks: tuple[IPNetwork, ...]) -> bool:
    return any(
        address.version == network.version and address in network
        for address in addresses
        for network in networks
    )


def parse_allow_list(text: str) -> tuple[tuple[IPNetwork, ...], frozenset[str], tuple[str, ...]]:
    """``SHIPYARD_OUTBOUND_ALLOW``: networks, exact host names and ``*.domain`` suffixes."""
    networks: list[IPNetwork] = []
    names: set[str] = set()
    domains: list[str] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = normalise_name(entry)
        if name.startswith("*."):
            domains.append(name[1:])
        elif re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*", name):
            names.add(name)
        else:
            raise ValueError(
                f"{ALLOW_SETTING}: {entry!r} is not a CIDR, an address, a host name or *.domain"
            )
    return tuple(networks), frozenset(names), tuple(domains)


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses outbound connections may reach. Immutable; one per process."""

    allow_private: bool = True
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_names: frozenset[str] = frozenset()
    allowed_domains: tuple[str, ...] = ()
    dns_timeout: float = DNS_TIMEOUT_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        networks, names, domains = parse_allow_list(settings.outbound_allow)
        return cls(
            allow_private=settings.outbound_allow_private,
            allowed_networks=networks,
            allowed_names=names,
            allowed_domains=domains,
        )

    # -- decisions (no DNS) ------------------------------------------------------------------

    def name_is_listed(self, name: str) -> bool:
        name = normalise_name(name)
        return name in self.allowed_names or any(
            name.endswith(domain) for domain in self.allowed_domains
        )

    def refusal(self, address: IPAddress, *, listed_name: bool = False) -> Refusal | None:
        """Why ``address`` is refused, or None. IPv4 inside IPv6 is judged as the IPv4 too."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            inner = embedded_ipv4(address)
            if inner is not None:
                candidates.append(inner)
        if _within(candidates, ALWAYS_REFUSED):
            return "always"
        if self.allow_private or listed_name or _within(candidates, self.allowed_networks):
            return None
        return "private" if _within(candidates, PRIVATE) else None

    def refused(self, host: str, kind: Refusal, *, resolved: bool) -> OutboundRefused:
        kind_text = (
            "a link-local or cloud metadata address" if kind == "always" else "a private address"
        )
        what = (f"it resolves to {kind_text}" if resolved else f"it is {kind_text}") + (
            ", which is never allowed"
            if kind == "always"
            else f" (loopback and private addresses are off: {ALLOW_PRIVATE_SETTING}=false; "
            f"{ALLOW_SETTING} lists exceptions)"
        )
        return OutboundRefused(
            f"{host} is refused by the outbound policy: {what}",
            host=host,
            setting=None if kind == "always" else ALLOW_PRIVATE_SETTING,
        )

    def check_literal(self, host: str) -> IPAddress | None:
        """Refuse what can be refused without DNS (an address in any spelling, metadata names).

        Returns the address ``host`` spells, or None for a name (which still needs
        :meth:`check_host` before a connection).
        """
        if not host or not host.strip():
            raise OutboundRefused(
                "an empty host is refused by the outbound policy", host=host, setting=None
            )
        address = parse_address(host)
        if address is not None:
            kind = self.refusal(address)
            if kind is not None:
                raise self.refused(host, kind, resolved=False)
            return address
        if normalise_name(host) in METADATA_NAMES:
            raise self.refused(host, "always", resolved=False)
        return None

    # -- with DNS ----------------------------------------------------------------------------

    async def check_host(self, host: str, port: int | None = None) -> list[IPAddress]:
        """Every address ``host`` resolves to, each checked; connect only to these.

        Raises :class:`OutboundRefused` when any of them is refused (a name that also resolves
        to a refused address is refused: which one a client picks is not ours to choose), and
        ``socket.gaierror`` when the name does not resolve (in time).
        """
        literal = self.check_literal(host)
        if literal is not None:
            return [literal]
        name = normalise_name(host)
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(name, port, type=socket.SOCK_STREAM), self.dns_timeout
            )
        except TimeoutError:
            raise socket.gaierror(socket.EAI_AGAIN, f"resolving {name} timed out") from None
        addresses: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} has no address")
        listed = self.name_is_listed(name)
        for address in addresses:
            kind = self.refusal(address, listed_name=listed)
            if kind is not None:
                raise self.refused(host, kind, resolved=True)
        return addresses

    async def check_url(self, url: str) -> list[IPAddress]:
        """``check_host`` for an http(s) URL's host; any other scheme is refused."""
        try:
            parts = urlsplit(url.strip())
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise OutboundRefused(
                f"{url!r} is not a URL the outbound policy can check ({exc})",
                host="",
                setting=None,
            ) from exc
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise OutboundRefused(
                f"{scheme or 'a URL without a scheme'}:// is refused by the outbound policy: "
                "only http and https are allowed",
                host=host or "",
                setting=None,
            )
        if not host:
            raise OutboundRefused("a URL without a host is refused", host="", setting=None)
        return await self.check_host(host, port or DEFAULT_PORTS[scheme])

    # -- for create/update: a 422 naming the field -------------------------------------------

    def validate_literal(self, host: str, *, field: str) -> None:
        """The no-DNS part of :meth:`validate_host`."""
        try:
            self.check_literal(host)
        except OutboundRefused as exc:
            raise ValidationFailed(exc.message, field=field, code=exc.code) from exc

    async def validate_host(self, host: str, *, field: str) -> None:
        """A 422 naming ``field`` when ``host`` or what it resolves to is refused.

        A name that does not resolve passes: the connection will say so (and checks again).
        """
        try:
            await self.check_host(host)
        except OutboundRefused as exc:
            raise ValidationFailed(exc.message, field=field, code=exc.code) from exc
        except OSError:
            return

    async def validate_url(self, url: str, *, field: str) -> None:
        """:meth:`validate_host` for a URL (http and https only)."""
        try:
            await self.check_url(url)
        except OutboundRefused as exc:
            raise ValidationFailed(exc.message, field=field, code=exc.code) from exc
        except OSError:
            return


# The rules no setting changes, for code handed no policy: private ranges allowed.
DEFAULT_POLICY = OutboundPolicy()
