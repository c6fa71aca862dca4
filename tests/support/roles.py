"""Which roles may call an operation of the API (admin may call everything)."""

from __future__ import annotations


def roles_allowed(method: str, path: str) -> set[str]:
    if path.startswith("/finance/"):
        return {"finance", "admin"}
    if path.startswith(("/admin/v1/webhook", "/admin/v1/gateway-account")) or (path == "/admin/v1/policy" and method == "PUT"):
        return {"admin"}
    if path.startswith("/admin/"):
        return {"agent", "admin"}
    if "/photos/{photo_id}" in path:
        return {"storefront", "agent", "admin"}
    return {"storefront", "admin"}
