"""Where outbound webhooks may go. A merchant's admin names the URL, so without a check the
service could be made to call its own network (a database port, a cloud metadata address).

A URL is read the way HTTP clients read it (the WHATWG URL standard, as browsers and curl do):
the host is percent-decoded, mapped (NFKC, lower case, the ideographic full stops) and
IDNA-encoded, and a host that ends in a number is an IPv4 address in any of its forms
(``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``, ``0``). What clients would read
differently is refused rather than guessed at: userinfo (``user@``), backslashes, control
characters, zone ids, the IDNA deviation characters. The URL is then kept in one canonical form
(``parse_target(url).url``), so the client that delivers reads exactly the host that was checked.

Loopback, private, link-local, CGNAT, unspecified, multicast and reserved addresses (and IPv6
addresses that embed one: IPv4-mapped, NAT64, 6to4, Teredo), single-label names and the names
of the local machine and the clouds' metadata services are internal: refused unless the
operator allows them (``RETURNS_WEBHOOK_ALLOW_PRIVATE=1``, for a storefront on the same private
network). A name is resolved through the ``Resolver`` port and every answer checked; the
delivery connects to the addresses checked, never to a second lookup's (no DNS rebinding)."""

from __future__ import annotations

import ipaddress
import string
import unicodedata
from urllib.parse import unquote_to_bytes

import msgspec

from service.ports import ResolveError, Resolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Names of the machine itself, of its network, and of the clouds' metadata services.
INTERNAL_NAMES = {"localhost", "localhost.localdomain", "metadata.goog", "metadata.google.internal"}
INTERNAL_SUFFIXES = (".localhost", ".localdomain", ".local", ".internal", ".home.arpa")
# Characters UTS #46 maps one way and IDNA 2003 (or an older client) another.
DEVIATIONS = set("\u00df\u03c2\u200c\u200d")
FULL_STOPS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
NAME_CHARACTERS = set(string.ascii_lowercase + string.digits + "-_.")


class TargetRefused(ValueError):
    """The URL is not one the service calls; the message says why."""


class Target(msgspec.Struct, frozen=True):
    scheme: str  # http | https
    host: str  # an ASCII name, or an IP address (without brackets)
    port: int
    url: str  # the canonical URL, the one to call
    address: IPAddress | None = None  # when the host is an IP address


def parse_target(url: str) -> Target:
    """The URL read as an HTTP client reads it, in canonical form; ``TargetRefused`` otherwise."""
    if any(ch <= " " or ch in {"\x7f", "\\"} for ch in url):
        raise TargetRefused("control characters, spaces and backslashes are not allowed")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise TargetRefused("only http:// and https:// URLs are allowed")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise TargetRefused("user names and passwords in the URL are not allowed")
    if authority.startswith("["):
        literal, bracket, port_text = authority[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise TargetRefused("the IPv6 address is not closed by ]")
        address: IPAddress | None = _ipv6(literal)
        host, colon, port_text = str(address), port_text[:1], port_text[1:]
    else:
        host_text, colon, port_text = authority.partition(":")
        if colon and ":" in port_text:
            raise TargetRefused("an IPv6 address goes in brackets")
        host, address = _host(host_text)
    port = _port(port_text) if colon else DEFAULT_PORTS[scheme]
    shown = f"[{host}]" if isinstance(address, ipaddress.IPv6Address) else host
    netloc = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    return Target(scheme=scheme, host=host, port=port, url=f"{scheme}://{netloc}{tail or '/'}", address=address)


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise TargetRefused("the port is a number from 1 to 65535")
    return int(text)


def _ipv6(literal: str) -> ipaddress.IPv6Address:
    if "%" in literal:
        raise TargetRefused("IPv6 zone ids are not allowed")
    try:
        return ipaddress.IPv6Address(literal)
    except ValueError:
        raise TargetRefused("the IPv6 address is not valid") from None


def _host(text: str) -> tuple[str, IPAddress | None]:
    """A host as WHATWG's host parser reads it: percent-decoded, mapped, IDNA-encoded, and an
    IPv4 address when its last label is a number."""
    try:
        decoded = unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise TargetRefused("the host is not UTF-8") from None
    if DEVIATIONS & set(decoded):
        raise TargetRefused("the host has characters HTTP clients read differently (ß, ς, zero-width joiners)")
    mapped = unicodedata.normalize("NFKC", decoded).translate(FULL_STOPS).lower()
    if not mapped.isascii():
        try:
            mapped = mapped.encode("idna").decode("ascii")
        except UnicodeError:
            raise TargetRefused("the host is not a valid international domain name") from None
    if not mapped:
        raise TargetRefused("the URL has no host")
    if not set(mapped) <= NAME_CHARACTERS or len(mapped) > 253:
        raise TargetRefused("the host has characters a host name cannot have")
    labels = mapped.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    if _numeric(labels[-1]):
        address = _ipv4(labels)
        return str(address), address
    if "" in labels:
        raise TargetRefused("the host has an empty label")
    return mapped, None


def _numeric(label: str) -> bool:
    """WHATWG's "ends in a number": all digits, or 0x and hex digits."""
    if label[:2] in ("0x", "0X"):
        return all(c in string.hexdigits for c in label[2:])
    return label != "" and label.isdigit()


def _ipv4(parts: list[str]) -> ipaddress.IPv4Address:
    """WHATWG's IPv4 parser: up to four parts, each decimal, octal (0…) or hex (0x…), the last
    filling the bytes that are left (``127.1`` is 127.0.0.1, ``2130706433`` too)."""
    if len(parts) > 4:
        raise TargetRefused("the host ends in a number but is not an IPv4 address")
    numbers = [_ipv4_number(part) for part in parts]
    last_limit = 256 ** (5 - len(numbers))
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= last_limit:
        raise TargetRefused("the host ends in a number but is not an IPv4 address")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int:
    if part == "":
        raise TargetRefused("the host ends in a number but is not an IPv4 address")
    digits, radix = part, 10
    if part[:2] in ("0x", "0X"):
        digits, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        digits, radix = part[1:], 8
    if digits == "":
        return 0
    try:
        return int(digits, radix)
    except ValueError:
        raise TargetRefused("the host ends in a number but is not an IPv4 address") from None


def internal_address(address: str | IPAddress) -> bool:
    """True for an IP address no outside receiver has (a name is not an address: False)."""
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64 else None)
        if embedded is not None:
            return internal_address(embedded)
        teredo = address.teredo or ()
        if any(internal_address(inner) for inner in (address.sixtofour, *teredo) if inner is not None):
            return True
        if address.is_site_local:
            return True
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in CGNAT)
    )


def internal_name(host: str) -> bool:
    """True for a name that means the machine itself or its own network: single-label names
    (completed by the resolver's search list), ``localhost`` and ``*.localhost``,
    ``localhost.localdomain``, ``.local``, ``.internal`` (``metadata.google.internal``), …"""
    name = host.rstrip(".")
    return "." not in name or name in INTERNAL_NAMES or name.endswith(INTERNAL_SUFFIXES)


def internal_target(url: str) -> bool:
    """True when the URL names, literally, a host on the service's own side (or is no URL we call)."""
    try:
        target = parse_target(url)
    except TargetRefused:
        return True
    return internal_address(target.address) if target.address else internal_name(target.host)


async def checked_addresses(target: Target, resolver: Resolver, *, allow_internal: bool) -> list[str]:
    """The addresses to connect to for ``target``, each checked; ``TargetRefused`` when the host
    is internal, resolves to an internal address, or does not resolve."""
    if target.address is not None:
        addresses = [str(target.address)]
    else:
        if not allow_internal and internal_name(target.host):
            raise TargetRefused(f"{target.host} is a name of the service's own network")
        try:
            addresses = await resolver.resolve(target.host, target.port)
        except ResolveError as exc:
            raise TargetRefused(f"{target.host} does not resolve: {exc}") from None
        if not addresses:
            raise TargetRefused(f"{target.host} does not resolve")
    if not allow_internal:
        internal = [address for address in addresses if internal_address(address)]
        if internal:
            raise TargetRefused(f"{target.host} is or resolves to an internal address ({internal[0]})")
    return addresses
