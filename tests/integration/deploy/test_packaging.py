"""`pip install .` prints no deprecation warning, and the metadata is complete (PEP 639 license, URLs,
classifiers, README as the long description); the example config ships inside the package for `init`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(ROOT)],
                       capture_output=True, text=True, timeout=600, cwd=out)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("mall_connector-*.whl")
    return whl, r.stdout + r.stderr


def test_build_prints_no_deprecation_warning(built):
    _, output = built
    lowered = output.lower()
    for word in ("deprecat", "buildbackendwarning", "setuptoolswarning", "!!"):
        assert word not in lowered, output


def test_editable_install_as_make_does_prints_no_warning(tmp_path):
    """`make install` / `make demo` install editable; that must be as quiet as `pip install .`."""
    import re

    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    line = next(ln for ln in make.splitlines() if "pip install" in ln and "-e" in ln)
    settings = re.findall(r"--config-settings\s+(\S+)", line)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-e", str(ROOT)]
    for s in settings:
        cmd += ["--config-settings", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = (r.stdout + r.stderr).lower()
    for word in ("deprecat", "buildbackendwarning", "!!"):
        assert word not in out, r.stdout + r.stderr


def test_metadata_is_complete(built):
    whl, _ = built
    with zipfile.ZipFile(whl) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode("utf-8"))
        example = z.read("connector/data/config.example.toml")
    assert meta["License-Expression"] == "LicenseRef-Proprietary"
    assert meta.get_all("Project-URL") and len(meta.get_all("Classifier")) >= 5
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "# mall-connector" in meta.get_payload()  # the README is the long description
    assert example == (ROOT / "config.example.toml").read_bytes()


def test_build_requirement_supports_pep639_and_has_an_upper_bound():
    req = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
    (setuptools,) = [r for r in req if r.startswith("setuptools")]
    assert ">=78.1.1" in setuptools and ",<" in setuptools
