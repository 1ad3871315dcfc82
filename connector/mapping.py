"""The status mapping: which shop status means which MALL status, and back.

A mapping is data (a TOML file an admin edits), not code. It knows no shop: the adapters hand
over the shop's status names as written, and ``Mapping.lookup`` answers what they mean.

    [to_mall]                    # shop status -> MALL status (pushed to MALL)
    "Expedována" = "shipped"
    [from_mall]                  # MALL status -> shop status (written to the shop's inbox)
    cancelled = "Stornována"
    [ignore]                     # known shop statuses that are never pushed
    statuses = ["Nová"]
    [options]
    case_sensitive = false

Shop statuses are compared after Unicode NFC normalisation and trimming (a name typed on a Mac
is often decomposed: "a" + combining acute), and case-insensitively unless ``case_sensitive``.
Every mistake is a ``MappingError`` naming the file, the key, its line and the reason, because
an admin must be able to fix the file without reading code.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

from connector.config import ConfigError
from connector.mall.statuses import ALL_STATUSES, PARTNER_SETTABLE, Status

SECTIONS = ("to_mall", "from_mall", "ignore", "options")
OPTIONS = ("case_sensitive", "delivered_from_date")

#: Why a partner can never ask for these statuses (shown when a mapping targets them).
_NOT_SETTABLE_WHY = {
    Status.BLOCKED: "MALL sets blocked itself while it waits for the customer's payment",
    Status.OPEN: "MALL sets open itself when the order is ready to process",
    Status.LOST: "only MALL sets lost, for MALL Delivery parcels the carrier lost",
}


class MappingError(ConfigError):
    """A mapping file problem; a ConfigError so every command exits 78 (EX_CONFIG) on it."""


@dataclass(frozen=True)
class Lookup:
    """What a shop status means: mapped onto ``target``, deliberately ignored, or unknown."""

    kind: Literal["mapped", "ignored", "unmapped"]
    target: Status | None = None


@dataclass(frozen=True)
class MappingRow:
    """One line of the mapping for printing. ``section`` is to_mall, ignore or from_mall."""

    section: Literal["to_mall", "ignore", "from_mall"]
    shop_status: str
    mall_status: str  # "" for ignored statuses


def normalize_status(text: str, *, case_sensitive: bool = False) -> str:
    """The comparison form of a shop status: NFC, trimmed, and case-folded unless case-sensitive."""
    s = unicodedata.normalize("NFC", text).strip()
    return s if case_sensitive else s.casefold()


class Mapping:
    """A validated mapping file. Build it with ``load_mapping``."""

    def __init__(
        self,
        path: Path,
        to_mall: dict[str, Status],
        from_mall: dict[Status, str],
        ignored: tuple[str, ...],
        case_sensitive: bool,
    ):
        self.path = path
        self.case_sensitive = case_sensitive
        self.to_mall = dict(to_mall)  # shop status as written in the file -> MALL status
        self.from_mall = dict(from_mall)
        self.ignored = tuple(ignored)
        self._to = {self._norm(k): v for k, v in to_mall.items()}
        self._ignored = {self._norm(s) for s in ignored}
        #: [options] delivered_from_date: the feed's delivered_at turns a shipped order delivered (issue 15).
        self.delivered_from_date = True

    def _norm(self, text: str) -> str:
        return normalize_status(text, case_sensitive=self.case_sensitive)

    def lookup(self, shop_status: str | None) -> Lookup:
        """What the shop's ``shop_status`` means for MALL."""
        if not shop_status:
            return Lookup("unmapped")
        key = self._norm(shop_status)
        if key in self._to:
            return Lookup("mapped", self._to[key])
        if key in self._ignored:
            return Lookup("ignored")
        return Lookup("unmapped")

    def shop_status_for(self, mall_status: Status | str) -> str:
        """The shop's status name for a MALL status ([from_mall]); "" when the mapping has none."""
        try:
            status = Status(str(mall_status).strip().lower())
        except ValueError:
            return ""
        return self.from_mall.get(status, "")

    def unknown_statuses(self, shop_statuses: Iterable[str]) -> set[str]:
        """The statuses (trimmed, as written) that are neither mapped nor ignored."""
        return {s.strip() for s in shop_statuses if s and s.strip() and self.lookup(s).kind == "unmapped"}

    def rows(self) -> list[MappingRow]:
        """Everything in the file, in file order per section, for printing."""
        out = [MappingRow("to_mall", shop, str(mall)) for shop, mall in self.to_mall.items()]
        out += [MappingRow("ignore", shop, "") for shop in self.ignored]
        out += [MappingRow("from_mall", shop, str(mall)) for mall, shop in self.from_mall.items()]
        return out

    def __repr__(self) -> str:
        return f"Mapping({str(self.path)!r}, {len(self.to_mall)} mapped, {len(self.ignored)} ignored)"


# ---------------------------------------------------------------------------------------------
# Loading and validation


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file. Raises MappingError naming file, key, line and reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(path, None, "mapping file not found (set [shop] mapping in the config)") from None
    except UnicodeDecodeError as e:
        raise MappingError(path, None, f"not UTF-8 text (byte {e.start}); save the file as UTF-8") from None
    except OSError as e:
        raise MappingError(path, None, f"cannot read the mapping file: {e.strerror}") from None
    return mapping_from_text(text, path)


def mapping_from_text(text: str, path: str | Path = "<mapping>") -> Mapping:
    """Validate mapping TOML ``text``; ``path`` is used in messages only."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))
        raise MappingError(path, None, f"not valid TOML: {e}", int(m.group(1)) if m else None) from None
    return _Validator(path, text).build(data)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word.lower(), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _dotted(section: str, key: str | None = None) -> str:
    """A TOML-style key path: to_mall."Expedována", options.case_sensitive."""
    if key is None:
        return section
    bare = re.fullmatch(r"[A-Za-z0-9_-]+", key) is not None
    return f"{section}.{key if bare else json.dumps(key, ensure_ascii=False)}"


class _Validator:
    """Checks the parsed TOML and builds the Mapping; one error at a time, with its line."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text
        self.lines = text.splitlines()

    def fail(self, section: str, key: str | None, message: str, *, value: str | None = None) -> MappingError:
        line = self._line_of(section, key, value)
        return MappingError(self.path, _dotted(section, key), message, line)

    def build(self, data: dict[str, Any]) -> Mapping:
        for name, value in data.items():
            if name not in SECTIONS:
                raise self.fail(name, None, f"unknown section [{name}]{_did_you_mean(name, SECTIONS)} "
                                            f"(sections: {', '.join(SECTIONS)})")
            if not isinstance(value, dict):
                raise self.fail(name, None, f"[{name}] must be a table (a [{name}] header with keys under it)")

        case_sensitive = self._options(data.get("options", {}))
        norm = lambda s: normalize_status(s, case_sensitive=case_sensitive)  # noqa: E731

        to_mall: dict[str, Status] = {}
        seen: dict[str, str] = {}  # normalised -> as written
        for shop, target in data.get("to_mall", {}).items():
            self._shop_name(shop, "to_mall", shop)
            if norm(shop) in seen:
                raise self.fail("to_mall", shop, f"{shop!r} is the same shop status as {seen[norm(shop)]!r} "
                                                 f"(after trimming, Unicode normalisation{'' if case_sensitive else ' and ignoring case'}); keep one")
            seen[norm(shop)] = shop
            to_mall[shop] = self._target(shop, target)

        ignored: list[str] = []
        ignored_seen: dict[str, str] = {}
        for shop in self._ignore_list(data.get("ignore", {})):
            key = norm(shop)
            if key in seen:
                raise self.fail("ignore", "statuses", f"{shop!r} is both mapped in [to_mall] (as {seen[key]!r}) "
                                                      f"and ignored; a status is either pushed or not — remove one",
                                value=shop)
            if key in ignored_seen:
                raise self.fail("ignore", "statuses", f"{shop!r} is listed twice (same as {ignored_seen[key]!r})",
                                value=shop)
            ignored_seen[key] = shop
            ignored.append(shop)

        from_mall: dict[Status, str] = {}
        for mall, shop in data.get("from_mall", {}).items():
            try:
                status = Status(mall.strip().lower())
            except ValueError:
                raise self.fail("from_mall", mall, f"{mall!r} is not a MALL status{_did_you_mean(mall, ALL_STATUSES)} "
                                                   f"(keys of [from_mall] are MALL statuses: {', '.join(ALL_STATUSES)})") from None
            if status in from_mall:
                raise self.fail("from_mall", mall, f"MALL status {status} is listed twice")
            self._shop_name(shop, "from_mall", mall, what="value (the shop's status name)")
            from_mall[status] = shop.strip()

        mapping = Mapping(self.path, to_mall, from_mall, tuple(ignored), case_sensitive)
        # issue 15: a feed's delivered_at on a shipped order becomes `delivered` unless this is false.
        mapping.delivered_from_date = bool(data.get("options", {}).get("delivered_from_date", True))
        return mapping

    def _options(self, options: dict[str, Any]) -> bool:
        for key, value in options.items():
            if key not in OPTIONS:
                raise self.fail("options", key, f"unknown option{_did_you_mean(key, OPTIONS)} (options: {', '.join(OPTIONS)})")
            if not isinstance(value, bool):
                raise self.fail("options", key, f"must be true or false (got {value!r})")
        return bool(options.get("case_sensitive", False))

    def _shop_name(self, value: Any, section: str, key: str, what: str = "shop status") -> None:
        if not isinstance(value, str):
            raise self.fail(section, key, f"{what} must be a text in quotes (got {value!r})")
        if not value.strip():
            raise self.fail(section, key, f"{what} is empty")

    def _target(self, shop: str, target: Any) -> Status:
        if not isinstance(target, str):
            raise self.fail("to_mall", shop, f"the MALL status must be a text in quotes, e.g. \"shipped\" (got {target!r})")
        try:
            status = Status(target.strip().lower())
        except ValueError:
            raise self.fail("to_mall", shop, f"{target!r} is not a MALL status{_did_you_mean(target, ALL_STATUSES)} "
                                             f"(a shop status can map onto: {', '.join(sorted(PARTNER_SETTABLE))})") from None
        if status not in PARTNER_SETTABLE:
            raise self.fail("to_mall", shop, f"a partner can never set {status}: {_NOT_SETTABLE_WHY[status]}. "
                                             f"To leave {shop!r} alone, list it under [ignore] instead")
        return status

    def _ignore_list(self, ignore: dict[str, Any]) -> list[str]:
        for key in ignore:
            if key != "statuses":
                raise self.fail("ignore", key, f"unknown key{_did_you_mean(key, ['statuses'])} "
                                               f"([ignore] has one key: statuses = [\"...\", ...])")
        statuses = ignore.get("statuses", [])
        if not isinstance(statuses, list):
            raise self.fail("ignore", "statuses", 'must be a list, e.g. statuses = ["Nová"]')
        for s in statuses:
            if not isinstance(s, str) or not s.strip():
                raise self.fail("ignore", "statuses", f"every entry must be a non-empty text in quotes (got {s!r})")
        return statuses

    # -- line numbers (best effort; messages are still right without them) --------------------

    def _line_of(self, section: str, key: str | None, value: str | None) -> int | None:
        current = None
        header_line = None
        for i, raw in enumerate(self.lines, 1):
            m = re.match(r"^\s*\[\s*([^\]\[]+?)\s*\]\s*(#.*)?$", raw)
            if m:
                current = _toml_key(m.group(1)) or m.group(1)
                if current == section and header_line is None:
                    header_line = i
                continue
            if current != section or key is None:
                continue
            m = re.match(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""", raw)
            if m and _toml_key(m.group(1)) == key and value is None:
                return i
            if value is not None and value in _string_literals(raw):
                return i
        return header_line


def _toml_key(token: str) -> str | None:
    """The key a TOML key token (bare, "basic" or 'literal') stands for."""
    try:
        return next(iter(tomllib.loads(f"{token} = 0")))
    except (tomllib.TOMLDecodeError, StopIteration):
        return None


def _string_literals(line: str) -> list[str]:
    out = []
    for token in re.findall(r""""(?:[^"\\]|\\.)*"|'[^']*'""", line):
        try:
            out.append(tomllib.loads(f"v = {token}")["v"])
        except tomllib.TOMLDecodeError:
            pass
    return out
