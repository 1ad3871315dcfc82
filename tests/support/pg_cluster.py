"""A throwaway PostgreSQL cluster on loopback, from Debian's `postgresql` binaries (.ci/run installs them).

    cluster = PgCluster.start()          # initdb + pg_ctl start in a temp folder, a free 127.0.0.1 port
    url = cluster.create_database()      # a fresh database: postgresql+psycopg://mc:<password>@127.0.0.1:port/db
    cluster.stop(); cluster.restart()    # the server goes away and comes back (same port, same data)
    cluster.destroy()

initdb and postgres refuse to run as root, and CI runs as root: then the cluster runs as the unprivileged
user ``nobody`` (the temp folder is handed to it); run as anybody else, it runs as that user. The role
``mc`` has a random password (scram-sha-256 over TCP), so every test URL carries a secret the log scan
knows. fsync is off unless ``durable``: these clusters hold test data only.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROLE = "mc"
ENV_UNAVAILABLE_REASON = "MALL_CONNECTOR_TEST_PG_SKIP_REASON"


class PgUnavailable(Exception):
    """No PostgreSQL server can be started here (the reason says why)."""


def find_bindir() -> Path:
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if
                   Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PgUnavailable("no PostgreSQL binaries (initdb) found: install Debian's postgresql package (.ci/run does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self, bindir: Path, folder: Path, port: int, password: str, user: str | None):
        self.bindir, self.folder, self.port, self.password, self.user = bindir, folder, port, password, user
        self.data = folder / "data"
        self.log = folder / "server.log"
        self._n = 0

    # -- life cycle ------------------------------------------------------------------------------
    @classmethod
    def start(cls, *, max_connections: int = 300, durable: bool = False) -> "PgCluster":
        """``durable``: fsync and synchronous_commit on, as in production (a crash loses no committed
        transaction); off by default, which is faster, for tests that never crash the server."""
        bindir = find_bindir()
        folder = Path(tempfile.mkdtemp(prefix="mc-pg-"))
        user = None
        if os.geteuid() == 0:  # initdb: "cannot be run as root"
            user = "nobody"
            pw = pwd.getpwnam(user)
            os.chown(folder, pw.pw_uid, pw.pw_gid)
        os.chmod(folder, 0o700)
        password = secrets.token_urlsafe(18)
        pwfile = folder / "pw"
        pwfile.write_text(password)
        if user:
            os.chown(pwfile, pwd.getpwnam(user).pw_uid, -1)
        cluster = cls(bindir, folder, _free_port(), password, user)
        cluster.max_connections = max_connections
        cluster.durable = durable
        try:
            cluster._run("initdb", "-D", str(cluster.data), "-U", ROLE, "--pwfile", str(pwfile), "-E", "UTF8",
                         "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions")
        except PgUnavailable:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        pwfile.unlink()
        cluster.restart()
        return cluster

    def _run(self, tool: str, *args: str, timeout: float = 60) -> str:
        kw = {"user": self.user} if self.user else {}
        try:
            out = subprocess.run([str(self.bindir / tool), *args], capture_output=True, text=True, timeout=timeout,
                                 cwd=self.folder, env={**os.environ, "LC_ALL": "C.UTF-8"}, **kw)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PgUnavailable(f"{tool} could not run: {e}") from None
        if out.returncode != 0:
            raise PgUnavailable(f"{tool} failed ({out.returncode}): {(out.stderr or out.stdout).strip()[-800:]}")
        return out.stdout

    def restart(self) -> None:
        """Start the server (again): same port, same data."""
        fast = "" if self.durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} {fast}"
                f"-c max_connections={self.max_connections} -c shared_buffers=32MB -c log_min_messages=warning")
        try:
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
        except PgUnavailable as e:
            log = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            raise PgUnavailable(f"{e}\n{log}") from None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as if it crashed; ``fast``: disconnects every client first)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except PgUnavailable:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def admin(self):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=ROLE, password=self.password,
                               dbname="postgres", autocommit=True, connect_timeout=10)

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """A new, empty (or ``template``-cloned) database; returns its URL."""
        self._n += 1
        name = name or f"t{os.getpid()}_{self._n}_{secrets.token_hex(3)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self.admin():
                    return
            except Exception:  # noqa: BLE001 - starting up
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
