"""Console users: a TOML file named by ``[console] users_file``, with argon2id password hashes.

    # written by `mall-connector console adduser`; keep it 0640, owned by root:mall-connector
    [users.jana]
    role = "operator"
    password_hash = "$argon2id$v=19$m=65536,t=3,p=4$..."

The file is re-read when it changes, so `console adduser` takes effect without a restart. It is
written atomically (temp file in the same folder, fsync, rename) with mode 0640.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
import tomllib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from connector.config import Config, ConfigError

ROLES = ("viewer", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PASSWORD_MIN = 10
PASSWORD_MAX = 1024  # argon2 hashes any length; a bound keeps a login request cheap
FILE_MAX_BYTES = 1024 * 1024

_hasher = PasswordHasher()  # argon2id, the library's current defaults


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str

    def may(self, role: str) -> bool:
        """True when this user's role includes ``role`` (viewer < operator < admin)."""
        return RANK[self.role] >= RANK[role]


def users_path(config: Config) -> Path:
    """``[console] users_file``, relative to the config file's folder."""
    p = Path(config.console.users_file).expanduser()
    if not p.is_absolute() and config.source_path is not None:
        p = Path(config.source_path).resolve().parent / p
    return p


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(password: str) -> str | None:
    """Why ``password`` is not acceptable, or None."""
    if len(password) < PASSWORD_MIN:
        return f"the password must have at least {PASSWORD_MIN} characters"
    if len(password) > PASSWORD_MAX:
        return f"the password must have at most {PASSWORD_MAX} characters"
    return None


def load_users(path: Path) -> dict[str, User]:
    """Read the users file; a missing file means no users. Raises ConfigError naming file, key and reason."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(path, None, f"cannot read the console users file: {e.strerror}") from None
    if len(raw) > FILE_MAX_BYTES:
        raise ConfigError(path, None, f"the console users file is larger than {FILE_MAX_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(path, None, f"not valid TOML: {e}") from None
    unknown = set(data) - {"users"}
    if unknown:
        raise ConfigError(path, sorted(unknown)[0], "unknown key (the file has one table: [users.NAME])")
    users: dict[str, User] = {}
    for name, entry in (data.get("users") or {}).items():
        key = f"users.{name}"
        if not NAME_RE.match(name):
            raise ConfigError(path, key, "a user name is 1-64 letters, digits, '.', '_' or '-'")
        if not isinstance(entry, dict):
            raise ConfigError(path, key, "must be a table with role and password_hash")
        extra = set(entry) - {"role", "password_hash"}
        if extra:
            raise ConfigError(path, f"{key}.{sorted(extra)[0]}", "unknown key (keys: role, password_hash)")
        role, pw_hash = entry.get("role"), entry.get("password_hash")
        if role not in ROLES:
            raise ConfigError(path, f"{key}.role", f"must be one of {', '.join(ROLES)}")
        if not isinstance(pw_hash, str) or not pw_hash.startswith("$argon2"):
            raise ConfigError(path, f"{key}.password_hash",
                              "must be an argon2 hash; set it with: mall-connector console adduser " + name)
        users[name] = User(name, role, pw_hash)
    return users


def _render(users: dict[str, User]) -> str:
    out = ["# mall-connector console users, written by `mall-connector console adduser`.",
           "# Keep this file 0640 (root:mall-connector). Hashes are argon2id; passwords are never stored.", ""]
    for u in sorted(users.values(), key=lambda u: u.name):
        out += [f"[users.{u.name}]", f'role = "{u.role}"', f'password_hash = "{u.password_hash}"', ""]
    return "\n".join(out)


def save_users(path: Path, users: dict[str, User]) -> None:
    """Write the users file atomically with mode 0640."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_render(users))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def add_user(path: Path, name: str, role: str, password: str, *, replace: bool = False) -> bool:
    """Add (or with ``replace`` update) a user. True when the user existed. Raises ValueError for bad input."""
    if not NAME_RE.match(name):
        raise ValueError("a user name is 1-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise ValueError(f"the role must be one of {', '.join(ROLES)}")
    problem = check_password_rules(password)
    if problem:
        raise ValueError(problem)
    users = load_users(path)
    existed = name in users
    if existed and not replace:
        raise ValueError(f"user {name} exists already (use --replace to set a new password or role)")
    users[name] = User(name, role, hash_password(password))
    save_users(path, users)
    return existed


class UserStore:
    """The users file as the console sees it: re-read when its mtime or size changes."""

    _DUMMY = _hasher.hash("not-a-real-password-0")

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or stamp is None:
                self._users = load_users(self.path) if stamp is not None else {}
                self._stamp = stamp

    def get(self, name: str) -> User | None:
        self._refresh()
        return self._users.get(name)

    def count(self) -> int:
        self._refresh()
        return len(self._users)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password matches. An unknown name costs one hash too (no timing oracle)."""
        user = self.get(name) if NAME_RE.match(name or "") else None
        try:
            _hasher.verify(user.password_hash if user else self._DUMMY, password[:PASSWORD_MAX])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user


class LoginLimiter:
    """At most ``per_minute`` failed logins per client address and per user name in a sliding minute.

    Bounded: at most ``max_keys`` addresses and names are remembered (the oldest are forgotten first)."""

    WINDOW_S = 60.0

    def __init__(self, per_minute: int, *, max_keys: int = 10000, clock=time.monotonic):
        self.per_minute = per_minute
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and now - q[0] >= self.WINDOW_S:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after(self, address: str, name: str) -> int | None:
        """Seconds to wait when this address or name used up its attempts, else None."""
        now = self.clock()
        with self._lock:
            waits = []
            for key in (f"ip:{address}", f"user:{name.lower()}"):
                q = self._recent(key, now)
                if len(q) >= self.per_minute:
                    waits.append(int(self.WINDOW_S - (now - q[0])) + 1)
            return max(waits) if waits else None

    def failed(self, address: str, name: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"ip:{address}", f"user:{name.lower()[:64]}"):
                self._fails.setdefault(key, deque(maxlen=self.per_minute)).append(now)
            while len(self._fails) > self.max_keys:
                self._fails.pop(next(iter(self._fails)))
