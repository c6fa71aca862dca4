"""Outbound webhooks may not be pointed at the service's own network."""

from __future__ import annotations

import pytest

from service.targets import internal_address, internal_target


@pytest.mark.parametrize(
    ("url", "internal"),
    [
        ("http://127.0.0.1:8080/hook", True),
        ("http://localhost/hook", True),
        ("http://api.localhost/hook", True),
        ("http://10.1.2.3/hook", True),
        ("http://192.168.0.10/hook", True),
        ("http://169.254.169.254/latest/meta-data", True),  # cloud metadata
        ("http://[::1]/hook", True),
        ("http://[fd00::1]/hook", True),
        ("http://0.0.0.0/hook", True),
        ("https://shop.example.com/hooks/returns", False),
        ("https://93.184.216.34/hook", False),
        ("https://[2606:4700:4700::1111]/hook", False),
    ],
)
def test_internal_targets(url: str, internal: bool) -> None:
    assert internal_target(url) is internal


def test_a_name_is_not_an_address() -> None:
    assert internal_address("shop.example.com") is False
    assert internal_address("127.0.0.53") is True
