"""Run a command the way systemd runs packaging/systemd/mall-connector.service, without systemd.

What is applied from the unit: User=/Group= (system users created when missing, supplementary
groups as initgroups gives them), UMask=, Environment=, WorkingDirectory=, StateDirectory= (+
StateDirectoryMode=, $STATE_DIRECTORY), LoadCredential= ($CREDENTIALS_DIRECTORY, readable only by
the service user), NOTIFY_SOCKET (Type=notify) and WATCHDOG_USEC, a clean environment, and the
ExecStart=/ExecReload= command lines with $MAINPID. Paths under /opt/mall-connector/venv,
/etc/mall-connector and /var/lib/mall-connector are mapped into a test folder, so nothing on the
machine outside that folder is touched except the users and groups. Not applied: the sandboxing
directives (ProtectSystem=, ReadWritePaths=, SystemCallFilter= ...), which need systemd itself;
`systemd-analyze verify` checks those (tests/system/service/test_unit_file.py).
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.system.service.test_unit_file import parse_unit
from tests.support.paths import ROOT

UNIT = ROOT / "packaging" / "systemd" / "mall-connector.service"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def ensure_group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", name], capture_output=True, timeout=60)
        return grp.getgrnam(name).gr_gid  # KeyError again = could not create it


def ensure_user(name: str, *, system: bool = True, home: str = "/nonexistent") -> pwd.struct_passwd:
    """A user (with a group of the same name), created like `adduser --system --group` when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--user-group", "--no-create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin"]
        subprocess.run(cmd + (["--system"] if system else []) + [name], capture_output=True, timeout=60)
        return pwd.getpwnam(name)


def add_to_group(user: str, group: str) -> None:
    if user not in grp.getgrnam(group).gr_mem:
        subprocess.run(["usermod", "-a", "-G", group, user], check=True, capture_output=True, timeout=60)


class NotifySocket:
    """The NOTIFY_SOCKET end systemd keeps: collects READY=1, STOPPING=1 ... datagrams."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o777)  # the service user must be able to send to it
        self.messages: list[str] = []
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except OSError:  # includes the 0.2 s timeout
                continue
            self.messages.extend(data.decode("utf-8", "replace").splitlines())

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@dataclass
class ServiceRun:
    """The unit, applied under ``root``: call ``start()`` for ExecStart, ``reload()`` for ExecReload."""

    root: Path
    venv: Path  # stands in for /opt/mall-connector/venv
    unit: dict = field(default_factory=lambda: parse_unit(UNIT.read_text(encoding="utf-8")))

    def __post_init__(self) -> None:
        svc = self.unit["Service"]
        self.etc = self.root / "etc" / "mall-connector"
        self.var_lib = self.root / "var" / "lib"
        self.paths = {"/opt/mall-connector/venv": str(self.venv), "/etc/mall-connector": str(self.etc),
                      "/var/lib": str(self.var_lib)}
        self.user = self._one("User")
        self.group = self._one("Group", self.user)
        self.pw = ensure_user(self.user, home="/var/lib/" + self.user)
        self.gid = ensure_group(self.group)
        self.umask = int(self._one("UMask", "0022"), 8)
        self.env_extra: dict[str, str] = {}
        for value in svc.get("Environment", []):
            for item in shlex.split(value):
                k, _, v = item.partition("=")
                self.env_extra[k] = v
        self.etc.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "journal.log"
        self.proc: subprocess.Popen | None = None
        self.notify: NotifySocket | None = None

    def _one(self, key: str, default: str | None = None) -> str:
        values = self.unit["Service"].get(key)
        if not values:
            if default is None:
                raise AssertionError(f"{key}= missing from the unit")
            return default
        return values[-1]

    def map_path(self, text: str) -> str:
        for real, here in self.paths.items():
            text = text.replace(real, here)
        return text

    # -- what systemd does before ExecStart ------------------------------------------------------
    def state_directory(self) -> Path:
        name = self._one("StateDirectory")
        path = self.var_lib / name
        path.mkdir(parents=True, exist_ok=True)
        for parent in (self.root / "var", self.var_lib):
            os.chmod(parent, 0o755)
        os.chown(path, self.pw.pw_uid, self.gid)
        os.chmod(path, int(self._one("StateDirectoryMode", "0755"), 8))
        return path

    def credentials(self) -> Path:
        """$CREDENTIALS_DIRECTORY: each LoadCredential=NAME:PATH copied, readable by the service user only."""
        creds = self.root / "run" / "credentials" / "mall-connector.service"
        if creds.exists():
            shutil.rmtree(creds)
        creds.mkdir(parents=True)
        os.chmod(self.root / "run", 0o755)
        os.chmod(creds.parent, 0o755)
        for value in self.unit["Service"].get("LoadCredential", []):
            name, _, source = value.partition(":")
            target = creds / name
            shutil.copyfile(self.map_path(source), target)
            os.chown(target, self.pw.pw_uid, self.gid)
            os.chmod(target, 0o400)
        os.chown(creds, self.pw.pw_uid, self.gid)
        os.chmod(creds, 0o500)
        return creds

    def environment(self) -> dict[str, str]:
        env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": self.pw.pw_dir, "USER": self.user,
               "LOGNAME": self.user, "SHELL": self.pw.pw_shell, "INVOCATION_ID": "0" * 32}
        env["STATE_DIRECTORY"] = str(self.state_directory())
        env["CREDENTIALS_DIRECTORY"] = str(self.credentials())
        if self.notify is not None:
            env["NOTIFY_SOCKET"] = str(self.notify.path)
        watchdog = self.unit["Service"].get("WatchdogSec")
        if watchdog:
            env["WATCHDOG_USEC"] = str(int(watchdog[-1]) * 1_000_000)
        env.update(self.env_extra)
        return env

    def _command(self, key: str, mainpid: int | None = None) -> list[str]:
        line = self._one(key).lstrip("-@:+!")
        if mainpid is not None:
            line = line.replace("$MAINPID", str(mainpid)).replace("${MAINPID}", str(mainpid))
        return [self.map_path(a) for a in shlex.split(line)]

    def _creds(self) -> dict:
        groups = os.getgrouplist(self.user, self.gid)
        return {"user": self.pw.pw_uid, "group": self.gid, "extra_groups": groups, "umask": self.umask}

    # -- ExecStart / ExecReload / stop -----------------------------------------------------------
    def start(self, *, with_notify: bool = True) -> subprocess.Popen:
        if with_notify and self.notify is None:
            self.notify = NotifySocket(self.root / "notify.sock")
        env = self.environment()
        cwd = self.map_path(self._one("WorkingDirectory", "/"))
        with open(self.log_path, "ab") as log:  # the journal's stand-in; the child keeps its own descriptor
            self.proc = subprocess.Popen(self._command("ExecStart"), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=cwd, env=env, **self._creds())
        return self.proc

    def run_to_exit(self, timeout: float = 60) -> tuple[int, str]:
        """ExecStart that is expected to end by itself (a start-up failure): exit code and its output."""
        before = self.log_path.stat().st_size if self.log_path.exists() else 0
        proc = self.start(with_notify=False)
        rc = proc.wait(timeout=timeout)
        return rc, self.log_path.read_bytes()[before:].decode("utf-8", "replace")

    def reload(self) -> int:
        assert self.proc is not None
        return subprocess.run(self._command("ExecReload", self.proc.pid), capture_output=True, timeout=30,
                              env={"PATH": CLEAN_PATH}, **self._creds()).returncode

    def as_user(self, user: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
        pw = pwd.getpwnam(user)
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, user=pw.pw_uid, group=pw.pw_gid,
                              extra_groups=os.getgrouplist(user, pw.pw_gid), env={"PATH": CLEAN_PATH}, cwd="/", **kw)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.notify is not None:
            self.notify.close()
