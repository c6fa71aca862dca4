"""Dependencies point inward (DESIGN.md §2): a small AST check of every import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSITION_ROOTS = {"service/bootstrap.py", "service/cli.py"}
ALLOWED = {
    "domain": {"domain", "msgspec"},
    "policies": {"domain", "policies", "msgspec"},
    "service": {"domain", "policies", "service", "msgspec", "litestar", "structlog", "uvicorn", "multipart", "prometheus_client"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


FILES = [
    (layer, path)
    for layer in ALLOWED
    for path in sorted((ROOT / layer).rglob("*.py"))
    if str(path.relative_to(ROOT)) not in COMPOSITION_ROOTS
]


@pytest.mark.parametrize(("layer", "path"), FILES, ids=lambda v: str(v).rsplit("/main/", 1)[-1])
def test_layer_imports_only_what_it_may(layer: str, path: Path) -> None:
    outside = {name for name in _imports(path) if name not in sys.stdlib_module_names} - ALLOWED[layer]
    assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncpg\nfrom adapters.postgres import database\n")
    assert _imports(bad) == {"asyncpg", "adapters"}


def test_only_the_composition_root_imports_adapters() -> None:
    importers = {str(path.relative_to(ROOT)) for layer, path in FILES if "adapters" in _imports(path)}
    assert importers == set()
    assert all("adapters" in _imports(ROOT / root) or root == "service/cli.py" for root in COMPOSITION_ROOTS)
