"""Issue 16 item 9: pyproject.toml's bounds admit no version listed in docs/advisories.toml.

The finding: ``waitress>=3.0`` admitted 3.0.0 (CVE-2024-49768, CVE-2024-49769), and httpx's range let
h11 older than 0.16 in (CVE-2025-43859). The check reads every requirement of pyproject.toml (the
dependencies, the extras and the build requirements) and, for each advisory of a package it names,
fails when a listed vulnerable version is admitted or when the floor itself lies in the affected range.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.support.paths import ROOT

PYPROJECT = ROOT / "pyproject.toml"
ADVISORIES = ROOT / "docs" / "advisories.toml"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: dict) -> dict[str, list[tuple[str, SpecifierSet]]]:
    """package -> [(where, specifier)] for every requirement that names it."""
    out: dict[str, list[tuple[str, SpecifierSet]]] = {}
    project = pyproject.get("project", {})
    items = [("dependencies", r) for r in project.get("dependencies", [])]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        items += [(f"[{extra}]", r) for r in reqs]
    items += [("build-system", r) for r in pyproject.get("build-system", {}).get("requires", [])]
    for where, text in items:
        req = Requirement(text)
        out.setdefault(canonical(req.name), []).append((where, req.specifier))
    return out


def floors(spec: SpecifierSet) -> list[Version]:
    return [Version(s.version) for s in spec if s.operator in (">=", "==", "~=", "===")]


def admitted_vulnerabilities(pyproject: dict, advisories: list[dict]) -> list[str]:
    reqs = requirements(pyproject)
    problems = []
    for adv in advisories:
        name = canonical(adv["package"])
        affected = SpecifierSet(adv["affected"])
        for where, spec in reqs.get(name, []):
            for v in adv["versions"]:
                if spec.contains(v, prereleases=True):
                    problems.append(f"{where}: {name}{spec} admits {v} ({adv['id']}: {adv['note']})")
            for floor in floors(spec):
                if affected.contains(floor, prereleases=True):
                    problems.append(f"{where}: {name}{spec} has its floor {floor} inside {adv['affected']} "
                                    f"({adv['id']})")
    return problems


def load_advisories() -> list[dict]:
    return tomllib.loads(ADVISORIES.read_text(encoding="utf-8"))["advisory"]


def test_pyproject_admits_no_listed_vulnerable_version():
    problems = admitted_vulnerabilities(tomllib.loads(PYPROJECT.read_text(encoding="utf-8")), load_advisories())
    assert not problems, "\n".join(problems)


def test_the_table_is_consistent_and_names_constrained_packages():
    advisories = load_advisories()
    assert len(advisories) >= 10
    reqs = requirements(tomllib.loads(PYPROJECT.read_text(encoding="utf-8")))
    for adv in advisories:
        assert set(adv) == {"id", "package", "affected", "versions", "note"}, adv["id"]
        affected = SpecifierSet(adv["affected"])
        assert adv["versions"], adv["id"]
        for v in adv["versions"]:
            assert affected.contains(v, prereleases=True), f"{adv['id']}: {v} is not in {adv['affected']}"
        assert canonical(adv["package"]) in reqs, f"{adv['id']}: pyproject.toml does not constrain {adv['package']}"


def test_the_issue_floors_are_direct_constraints():
    reqs = requirements(tomllib.loads(PYPROJECT.read_text(encoding="utf-8")))
    expected = {"waitress": "3.0.1", "h11": "0.16", "httpcore": "1.0.9", "werkzeug": "3.1", "setuptools": "70"}
    for name, at_least in expected.items():
        assert name in reqs, f"{name} is not a direct constraint"
        for _, spec in reqs[name]:
            assert floors(spec) and min(floors(spec)) >= Version(at_least), f"{name}{spec}"


def test_the_check_catches_the_findings():
    """The ranges the review found, fed to the same check, are reported."""
    old = {"project": {"dependencies": ["waitress>=3.0,<4", "httpx>=0.27,<0.29", "h11>=0.14,<1"]},
           "build-system": {"requires": ["setuptools>=68"]}}
    problems = "\n".join(admitted_vulnerabilities(old, load_advisories()))
    for needle in ("CVE-2024-49768", "CVE-2024-49769", "CVE-2025-43859", "CVE-2024-6345", "CVE-2025-47273"):
        assert needle in problems
    assert "admits 3.0.0" in problems and "admits 0.15.0" in problems
