"""Outbound webhooks may not be pointed at the service's own network: URLs are read the way HTTP
clients read them (WHATWG host parsing), so no spelling of an internal address gets through."""

from __future__ import annotations

import pytest

from service.targets import (
    TargetRefused,
    checked_addresses,
    internal_address,
    internal_name,
    internal_target,
    parse_target,
)
from tests.fakes.resolver import ScriptedResolver

# (url as the admin wrote it, the canonical URL the service calls, internal?)
NORMALISED = [
    # IPv4 in every form a client accepts
    ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook", True),
    ("http://2130706433/", "http://127.0.0.1/", True),
    ("http://0x7f000001/", "http://127.0.0.1/", True),
    ("http://0X7F.1/", "http://127.0.0.1/", True),
    ("http://0177.0.0.1/", "http://127.0.0.1/", True),
    ("http://0177.0000.0.01/", "http://127.0.0.1/", True),
    ("http://127.1/", "http://127.0.0.1/", True),
    ("http://127.0.1/", "http://127.0.0.1/", True),
    ("http://0/", "http://0.0.0.0/", True),
    ("http://0x/", "http://0.0.0.0/", True),
    ("http://0.0.0.0/hook", "http://0.0.0.0/hook", True),
    ("http://127.0.0.1./", "http://127.0.0.1/", True),
    ("http://①②⑦.0.0.1/", "http://127.0.0.1/", True),  # enclosed digits, NFKC
    ("http://１２７．０．０．１/", "http://127.0.0.1/", True),  # fullwidth digits and full stops
    ("http://127。0。0。1/", "http://127.0.0.1/", True),  # ideographic full stops
    ("http://%31%32%37.0.0.1/", "http://127.0.0.1/", True),  # percent-encoded host
    ("http://%E2%91%A0%E2%91%A1%E2%91%A6.0.0.1/", "http://127.0.0.1/", True),
    ("http://10.1.2.3/hook", "http://10.1.2.3/hook", True),
    ("http://167838211/", "http://10.1.2.3/", True),
    ("http://172.16.0.1/", "http://172.16.0.1/", True),
    ("http://192.168.0.10/hook", "http://192.168.0.10/hook", True),
    ("http://0xc0a8000a/", "http://192.168.0.10/", True),
    ("http://169.254.169.254/latest/meta-data", "http://169.254.169.254/latest/meta-data", True),
    ("http://0xa9fea9fe/", "http://169.254.169.254/", True),
    ("http://100.64.0.1/", "http://100.64.0.1/", True),  # CGNAT
    ("http://100.127.255.254/", "http://100.127.255.254/", True),
    ("http://224.0.0.1/", "http://224.0.0.1/", True),  # multicast
    ("http://240.0.0.1/", "http://240.0.0.1/", True),  # reserved
    ("http://255.255.255.255/", "http://255.255.255.255/", True),
    ("http://198.18.0.1/", "http://198.18.0.1/", True),  # benchmarking
    ("http://192.0.2.1/", "http://192.0.2.1/", True),  # documentation
    # IPv6
    ("http://[::1]/hook", "http://[::1]/hook", True),
    ("http://[0:0:0:0:0:0:0:1]:8080/", "http://[::1]:8080/", True),
    ("http://[::]/", "http://[::]/", True),
    ("http://[fd00::1]/hook", "http://[fd00::1]/hook", True),
    ("http://[fe80::1]/", "http://[fe80::1]/", True),
    ("http://[fec0::1]/", "http://[fec0::1]/", True),  # site-local
    ("http://[ff02::1]/", "http://[ff02::1]/", True),  # multicast
    ("http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", True),  # IPv4-mapped loopback
    ("http://[::ffff:7f00:1]/", "http://[::ffff:7f00:1]/", True),
    ("http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/", True),
    ("http://[::ffff:10.0.0.1]/", "http://[::ffff:a00:1]/", True),
    ("http://[::127.0.0.1]/", "http://[::7f00:1]/", True),  # IPv4-compatible
    ("http://[64:ff9b::7f00:1]/", "http://[64:ff9b::7f00:1]/", True),  # NAT64 of loopback
    ("http://[2002:7f00:1::]/", "http://[2002:7f00:1::]/", True),  # 6to4 of loopback
    ("http://[2001:db8::1]/", "http://[2001:db8::1]/", True),  # documentation
    # names of the machine, its network, the metadata services
    ("http://localhost/hook", "http://localhost/hook", True),
    ("http://LOCALHOST./hook", "http://localhost./hook", True),
    ("http://api.localhost/hook", "http://api.localhost/hook", True),
    ("http://localhost.localdomain/", "http://localhost.localdomain/", True),
    ("http://metadata.google.internal/computeMetadata/v1/", "http://metadata.google.internal/computeMetadata/v1/", True),
    ("http://metadata.goog/", "http://metadata.goog/", True),
    ("http://instance-data/", "http://instance-data/", True),  # single label: the search list's
    ("http://printer.local/", "http://printer.local/", True),
    ("http://router.home.arpa/", "http://router.home.arpa/", True),
    ("http://ｌｏｃａｌｈｏｓｔ/", "http://localhost/", True),  # fullwidth letters
    # public: allowed
    ("https://shop.example.com/hooks/returns", "https://shop.example.com/hooks/returns", False),
    ("HTTPS://Shop.Example.COM:443/hooks", "https://shop.example.com/hooks", False),
    ("https://shop.example.com:8443/hooks?x=1", "https://shop.example.com:8443/hooks?x=1", False),
    ("https://shop.example.com", "https://shop.example.com/", False),
    ("https://bücher.example/hook", "https://xn--bcher-kva.example/hook", False),
    ("https://127.0.0.1.example.com/", "https://127.0.0.1.example.com/", False),  # a name, not a number
    ("https://93.184.216.34/hook", "https://93.184.216.34/hook", False),
    ("http://1.1.1.1:8080/", "http://1.1.1.1:8080/", False),
    ("http://16843009/", "http://1.1.1.1/", False),
    ("http://100.128.0.1/", "http://100.128.0.1/", False),  # just past CGNAT
    ("https://[2606:4700:4700::1111]/hook", "https://[2606:4700:4700::1111]/hook", False),
    ("https://[::ffff:93.184.216.34]/hook", "https://[::ffff:5db8:d822]/hook", False),  # mapped public
]


@pytest.mark.parametrize(("url", "canonical", "internal"), NORMALISED)
def test_hosts_are_read_as_clients_read_them(url: str, canonical: str, internal: bool) -> None:
    assert parse_target(url).url == canonical
    assert internal_target(url) is internal


REFUSED = [
    "http://127.0.0.1%2f@example.com/",  # userinfo: clients disagree on where the host starts
    "http://user:pass@shop.example.com/",
    "http://shop.example.com@127.0.0.1/",
    "http://@shop.example.com/",
    "http://127.0.0.1%2f.example.com/",  # a slash in the host once decoded
    "http://shop.example.com%00.evil/",
    "http://127.0.0.1\\@example.com/",  # backslash: a path to some clients, part of the host to others
    "http://shop.example.com/\\x",
    "http://shop.example.com\t/",
    "http:///127.0.0.1/",
    "http:/127.0.0.1/",
    "ftp://shop.example.com/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/",
    "//shop.example.com/",
    "http://1.2.3.4.5/",  # ends in a number, not an IPv4 address
    "http://256.0.0.1/",
    "http://4294967296/",
    "http://0x100000000/",
    "http://127.0.0.09/",  # 09 is not octal
    "http://127..0.1/",
    "http://shop..example.com/",
    "http://[fe80::1%25eth0]/",  # zone id
    "http://[::1/",
    "http://[not-v6]/",
    "http://::1/",
    "http://shop.example.com:0/",
    "http://shop.example.com:65536/",
    "http://shop.example.com:/",
    "http://shop.example.com:8o/",
    "http://straße.example/",  # IDNA deviation: clients resolve different names
    "http://a\u200db.example/",
    "http://%ff.example/",  # not UTF-8
    "http://exa mple.com/",
    "http://<script>.example/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_urls_clients_would_read_differently_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        parse_target(url)
    assert internal_target(url) is True


def test_addresses_and_names() -> None:
    assert internal_address("shop.example.com") is False  # a name is not an address
    assert internal_address("127.0.0.53") is True
    assert internal_address("[::1]") is True
    assert internal_address("8.8.8.8") is False
    assert internal_name("shop.example.com") is False
    assert internal_name("metadata.google.internal.") is True


async def test_a_name_is_checked_by_every_address_it_resolves_to() -> None:
    resolver = ScriptedResolver(
        {
            "shop.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
            "sneaky.example.com": ["93.184.216.34", "10.0.0.7"],
            "loopy.example.com": ["::ffff:127.0.0.1"],
        }
    )
    shop = parse_target("https://shop.example.com/hook")
    assert await checked_addresses(shop, resolver, allow_internal=False) == resolver.answers["shop.example.com"]
    for url in ("https://sneaky.example.com/", "https://loopy.example.com/", "https://gone.example.com/"):
        with pytest.raises(TargetRefused):
            await checked_addresses(parse_target(url), resolver, allow_internal=False)
    assert await checked_addresses(parse_target("https://loopy.example.com/"), resolver, allow_internal=True) == [
        "::ffff:127.0.0.1"
    ]


async def test_literals_and_internal_names_are_not_looked_up() -> None:
    resolver = ScriptedResolver({"localhost": ["127.0.0.1"]})
    assert await checked_addresses(parse_target("http://0x7f000001:81/"), resolver, allow_internal=True) == ["127.0.0.1"]
    with pytest.raises(TargetRefused, match="own network"):
        await checked_addresses(parse_target("http://localhost/"), resolver, allow_internal=False)
    assert resolver.asked == []
    assert await checked_addresses(parse_target("http://localhost/"), resolver, allow_internal=True) == ["127.0.0.1"]


# internal or ambiguous spellings an attacker might try (outside review round 2)
INTERNAL = [
    "http://0x7f.1/",
    "http://0x7f.0.0.1/",
    "http://017700000001/",
    "http://127.1./",
    "HTTP://LOCALHOST./",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1%25eth0]/",
    "http://[::]/",
    "http://0/",
    "http://169.254.169.254./latest",
    "http://%31%32%37.0.0.1/",
    "http://127\u30020\u30020\u30021/",
    "http://\uff11\uff12\uff17.0.0.1/",
    "http://metadata.google.internal./",
    "http://foo.localhost/",
    "http://shop:80/",
    "http://example.com:0/",
    "http://example.com:65536/",
    "http://example.com:/",
    "http://user@example.com/",
    "http://example.com\\@127.0.0.1/",
    "gopher://example.com/",
    "http://example.com:8080:80/",
    "http://[::1]x/",
    "http://100.64.0.1/",
    "http://192.0.0.1/",
    "http://198.18.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_or_ambiguous_webhook_urls_are_refused(url: str) -> None:
    """Origin: outside review round 2, an attack the service withstood."""
    assert internal_target(url), url


@pytest.mark.parametrize("url", ["https://shop.example.com/hooks", "HTTPS://Shop.Example.com./hooks?a=@127.0.0.1"])
def test_public_names_pass_the_literal_check(url: str) -> None:
    """Origin: outside review round 2, an attack the service withstood."""
    assert not internal_target(url)
