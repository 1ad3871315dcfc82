"""Every dependency the package installs is pinned below and above (a new major cannot arrive unseen)."""

from __future__ import annotations

import re
import tomllib

from tests.support.paths import ROOT

PYPROJECT = ROOT / "pyproject.toml"
#: Pinned on purpose without a ceiling, with the reason.
UNCAPPED = {
    "tzdata": "time-zone rules: a newer release is always the right one, a cap would only freeze stale rules",
}
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*(;.*)?$")


def _bounds(spec: str) -> tuple[bool, bool]:
    lower = upper = False
    for part in filter(None, (p.strip() for p in spec.split(","))):
        op = re.match(r"(===|==|~=|>=|<=|!=|>|<)", part)
        assert op, f"unreadable specifier {part!r}"
        op = op.group(1)
        lower |= op in (">=", ">", "~=", "==", "===")
        upper |= op in ("<", "<=", "~=") or (op in ("==", "===") and "*" not in part)
    return lower, upper


def _requirements() -> list[tuple[str, str]]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    reqs = [("dependencies", r) for r in project.get("dependencies", [])]
    for extra, items in project.get("optional-dependencies", {}).items():
        reqs += [(f"[{extra}]", r) for r in items]
    return reqs


def test_every_dependency_has_a_lower_and_an_upper_bound():
    reqs = _requirements()
    assert len(reqs) >= 10
    problems = []
    for where, req in reqs:
        m = _REQ.match(req)
        assert m, f"unreadable requirement {req!r}"
        name, spec = m.group(1).lower(), m.group(3)
        lower, upper = _bounds(spec)
        if not lower:
            problems.append(f"{where}: {req!r} has no lower bound")
        if not upper and name not in UNCAPPED:
            problems.append(f"{where}: {req!r} has no upper bound")
    assert not problems, "\n".join(problems)


def test_the_bounds_parser_itself():
    assert _bounds(">=1.2,<2") == (True, True)
    assert _bounds(">=1.2") == (True, False)
    assert _bounds("~=1.4") == (True, True)
    assert _bounds("==2.0.1") == (True, True)
    assert _bounds("<3") == (False, True)
    assert _bounds("") == (False, False)
