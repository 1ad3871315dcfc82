"""A Python with this repo's code and its venv's packages that *any* user can run.

The service test runs the connector as the unit's unprivileged user. The repo's venv usually points
at an interpreter under a private home (e.g. /root/.pyenv, mode 0700), which that user cannot
execute, so we build a small venv in a world-readable temp folder on an interpreter every user can
reach (the same X.Y version, so compiled wheels fit) and point it at the packages.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

PACKAGES = ("connector", "adapters", "receiver", "mappings")


def reachable_by_others(path: Path) -> bool:
    """Every folder above ``path`` can be traversed, and ``path`` read, by a user who is neither owner nor group."""
    path = path.resolve()
    for parent in list(path.parents):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    return bool(mode & stat.S_IROTH) and (not stat.S_ISDIR(mode) or bool(mode & stat.S_IXOTH))


def _base_python() -> Path | None:
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for cand in (getattr(sys, "_base_executable", sys.executable), shutil.which(f"python{want}"), "/usr/bin/python3"):
        if not cand:
            continue
        real = Path(os.path.realpath(cand))
        if not real.exists() or not reachable_by_others(real):
            continue
        r = subprocess.run([str(real), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode == 0 and r.stdout.strip() == want:
            return real
    return None


def build(where: Path) -> Path:
    """Create the venv under ``where`` (made 0755) and return its bin folder (python, mall-connector)."""
    base = _base_python()
    if base is None:
        raise RuntimeError(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that other users can run")
    where.mkdir(parents=True, exist_ok=True)
    os.chmod(where, 0o755)
    venv = where / "venv"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))
    (dest,) = list((venv / "lib").glob("python*/site-packages"))
    if reachable_by_others(site) and reachable_by_others(ROOT):
        lines = [str(ROOT), f"import site; site.addsitedir({str(site)!r})"]
    else:  # copy what the unprivileged user cannot reach
        shutil.copytree(site, where / "site", ignore=shutil.ignore_patterns("__editable__*", "__pycache__"))
        src = where / "src"
        for pkg in PACKAGES:
            shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        lines = [str(src), f"import site; site.addsitedir({str(where / 'site')!r})"]
    (dest / "zz_mall_connector_test.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    script = venv / "bin" / "mall-connector"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom connector.cli import main\nsys.exit(main())\n",
                      encoding="utf-8")
    os.chmod(script, 0o755)
    for dirpath, dirnames, filenames in os.walk(where):  # readable by every user (links keep their target's mode)
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o755 if name in dirnames else os.stat(p).st_mode | 0o444)
    return venv / "bin"
