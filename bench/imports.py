"""RSS added by each group of modules `mall-connector run` imports, in a fresh interpreter; prints JSON.

``--hide rich`` makes ``import rich`` fail first, as in an install without it: httpx imports its optional
command-line extras (click, rich, pygments) whenever they are installed, e.g. by `make audit` (pip-audit
depends on rich) in the same virtualenv."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

GROUPS = [
    ("pydantic", ["pydantic"]),
    ("SQLAlchemy", ["sqlalchemy"]),
    ("alembic + mako (not loaded by `run`: only its migration child)", ["alembic.command", "alembic.runtime.migration", "alembic.script"]),
    ("httpx (+ its CLI extras when installed)", ["httpx"]),
    ("Flask + Werkzeug", ["flask"]),
    ("waitress, APScheduler, prometheus_client, tenacity",
     ["waitress", "apscheduler.schedulers.background", "prometheus_client", "tenacity"]),
    ("connector (config, client, ledger, sync, receiver, daemon, CLI)",
     ["connector.config", "connector.mall.client", "connector.ledger", "connector.sync.runner", "receiver.app",
      "receiver.server", "connector.daemon", "connector.cli"]),
]


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hide", action="append", default=[])
    a = p.parse_args()
    for name in a.hide:
        sys.modules[name] = None  # type: ignore[assignment]  # import fails with ImportError
    out = {"python": rss_mib(), "groups": []}
    prev = out["python"]
    for label, modules in GROUPS:
        for m in modules:
            importlib.import_module(m)
        now = rss_mib()
        out["groups"].append([label, now - prev])
        prev = now
    out["total"] = prev
    out["rich_loaded"] = isinstance(sys.modules.get("rich"), type(sys))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
