"""Where outbound webhooks may go. A merchant's admin names the URL, so without a check the
service could be made to call its own network (a database port, a cloud metadata address):
loopback, private, link-local and reserved addresses are refused unless the operator allows
them (``RETURNS_WEBHOOK_ALLOW_PRIVATE=1``, for a storefront on the same private network)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def internal_address(address: str) -> bool:
    """True for an IP address no outside receiver has."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return not ip.is_global or ip.is_multicast


def internal_target(url: str) -> bool:
    """True when the URL names, literally, a host on the service's own side."""
    host = (urlsplit(url).hostname or "").lower()
    return host in ("", "localhost") or host.endswith(".localhost") or internal_address(host)
