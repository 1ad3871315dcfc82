"""`pip install .` (not editable) ships everything the connector needs at run time."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import ROOT



@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
                       capture_output=True, text=True, timeout=300, cwd=build)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("mall_connector-*.whl")
    return whl


def test_wheel_contains_mappings_migrations_and_all_packages(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ["mappings/generic_csv.toml", "mappings/fastcentrik.toml",
                     "connector/ledger/migrations/env.py", "connector/ledger/migrations/script.py.mako",
                     "connector/ledger/migrations/versions/0001_initial_ledger_schema.py",
                     "adapters/generic_csv/adapter.py", "adapters/fastcentrik/adapter.py", "receiver/app.py",
                     "connector/sandbox/server.py",
                     "connector/console/templates/base.html", "connector/console/static/console.css",
                     "connector/console/static/console.js",
                     "connector/ledger/migrations/versions/0006_console_audit_log.py"]:
        assert required in names, required
    assert not any(n.startswith("tests/") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mall-connector = connector.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_wheel_finds_its_mappings_and_migrates_a_ledger(wheel, tmp_path):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                        str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    code = (
        "import connector, mappings; from connector.mapping import load_mapping; "
        "from connector.ledger import open_ledger; "
        f"assert connector.__file__.startswith({str(target)!r}), connector.__file__; "
        "print(len(load_mapping(mappings.default_mapping_path('fastcentrik')).rows())); "
        f"open_ledger('sqlite:///{tmp_path}/l.db').ping()"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) > 5
