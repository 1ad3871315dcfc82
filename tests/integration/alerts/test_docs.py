"""docs/alerts.md shows the same table of rules as the code (connector/alert_rules.py RULES)."""

from __future__ import annotations


from connector.alert_rules import RULES
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "alerts.md"


def doc_rows() -> list[list[str]]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index("| key | state | raised when | resolved when | urgent |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_the_doc_table_is_the_code_table():
    expected = [[f"`{r.key}{'ID' if r.key.endswith(':') else ''}`", r.state, r.raised, r.resolved, r.urgent]
                for r in RULES]
    assert doc_rows() == expected


def test_the_states_the_issue_names_each_have_a_rule():
    states = " / ".join(r.state for r in RULES)
    for needed in ("unmapped shop status", "rows rejected from the feed", "feed is unreadable", "feed is unusable",
                   "change failed", "quarantined", "401 or 403", "24-hour limit", "hand-off cannot be written"):
        assert needed in states
