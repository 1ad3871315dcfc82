"""The tests/ layout of tests/README.md, applied mechanically: ``git mv`` of every file still in an old
folder, then the rewrite of the module names (``tests.sync.harness``) and paths (``tests/sync/``) that
name a moved file, in the tests, the docs, the Makefile and .ci/run.

    python -m tests.support.relayout --moves      # git mv only: commit this alone (git sees renames)
    python -m tests.support.relayout --names      # then the rewrite of names: commit it separately
    python -m tests.support.relayout --dry-run    # print what either would do

Run it again after merging a branch that added files under an old folder; a second run finds nothing
to do. A file of an old folder goes where FILES says, else where its folder goes (FOLDERS).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Old folder → new folder (tests/README.md, "Layout"). A file not in FILES follows its folder.
FOLDERS = {
    "tests/core": "tests/unit/connector",
    "tests/mall": "tests/unit/connector/mall",
    "tests/sandbox": "tests/unit/connector/sandbox",
    "tests/mapping": "tests/unit/connector/mapping",
    "tests/receiver": "tests/unit/receiver",
    "tests/csv": "tests/unit/adapters/generic_csv",
    "tests/fastcentrik": "tests/unit/adapters/fastcentrik",
    "tests/property": "tests/unit/property",
    "tests/adapters": "tests/integration/adapters",
    "tests/fastcentrik_e2e": "tests/integration/fastcentrik",
    "tests/shops": "tests/integration/shops",
    "tests/sync": "tests/integration/sync",
    "tests/alerts": "tests/integration/alerts",
    "tests/service": "tests/integration/service",
    "tests/carriers": "tests/integration/carriers",
    "tests/mdp": "tests/integration/mdp",
    "tests/ops": "tests/integration/ops",
    "tests/perf": "tests/integration/perf",
    "tests/console": "tests/integration/console",
    "tests/security": "tests/integration/security",
    "tests/deploy": "tests/integration/deploy",
    "tests/pg": "tests/integration/pg",
    "tests/accounts": "tests/integration/accounts",
    "tests/daemon": "tests/system/daemon",
    "tests/chaos": "tests/system/chaos",
    "tests/demo": "tests/system/demo",
    "tests/packaging": "tests/system/packaging",
    "tests/dbfaults": "tests/system/dbfaults",
    "tests/replicas": "tests/system/replicas",
}

#: Files that do not follow their folder: support code to tests/support/, system tests to tests/system/.
FILES = {
    "tests/pg/plugin.py": "tests/support/pg.py",
    "tests/pg/cluster.py": "tests/support/pg_cluster.py",
    "tests/pg/test_server_restart.py": "tests/system/pg/test_server_restart.py",
    "tests/accounts/world.py": "tests/support/accounts_world.py",
    "tests/accounts/test_accounts_e2e.py": "tests/system/accounts/test_accounts_e2e.py",
    "tests/sync/harness.py": "tests/support/worlds.py",
    "tests/security/logscan.py": "tests/support/logscan.py",
    "tests/security/_tee/sitecustomize.py": "tests/support/_tee/sitecustomize.py",
    "tests/deploy/conftest.py": "tests/support/users.py",
    "tests/deploy/runtime.py": "tests/support/runtime.py",
    "tests/deploy/unitrun.py": "tests/support/unitrun.py",
    "tests/adapters/records.py": "tests/support/records.py",
    "tests/shops/test_shoptet.py": "tests/unit/adapters/shoptet/test_shoptet.py",
    "tests/shops/test_woocommerce.py": "tests/unit/adapters/woocommerce/test_woocommerce.py",
    "tests/sync/test_crash_e2e.py": "tests/system/sync/test_crash_e2e.py",
    "tests/shops/test_daemon_api_shops.py": "tests/system/shops/test_daemon_api_shops.py",
    "tests/service/test_unit_file.py": "tests/system/service/test_unit_file.py",
    "tests/console/test_browser.py": "tests/system/console/test_browser.py",
    "tests/console/test_nginx.py": "tests/system/console/test_nginx.py",
    "tests/security/test_daemon_security.py": "tests/system/security/test_daemon_security.py",
    "tests/security/test_daemon_receiver_limits.py": "tests/system/security/test_daemon_receiver_limits.py",
    "tests/security/test_nginx_e2e.py": "tests/system/security/test_nginx_e2e.py",
    "tests/security/test_unit_hardening.py": "tests/system/security/test_unit_hardening.py",
    "tests/deploy/test_service_e2e.py": "tests/system/deploy/test_service_e2e.py",
}

#: Names that are no file of their own but must follow FILES (a folder that moved as a whole).
NAMES = {"tests/security/_tee": "tests/support/_tee",
         # folded into one parametrised module (D1)
         "tests/shops/test_daemon_shoptet.py": "tests/system/shops/test_daemon_api_shops.py",
         "tests/shops/test_daemon_woocommerce.py": "tests/system/shops/test_daemon_api_shops.py"}

#: Where names are rewritten besides tests/**/*.py (never in this file nor tests/README.md: they hold the tables).

TEXTS = ("Makefile", ".ci/run", "README.md", "pyproject.toml", "docs")


def destination(path: str) -> str | None:
    """Where ``path`` (relative, with /) belongs, or None when it is where it belongs."""
    if path in FILES:
        return FILES[path]
    for old in sorted(FOLDERS, key=len, reverse=True):
        if path.startswith(old + "/"):
            return FOLDERS[old] + path[len(old):]
    return None


def tracked(under: str = "tests") -> list[str]:
    out = subprocess.run(["git", "ls-files", under], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def moves(dry_run: bool) -> int:
    n = 0
    for path in tracked():
        new = destination(path)
        if new is None or new == path:
            continue
        print(f"git mv {path} {new}")
        n += 1
        if not dry_run:
            (ROOT / new).parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "mv", path, new], cwd=ROOT, check=True)
    return n


def _renames() -> dict[str, str]:
    """Old → new for module names (dots) and paths (slashes): the files, then the folders."""
    table: dict[str, str] = {}
    for old, new in {**FOLDERS, **FILES, **NAMES}.items():
        table[old] = new
        if old.endswith(".py"):
            table[old[:-3].replace("/", ".")] = new[:-3].replace("/", ".")
        elif not old.endswith((".py",)) and "." not in Path(old).name:
            table[old.replace("/", ".")] = new.replace("/", ".")
    return table


def rewrite(text: str, table: dict[str, str] | None = None) -> str:
    """``text`` with every old module name or path replaced, longest first, in one pass (so a new name
    is never rewritten again)."""
    table = table or _renames()

    def from_import(m: re.Match) -> str:  # `from tests.deploy import runtime`: the module itself moved
        package, name = m.group(1), m.group(2)
        moved = table.get(f"{package}.{name}")
        if moved is None:
            return m.group(0)
        new_package, new_name = moved.rsplit(".", 1)
        return f"from {new_package} import {new_name}" + ("" if new_name == name else f" as {name}")

    text = re.sub(r"(?m)^(\s*)from (tests[\w.]*) import (\w+)$",
                  lambda m: m.group(1) + from_import(re.match(r"from (\S+) import (\w+)", m.group(0).strip())), text)
    keys = sorted(table, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w./-])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w-])")
    return pattern.sub(lambda m: table[m.group(1)], text)


def names(dry_run: bool) -> int:
    table = _renames()
    files = [ROOT / p for p in tracked() if p.endswith(".py") and ROOT / p != Path(__file__).resolve()]
    for t in TEXTS:
        p = ROOT / t
        files += sorted(p.rglob("*.md")) if p.is_dir() else [p] if p.exists() else []
    n = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, table)
        if new != text:
            n += 1
            print(f"rewrote {path.relative_to(ROOT)}")
            if not dry_run:
                path.write_text(new, encoding="utf-8")
    for folder in ("tests/unit", "tests/integration", "tests/system"):  # packages, so module names stay unique
        for d in [ROOT / folder, *sorted(p for p in (ROOT / folder).rglob("*") if p.is_dir())]:
            if d.is_dir() and d.name != "__pycache__" and not (d / "__init__.py").exists() and any(
                    d.rglob("*.py")):
                print(f"add {(d / '__init__.py').relative_to(ROOT)}")
                if not dry_run:
                    (d / "__init__.py").write_text("", encoding="utf-8")
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.relayout", description=__doc__.split("\n\n")[0])
    p.add_argument("--moves", action="store_true", help="git mv the files of the old folders")
    p.add_argument("--names", action="store_true", help="rewrite module names and paths of moved files")
    p.add_argument("--dry-run", action="store_true", help="print what would be done")
    args = p.parse_args(argv)
    if not (args.moves or args.names):  # nothing asked: show both
        args.moves = args.names = args.dry_run = True
    if args.moves:
        moves(args.dry_run)
    if args.names:
        names(args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
