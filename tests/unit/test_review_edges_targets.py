"""Second outside review: webhook URLs an attacker might use to reach the service's own network.
All repelled today (kept as coverage)."""

from __future__ import annotations

import pytest

from service.targets import internal_target

INTERNAL = [
    "http://0x7f.1/", "http://0x7f.0.0.1/", "http://017700000001/", "http://127.1./", "HTTP://LOCALHOST./",
    "http://[::ffff:7f00:1]/", "http://[::127.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:7f00:1::]/",
    "http://[fe80::1%25eth0]/", "http://[::]/", "http://0/", "http://169.254.169.254./latest",
    "http://%31%32%37.0.0.1/", "http://127\u30020\u30020\u30021/", "http://\uff11\uff12\uff17.0.0.1/",
    "http://metadata.google.internal./", "http://foo.localhost/", "http://shop:80/",
    "http://example.com:0/", "http://example.com:65536/", "http://example.com:/", "http://user@example.com/",
    "http://example.com\\@127.0.0.1/", "gopher://example.com/", "http://example.com:8080:80/", "http://[::1]x/",
    "http://100.64.0.1/", "http://192.0.0.1/", "http://198.18.0.1/", "http://240.0.0.1/", "http://255.255.255.255/",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_or_ambiguous_webhook_urls_are_refused(url: str) -> None:
    assert internal_target(url), url


@pytest.mark.parametrize("url", ["https://shop.example.com/hooks", "HTTPS://Shop.Example.com./hooks?a=@127.0.0.1"])
def test_public_names_pass_the_literal_check(url: str) -> None:
    assert not internal_target(url)
