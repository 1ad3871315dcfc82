"""docs/service.md is followed literally: every mall-connector command line in it exists with those options,
and the names it uses are the ones the service test uses."""

from __future__ import annotations

import re
import shlex

import click

from connector.cli import main
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "service.md"


def _code_lines(text: str) -> list[str]:
    lines, inside, pending = [], False, ""
    for raw in text.splitlines():
        raw = raw.strip()
        if raw.startswith("```"):
            inside = not inside
            continue
        if inside:
            pending += raw.rstrip("\\") + " " if raw.endswith("\\") else raw
            if not raw.endswith("\\"):
                lines.append(pending)
                pending = ""
    return lines


def _invocations(lines: list[str]) -> list[list[str]]:
    out = []
    for line in lines:
        words = shlex.split(re.sub(r"<[^>]+>", "X", line.split(" #")[0]).replace("$(date +%F)", "D"))
        if not words or words[0] in ("ln", "rm", "install"):  # the program's path as a file, not a run
            continue
        for i, w in enumerate(words):
            # The program runs when it is the first word, follows `runuser -u USER --`, or is named by its path
            # (mall-connector elsewhere is the user's name: adduser mall-connector GROUP, -u mall-connector).
            if (w == "mall-connector" and (i == 0 or words[i - 1] == "--")) or w.endswith("/bin/mall-connector"):
                out.append(words[i + 1:])
    return out


def _check(args: list[str]) -> None:
    cmd: click.Command = main
    global_opts = {o for p in main.params for o in p.opts}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            name = a.split("=")[0]
            known = {o for p in cmd.params for o in p.opts} | global_opts | {"--help", "--version"}
            assert name in known, f"docs/service.md uses {name} that `{cmd.name}` does not have: {args}"
            param = next((p for p in [*cmd.params, *main.params] if name in p.opts), None)
            if param is not None and not getattr(param, "is_flag", False) and "=" not in a:
                i += 1
        elif isinstance(cmd, click.Group):
            assert a in cmd.commands, f"docs/service.md runs `{a}`, not a command of `{cmd.name}`: {args}"
            cmd = cmd.commands[a]
        i += 1


def test_every_command_in_the_doc_exists_with_its_options():
    invocations = _invocations(_code_lines(DOC.read_text(encoding="utf-8")))
    assert len(invocations) >= 7
    for args in invocations:
        _check(args)


def test_the_doc_uses_the_names_the_service_test_and_init_use():
    from connector.commands import init_cmd
    from tests.system.deploy import test_service_e2e

    text = DOC.read_text(encoding="utf-8")
    assert f"addgroup --system {test_service_e2e.OUTBOX_GROUP}" in text
    assert f"install -d -m 2770 -o root -g {test_service_e2e.OUTBOX_GROUP} {init_cmd.OUTBOX}" in text
    assert init_cmd.LEDGER_URL.removeprefix("sqlite:///") in text
    assert "ReadWritePaths=" + init_cmd.OUTBOX in text
