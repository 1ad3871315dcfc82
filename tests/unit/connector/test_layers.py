"""Structure rules of issue 12 that a grep can check: engines independent, SQL only in connector/ledger/."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.paths import ROOT



def _imports(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return set(re.findall(r"^\s*(?:from|import)\s+([\w.]+)", text, flags=re.M))


def test_the_outbound_and_inbound_engines_do_not_import_each_other():
    assert not any(m.startswith("connector.sync.inbound") for m in _imports(ROOT / "connector/sync/outbound.py"))
    assert not any(m.startswith("connector.sync.outbound") for m in _imports(ROOT / "connector/sync/inbound.py"))


def test_no_sql_outside_the_ledger_package():
    offenders = []
    for folder in ("connector", "receiver", "adapters"):
        for path in (ROOT / folder).rglob("*.py"):
            if (ROOT / "connector/ledger") in path.parents:
                continue
            mods = _imports(path)
            if any(m == "sqlalchemy" or m.startswith("sqlalchemy.") for m in mods) or "connector.ledger.schema" in mods:
                offenders.append(str(path.relative_to(ROOT)))
            elif re.search(r"from connector\.ledger import [^\n]*\bschema\b", path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
