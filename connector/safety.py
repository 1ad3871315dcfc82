"""Neutralising hostile text, and creating files safely where others may write.

Everything MALL sends about a customer (name, address, item titles, notes) is typed by strangers, so
the connector treats it as hostile wherever it lands:

* in a spreadsheet (CSV or XLSX): a cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR is run
  as a formula by Excel/LibreOffice, so ``formula_safe`` puts a ``'`` in front (shown as text);
* on a terminal or in a text log: control characters (ESC, CR, BEL, the other C0 and C1 codes) would
  move the cursor, clear the screen, set the window title or forge log lines, so ``terminal_safe``
  writes them as visible escapes (``\\x1b``, ``\\n``);
* in a file in a folder another user can write (an export folder, /tmp): a name planted there as a
  symlink would make us write through it, so files are created with ``O_EXCL|O_NOFOLLOW`` (or
  ``mkstemp`` in the target folder), given their mode with ``fchmod`` (never the umask), and renamed
  into place.

One module so every writer (exports, CLI tables, logs, the outbox) uses the same rules.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable
from urllib.parse import urlsplit

# -- spreadsheets -------------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A signed number with spaces (a phone number such as "+420 777 123 456", an amount "-15"): a
#: spreadsheet reads it as a number at worst, never as a call, so it stays intact.
_PLAIN_NUMBER = re.compile(r"^[+-]?\d[\d ]*$")


def formula_safe(value: Any) -> str:
    """``value`` as text a spreadsheet will not run: a leading ``'`` when it starts like a formula.

    None becomes "". Phone numbers and signed plain numbers stay as they are."""
    if value is None:
        return ""
    s = str(value)
    if s.startswith(FORMULA_START) and not _PLAIN_NUMBER.match(s):
        return "'" + s
    return s


def cell_value(value: Any) -> Any:
    """A spreadsheet cell: numbers, dates and None as they are, any text through ``formula_safe``."""
    if value is None or isinstance(value, (bool, int, float)) or hasattr(value, "quantize"):
        return value
    if hasattr(value, "isoformat"):  # date, datetime
        return value
    return formula_safe(value)


# -- terminals and text logs --------------------------------------------------------------------------

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}
# C0 (0x00-0x1f), DEL, C1 (0x80-0x9f), and the Unicode line/paragraph separators and bidi overrides
# that reorder or break what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    ch = m.group(0)
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: Any, *, keep: str = "") -> str:
    """``text`` with every control character written as a visible escape, on one line.

    ``ESC[2J`` becomes ``\\x1b[2J``, a newline ``\\n``: nothing can clear the screen, set a window
    title or start a forged log line. Printable text (Czech letters included) is unchanged. Characters
    in ``keep`` (e.g. "\\t\\r\\n" for CSV, where the quoting handles them) are left alone."""
    s = "" if text is None else str(text)
    if not _CONTROL.search(s):
        return s
    if keep:
        return _CONTROL.sub(lambda m: m.group(0) if m.group(0) in keep else _escape(m), s)
    return _CONTROL.sub(_escape, s)


def has_control(text: str) -> bool:
    return bool(_CONTROL.search(text))


# -- secrets ------------------------------------------------------------------------------------------

MIN_TOKEN_BITS = 128


def _unlikely_run(n: int, p: float) -> int:
    """The shortest run (each next character matching with probability ``p``) that ``n`` random
    characters show with odds below 1e-7."""
    r = 2
    while n * p ** (r - 1) >= 1e-7:
        r += 1
    return r


def _repeated_chars(token: str, min_len: int = 4) -> int:
    """How many characters of ``token`` repeat an earlier stretch of ``min_len`` or more (greedy, like LZ77).

    "sec-R4nd0mR4nd0mR4nd0m" has 12 such characters: only the first "R4nd0m" carries information."""
    covered, i, n = 0, 0, len(token)
    while i < n:
        length = 0
        for L in range(n - i, min_len - 1, -1):
            if token[i:i + L] in token[:i + L - 1] and token.find(token[i:i + L]) < i:
                length = L
                break
        if length:
            covered += length
            i += length
        else:
            i += 1
    return covered


def token_weakness(token: str) -> str | None:
    """Why ``token`` cannot be a webhook secret (under 128 bits, or visibly not random), else None.

    The bits are counted from the length and the smallest alphabet the token fits (digits, hex,
    letters and digits, URL-safe), assuming random characters; a repetitive or sequential token is
    refused whatever its length. A ``secrets.token_urlsafe(16)`` or longer always passes (each
    repetition test fails a random token with odds below one in ten million)."""
    import math

    n = len(token)
    if token.isdigit():
        per_char = math.log2(10)
    elif re.fullmatch(r"[0-9a-f]+", token) or re.fullmatch(r"[0-9A-F]+", token):
        per_char = 4.0
    elif token.isalnum() and token.isascii():
        per_char = math.log2(62)
    else:
        per_char = 6.0
    bits = n * per_char
    if bits < MIN_TOKEN_BITS:
        return f"{n} characters give about {bits:.0f} bits"
    if len(set(token)) < 8:
        return f"only {len(set(token))} different characters"
    for period in range(1, n // 2 + 1):
        if all(token[i] == token[i - period] for i in range(period, n)):
            return f"it repeats one {period}-character pattern"
    repeated = _repeated_chars(token)
    if 2 * repeated >= n:
        return f"it repeats itself ({repeated} of its {n} characters copy earlier parts of it)"
    # Run lengths a random token of this alphabet reaches with odds below 1e-7.
    same_limit = _unlikely_run(n, 2.0 ** -per_char)
    step_limit = max(8, _unlikely_run(n, 2.0 * 2.0 ** -per_char))
    same = steps = longest_same = longest_steps = 1
    for a, b in zip(token, token[1:]):
        same = same + 1 if a == b else 1
        steps = steps + 1 if ord(b) - ord(a) in (1, -1) else 1
        longest_same, longest_steps = max(longest_same, same), max(longest_steps, steps)
    if longest_same >= same_limit:
        return f"one character {longest_same} times in a row"
    if longest_steps >= step_limit:
        return f"a run of {longest_steps} consecutive characters (like abcdefgh)"
    return None


# -- URLs ---------------------------------------------------------------------------------------------


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is loopback (127.0.0.0/8, ::1, localhost): traffic never leaves the machine."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- addresses ----------------------------------------------------------------------------------------

def parse_networks(values: Iterable[str]) -> tuple:
    """``["127.0.0.1", "10.0.0.0/8"]`` -> ip_network objects (ValueError names a bad one)."""
    nets = []
    for v in values:
        try:
            nets.append(ipaddress.ip_network(str(v).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)") from None
    return tuple(nets)


def address_in(addr: str, networks: tuple) -> bool:
    """True when ``addr`` (IPv4, IPv6 or IPv4-mapped IPv6) is in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(addr.strip().strip("[]"))
    except ValueError:
        return False
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    return any(ip in n for n in networks)


# -- files --------------------------------------------------------------------------------------------

PRIVATE_MODE = 0o600


def create_exclusive(path: Path | str, mode: int = PRIVATE_MODE) -> int:
    """Create ``path`` new and open it for writing; never follows a symlink, never opens an existing file.

    The mode is set with ``fchmod`` after creation, so the umask cannot widen or narrow it.
    Returns the file descriptor. FileExistsError if anything (a file, a planted symlink) is there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_replacing(path: Path, write: Callable[[BinaryIO], None], *, mode: int = PRIVATE_MODE) -> None:
    """Write ``path`` through a ``mkstemp`` file in the same folder, with ``mode``, then rename it over ``path``.

    ``mkstemp`` creates with ``O_EXCL`` under a random name (a planted symlink is never followed) and
    ``write`` gets that very file, open (binary), so nothing reopens it by name; ``os.replace`` replaces
    a symlink planted at ``path`` itself instead of writing through it; a crash never leaves half a
    file under the final name. The mode is set with ``fchmod``: the umask has no say."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fd = -1  # the file object owns it now
            write(f)
            f.flush()
            os.fsync(f.fileno())
            ours = os.fstat(f.fileno())
        there = os.lstat(tmp)
        if (there.st_dev, there.st_ino) != (ours.st_dev, ours.st_ino):
            raise OSError(f"temporary file {tmp} was replaced by someone else while writing; {path} not written")
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            if os.lstat(tmp).st_uid == os.getuid():
                os.unlink(tmp)
        except OSError:
            pass
        raise


def ensure_private_file(path: Path | str) -> bool:
    """Create ``path`` as an empty 0600 file if it does not exist (never through a symlink).

    Returns True when it was created. An existing file is left as it is (its mode is the admin's)."""
    try:
        fd = create_exclusive(path, PRIVATE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def readable_by_others(path: Path | str) -> bool:
    """True when the file's mode lets users other than its owner and group read it (o+r)."""
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def mode_warning(path: Path | str, what: str) -> str | None:
    """A warning line when ``path`` (a secret-holding file) is readable by every local user, else None."""
    if not readable_by_others(path):
        return None
    mode = stat.S_IMODE(os.stat(path).st_mode)
    return (f"{what} {path} is readable by every local user (mode {mode:04o}); "
            f"restrict it with: chmod o-rwx {path}")


def secret_file_warnings(config: Any, environ: Any = None) -> list[str]:
    """Warnings for every file holding a secret that every local user can read.

    The config file (when it holds a secret), ``[mall] client_id_file``, and the credential files:
    those under ``$CREDENTIALS_DIRECTORY`` and the usual ``LoadCredential=`` sources next to the
    config (``client_id``, ``webhook_tokens``, an adapter's ``<name>_<key>``)."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    seen: set[str] = set()

    def check(path: Any, what: str) -> None:
        if path is None or str(path) in seen:
            return
        seen.add(str(path))
        w = mode_warning(path, what)
        if w:
            out.append(w)

    from adapters import registry  # the keys each adapter declares secret (AdapterSpec.secrets)

    adapter_secrets = [(name, s) for name, spec in registry.adapters().items() for s in spec.secrets]
    src = getattr(config, "source_path", None)
    cid_file = getattr(config.mall, "client_id_file", None)
    if cid_file is not None:
        cid_file = Path(cid_file).expanduser()
        if not cid_file.is_absolute() and src is not None:
            cid_file = Path(src).resolve().parent / cid_file  # as the config loader reads it
        check(cid_file, "[mall] client_id_file")
    if src is not None:
        try:
            text = Path(src).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        if any(k in text for k in ("client_id =", "client_id=", "tokens", "password", "webhook_url",
                                   *(s.key for _, s in adapter_secrets))):
            check(src, "config file (it holds a secret)")
        for name in ("client_id", "webhook_tokens", *(s.credential(a) for a, s in adapter_secrets)):
            p = Path(src).parent / name
            if p.is_file():
                check(p, "credential file")
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and Path(cred_dir).is_dir():
        for p in sorted(Path(cred_dir).iterdir()):
            check(p, "credential file")
    return out
