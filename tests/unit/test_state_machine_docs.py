"""The diagrams in docs/state-machines.md are drawn from the transition tables: the committed
file must be what ``python docs/state_machines.py`` writes today."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("state_machine_docs", ROOT / "docs" / "state_machines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_diagrams_are_the_tables() -> None:
    committed = (ROOT / "docs" / "state-machines.md").read_text(encoding="utf-8")
    assert committed == _generator().render(), "docs/state-machines.md is out of date: run python docs/state_machines.py"


def test_every_transition_is_drawn() -> None:
    from domain.cases import TABLES
    from domain.refunds import REFUND_TABLE

    text = _generator().render()
    for table in [*TABLES.values(), REFUND_TABLE]:
        for (source, action), target in table.items():
            assert f"    {source} --> {target}: {action}\n" in text
    assert "    succeeded --> failed: fail\n" in text, "a succeeded refund may still fail"
