"""Creating files in folders other users can write into (the shop's outbox), without trusting them.

Another user who can write the folder can plant a symlink at any name we might use. So a file is
never opened by a name someone else could have chosen: it is created by ``mkstemp`` in the target
folder (O_CREAT|O_EXCL|O_NOFOLLOW, a random name), given its mode with ``fchmod`` and its group
with ``fchown`` (the umask is never trusted), and then renamed into place; ``rename`` replaces a
planted symlink itself and never writes through it. A published file is checked by ``lstat``: a
regular file of ours with the expected mode and group, or the hand-off has failed.
"""

from __future__ import annotations

import grp
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path


class FilePermissionError(OSError):
    """A file could not get (or does not have) the mode and group it must have; the message says why."""


@dataclass(frozen=True)
class FileMode:
    """What a published file must look like: permission bits, and its group (None = the folder's group)."""

    mode: int = 0o640
    group: str | int | None = None

    def gid_for(self, folder: Path) -> int:
        """The numeric group: the configured name or gid, else the folder's own group (so setgid folders work)."""
        if self.group is None:
            return os.stat(folder).st_gid
        return resolve_gid(self.group)


def resolve_gid(group: str | int) -> int:
    """A group name or numeric gid -> gid; KeyError when no such group exists."""
    if isinstance(group, int) or str(group).isdigit():
        return int(group)
    try:
        return grp.getgrnam(str(group)).gr_gid
    except KeyError:
        raise KeyError(str(group)) from None


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def parse_mode(text: str) -> int:
    """``"0640"`` -> 0o640. Only permission bits (no setuid/setgid/sticky); ValueError otherwise."""
    if not isinstance(text, str) or not text or any(c not in "01234567" for c in text) or len(text) > 4:
        raise ValueError('must be an octal file mode as a string, e.g. "0640"')
    value = int(text, 8)
    if value > 0o777:
        raise ValueError('must hold permission bits only (at most "0777"), e.g. "0640"')
    if not value & stat.S_IRUSR or not value & stat.S_IWUSR:
        raise ValueError('must let the connector itself read and write the file (owner rw), e.g. "0640"')
    return value


def apply_mode(fd: int, path: Path, want: FileMode, gid: int) -> None:
    """Give an open file its group and mode. Raises FilePermissionError naming what to fix."""
    try:
        if os.fstat(fd).st_gid != gid:
            os.fchown(fd, -1, gid)
    except PermissionError:
        raise FilePermissionError(
            f"cannot give {path} the group {group_name(gid)!r}: the user running the connector is not a member of it "
            f"(add it with: adduser {_whoami()} {group_name(gid)}, then restart the connector; or change the outbox "
            "folder's group or outbox_group)") from None
    os.fchmod(fd, want.mode)


def write_new_file(folder: Path, data_writer, want: FileMode, *, prefix: str = ".new-", suffix: str = ".tmp") -> Path:
    """Create a fresh file in ``folder`` (mkstemp: O_EXCL, random name), set group and mode, let
    ``data_writer(binary_file)`` fill it, fsync it. Returns its path; the caller renames it into place."""
    gid = want.gid_for(folder)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    path = Path(name)
    try:
        apply_mode(fd, path, want, gid)
        with os.fdopen(fd, "wb", closefd=True) as f:
            fd = -1
            data_writer(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    return path


def check_published(path: Path, want: FileMode, folder: Path, *, repair: bool = True) -> None:
    """The file at ``path`` must be a regular file (not a symlink) owned by us, with the configured mode
    and group. A file of ours with a wrong mode or group is repaired first when ``repair`` (e.g. the
    folder was fixed after a failed hand-off). Raises FilePermissionError with the reason."""
    gid = want.gid_for(folder)
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise FilePermissionError(f"{path} is not a regular file (a symlink or something else was put there)")
    if st.st_uid != os.geteuid():
        raise FilePermissionError(f"{path} belongs to uid {st.st_uid}, not to the connector's user")
    if repair and (stat.S_IMODE(st.st_mode) != want.mode or st.st_gid != gid):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            if os.fstat(fd).st_ino == st.st_ino:
                apply_mode(fd, path, want, gid)
        finally:
            os.close(fd)
        st = os.lstat(path)
    problems = []
    if stat.S_IMODE(st.st_mode) != want.mode:
        problems.append(f"mode {stat.S_IMODE(st.st_mode):04o} instead of {want.mode:04o}")
    if st.st_gid != gid:
        problems.append(f"group {group_name(st.st_gid)!r} instead of {group_name(gid)!r}")
    if problems:
        raise FilePermissionError(
            f"{path} was published with {' and '.join(problems)} (the file system or an ACL overrides it): the "
            "shop's importer may not be able to read it")


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _whoami() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return str(os.geteuid())
