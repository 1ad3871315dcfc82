"""Editing the mapping from the console: the same validation as `mapping check`, a preview of what the new
mapping means for the orders in the feed, an atomic save that keeps the previous version, and undo.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from connector.ledger import Ledger
from connector.mall.statuses import FINAL_STATUSES, Status, partner_may
from connector.mapping import Lookup, Mapping, MappingError, mapping_from_text

TEXT_MAX_BYTES = 256 * 1024  # a mapping file is a few hundred lines at most


class MappingEditError(Exception):
    """The edit cannot be saved; the message says why (shown to the user)."""


@dataclass(frozen=True)
class Problem:
    """A validation error as `mapping check` reports it, with the line for the editor."""

    message: str
    line: int | None
    key: str | None


@dataclass
class Preview:
    """What the new mapping changes for the orders whose shop status the connector last read in the feed."""

    pushed: dict[str, int] = field(default_factory=dict)  # MALL status -> orders that would be pushed as it
    unmapped: dict[str, int] = field(default_factory=dict)  # shop status newly unmapped -> orders
    ignored: dict[str, int] = field(default_factory=dict)  # shop status newly ignored -> orders
    still_unmapped: dict[str, int] = field(default_factory=dict)  # unmapped before and after
    changed_statuses: list[tuple[str, str, str, int]] = field(default_factory=list)  # (shop, old, new, orders)

    @property
    def empty(self) -> bool:
        return not (self.pushed or self.unmapped or self.ignored or self.changed_statuses)


def validate(text: str, path: Path) -> tuple[Mapping | None, Problem | None]:
    """The mapping ``text`` would make, or the first problem (named as `mapping check` names it)."""
    if len(text.encode("utf-8")) > TEXT_MAX_BYTES:
        return None, Problem(f"{path}: the mapping is larger than {TEXT_MAX_BYTES // 1024} KiB", None, None)
    try:
        return mapping_from_text(text, path), None
    except MappingError as e:
        return None, Problem(str(e), e.line, e.key)


def _meaning(lookup: Lookup) -> str:
    return str(lookup.target) if lookup.kind == "mapped" else lookup.kind


def _would_push(mall: str | None, target) -> bool:
    """Whether the connector would push ``target`` to an order MALL has in ``mall`` (None: not read yet)."""
    if mall is None:
        return True
    try:
        current = Status(mall)
    except ValueError:
        return False
    return current not in FINAL_STATUSES and current != target and partner_may(current, target)


def preview(old: Mapping, new: Mapping, shop_statuses: list[tuple[str, str | None, int]]) -> Preview:
    """Compare old and new meaning of each (shop status, MALL status, orders) group from the ledger."""
    out = Preview()
    per_status: dict[str, list[str | int]] = defaultdict(lambda: ["", "", 0])
    for shop, mall, n in shop_statuses:
        before, after = old.lookup(shop), new.lookup(shop)
        if after.kind == "unmapped" and before.kind == "unmapped":
            out.still_unmapped[shop] = out.still_unmapped.get(shop, 0) + n
        if _meaning(before) == _meaning(after):
            continue
        entry = per_status[shop]
        entry[0], entry[1], entry[2] = _meaning(before), _meaning(after), int(entry[2]) + n
        if after.kind == "mapped":
            if _would_push(mall, after.target):
                out.pushed[str(after.target)] = out.pushed.get(str(after.target), 0) + n
        elif after.kind == "unmapped":
            out.unmapped[shop] = out.unmapped.get(shop, 0) + n
        else:
            out.ignored[shop] = out.ignored.get(shop, 0) + n
    out.changed_statuses = sorted((shop, str(b), str(a), int(n)) for shop, (b, a, n) in per_status.items())
    return out


def preview_for(ledger: Ledger, old: Mapping, new: Mapping) -> Preview:
    from connector.console.queries import shop_status_counts

    return preview(old, new, shop_status_counts(ledger))


def previous_path(path: Path) -> Path:
    """Where the version before the last save is kept (for undo)."""
    return path.with_name(path.name + ".prev")


def editable(path: Path) -> str | None:
    """Why the console cannot edit the mapping at ``path``, or None."""
    from mappings import default_mapping_path

    for adapter in ("generic_csv", "fastcentrik"):
        try:
            if path.resolve() == default_mapping_path(adapter).resolve():
                return ("this is the mapping shipped with the connector; copy it next to the config, set [shop] "
                        "mapping to the copy and restart, then edit it here")
        except (OSError, ValueError):
            continue
    if not os.access(path.parent, os.W_OK):
        return f"the connector cannot write to {path.parent} (the folder of the mapping file)"
    return None


def _write_atomically(path: Path, data: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o640
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(path: Path, text: str) -> Mapping:
    """Validate ``text`` and write it to ``path`` atomically; the current file becomes ``<path>.prev``."""
    why = editable(path)
    if why:
        raise MappingEditError(why)
    mapping, problem = validate(text, path)
    if problem is not None:
        raise MappingEditError(problem.message)
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current is not None:
        _write_atomically(previous_path(path), current)
    _write_atomically(path, text)
    return mapping


def undo(path: Path) -> Mapping:
    """Swap the file and its previous version (so undo twice is redo); the previous one must be valid."""
    prev = previous_path(path)
    why = editable(path)
    if why:
        raise MappingEditError(why)
    try:
        old_text = prev.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingEditError("there is no previous version to go back to") from None
    mapping, problem = validate(old_text, path)
    if problem is not None:
        raise MappingEditError(f"the previous version is not valid: {problem.message}")
    current = path.read_text(encoding="utf-8")
    _write_atomically(prev, current)
    _write_atomically(path, old_text)
    return mapping
