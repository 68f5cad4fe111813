"""Where inputs by reference may be fetched from: public unicast addresses, unless the administrator
says otherwise, and never the service itself.

The decision is made on the address a connection actually goes to, after name resolution (see
``processes/fetch.py``, whose connections resolve once, ask :meth:`Destinations.check` about every
address and connect only to an address it let through), so neither a name that points inside, nor a
numeric spelling of one (``2130706433``, ``0x7f000001``, ``127.1``), nor an answer that changes
between a check and the connect (DNS rebinding) can reach a private network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What no reference may reach by default beyond what ``is_global`` already rules out (Python's lists
# of private and reserved ranges differ between versions; these are named here so they cannot).
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata at 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relays
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/96",  # unspecified, loopback and the IPv4-compatible addresses
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo among them
        "2001:db8::/32",
        "fc00::/7",  # unique-local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST_NAME = re.compile(r"\.?(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?")


def is_public(address: IPAddress) -> bool:
    """A globally reachable unicast address: not private, loopback, link-local, CGNAT, multicast,
    reserved or unspecified; for IPv6, neither unique-local nor an IPv4 address in disguise (mapped,
    compatible, or a 6to4 or NAT64 address whose embedded IPv4 address is not public itself)."""
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64:  # Python's lists differ on it
        return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if any(address in network for network in _NOT_PUBLIC if network.version == address.version):
        return False
    if not address.is_global or address.is_multicast or address.is_reserved or address.is_unspecified:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.sixtofour is not None:
        return is_public(address.sixtofour)
    return True


def parse_host_entry(entry: str) -> str:
    """One ``allowed_hosts`` or ``denied_hosts`` entry, checked and lower-cased: a network in CIDR
    notation or an address, a host name, or a domain suffix starting with a dot (``.example.org``)."""
    value = entry.strip().lower()
    try:
        ipaddress.ip_network(value, strict=False)
        return value
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(value) or value in (".", ""):
        kinds = "a host name, a domain suffix (.example.org) or a network (10.0.0.0/8)"
        raise ValueError(f"{entry.strip()!r} is not {kinds}")
    return value


def parse_host_entries(text: str) -> tuple[str, ...]:
    return tuple(parse_host_entry(item) for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class HostList:
    """Names, domain suffixes and networks, as an administrator lists them."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def of(cls, entries: tuple[str, ...]) -> HostList:
        names, suffixes, networks = set(), [], []
        for entry in map(parse_host_entry, entries):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if entry.startswith("."):
                    suffixes.append(entry)
                else:
                    names.add(entry.rstrip("."))
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def has_name(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.names or any(name.endswith(s) or name == s[1:] for s in self.suffixes)

    def has_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks if network.version == address.version)


def address_of(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is written as one (IPv6 with or without brackets), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _is_local(address: IPAddress) -> bool:
    """Whether ``address`` belongs to this machine: only then can a socket be bound to it."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to now, in the resolver's order, once each. A connection asks
    once and connects only to what it checked, so a second, different answer is never used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:  # a name IDNA cannot encode
        raise socket.gaierror(socket.EAI_NONAME, "not a valid host name") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonical, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class Endpoint:
    """A host and port the service itself answers on: its public URL's, and the address it binds."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        host, _, port = text.rpartition(":")
        return cls(host.strip("[]").lower().rstrip("."), int(port))

    def reached_by(self, address: IPAddress, port: int) -> bool:
        if port != self.port:
            return False
        own = address_of(self.host)
        if own is None:  # a name, such as the public URL's: whatever it resolves to now
            try:
                return address in resolve(self.host, port)
            except OSError:
                return False
        if own.is_unspecified:  # bound to every address of this machine
            return _is_local(address)
        return address == own


class RefusedDestination(Exception):
    """A connection the rules do not allow. Not an OSError, so that urllib3 and requests pass it on
    as it is instead of retrying or wrapping it."""


@dataclass(frozen=True)
class Destinations:
    """The rules for one configuration: allowed and denied hosts, the service's own endpoints."""

    allowed: HostList
    denied: HostList
    own: tuple[Endpoint, ...]

    @classmethod
    def of(cls, allowed: tuple[str, ...], denied: tuple[str, ...], own: tuple[str, ...]) -> Destinations:
        return cls(HostList.of(allowed), HostList.of(denied), tuple(Endpoint.parse(e) for e in own))

    def check_name(self, host: str, port: int) -> None:
        """What can be told from a URL before any connection: a denied name, the service's own host
        and port by name, an address written out that is not allowed. Raises RefusedDestination."""
        name = host.strip("[]").lower().rstrip(".")
        if self.denied.has_name(name) or any(e.host == name and e.port == port for e in self.own):
            raise RefusedDestination(name)
        literal = address_of(name)
        if literal is not None and not self.allows_address(literal, name):
            raise RefusedDestination(name)

    def allows_address(self, address: IPAddress, host: str) -> bool:
        """The rule for one resolved address of ``host``: denied always wins, then allowed, then public."""
        # An IPv4-mapped address is the same machine as its IPv4 address: the lists see it as that,
        # the default rule refuses it whatever it maps.
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        seen = mapped or address
        if self.denied.has_address(seen):
            return False
        if self.allowed.has_name(host) or self.allowed.has_address(seen):
            return True
        return is_public(address)

    def check(self, host: str, port: int) -> list[IPAddress]:
        """The addresses a connection to ``host`` may use, resolved once: every one must be allowed
        (one that is not refuses the whole name), and none may be the service's own."""
        self.check_name(host, port)
        name = host.strip("[]").lower().rstrip(".")
        addresses = resolve(name, port)
        for address in addresses:
            if not self.allows_address(address, name) or any(e.reached_by(address, port) for e in self.own):
                raise RefusedDestination(name)
        return addresses
