"""Issue 16 items 2 (exports and the ledger) and 3: symlink-safe creation and private modes.

A local user who can write the export folder plants symlinks at every name the connector could use
(the output name and a large set of temp names); nothing outside the folder changes, and the export
lands as a regular file. The ledger is created 0600 whatever the umask, and so are its -wal/-shm files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from connector.exports.common import write_atomically
from connector.ledger import open_ledger
from connector.safety import create_exclusive, ensure_private_file, formula_safe, write_replacing


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim" / "ledger.db"
    v.parent.mkdir()
    v.write_bytes(b"precious ledger")
    os.chmod(v, 0o600)
    return v


def snapshot(p: Path) -> tuple:
    st = os.stat(p)
    return p.read_bytes(), stat.S_IMODE(st.st_mode), st.st_ino


def test_planted_symlinks_at_every_name_change_nothing_outside(tmp_path, victim, monkeypatch):
    shared = tmp_path / "exports"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp, or a folder the shop's user can write
    target = shared / "picking.csv"
    target.symlink_to(victim)  # the final name itself
    # Temp names: mkstemp's are random, so plant links at the names it will try first, by fixing its RNG.
    import tempfile

    class FixedNames:
        def __init__(self):
            self.n = 0

        def __iter__(self):
            return self

        def __next__(self):
            self.n += 1
            return f"guess{self.n:04d}"

    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: FixedNames())
    for n in range(1, 123):  # the 122 links of the finding
        (shared / f".picking.csv.guess{n:04d}.tmp").symlink_to(victim)
    before = snapshot(victim)

    write_atomically(target, lambda f: f.write(b"mall_order_id;title\n1;x\n"))

    assert snapshot(victim) == before
    assert not target.is_symlink() and target.is_file()
    assert target.read_bytes() == b"mall_order_id;title\n1;x\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    links = [p for p in shared.iterdir() if p.is_symlink()]
    assert len(links) == 122  # the planted links are still there, untouched, and none was used
    assert all(os.readlink(p) == str(victim) for p in links)


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "billing.xlsx"

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_replacing(target, boom)
    assert list(tmp_path.iterdir()) == []


def test_create_exclusive_refuses_a_planted_symlink_and_sets_the_mode(tmp_path, victim):
    link = tmp_path / "new.csv"
    link.symlink_to(victim)
    with pytest.raises(FileExistsError):
        create_exclusive(link)
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(FileExistsError):
        create_exclusive(dangling)
    assert not (tmp_path / "would-be-created").exists()
    old = os.umask(0o000)
    try:
        fd = create_exclusive(tmp_path / "fresh", 0o640)
        os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "fresh").st_mode) == 0o640


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002])
def test_the_ledger_is_0600_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        led = open_ledger("sqlite:///" + str(tmp_path / "ledger.db"))
        with led.write() as c:
            led.kv.set(c, "k", "v")  # writes: the -wal and -shm files exist now
        files = sorted(p.name for p in tmp_path.iterdir())
        modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in tmp_path.iterdir()}
        led.close()
    finally:
        os.umask(old)
    assert files == ["ledger.db", "ledger.db-shm", "ledger.db-wal"]
    assert modes == {name: 0o600 for name in files}


def test_an_existing_ledger_keeps_its_admins_mode(tmp_path):
    p = tmp_path / "ledger.db"
    led = open_ledger("sqlite:///" + str(p))
    led.close()
    os.chmod(p, 0o640)
    assert ensure_private_file(p) is False
    led = open_ledger("sqlite:///" + str(p))
    led.close()
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640


@pytest.mark.parametrize("value,expected", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+SUM(1)", "'+SUM(1)"), ("-2+3", "'-2+3"), ("@cmd", "'@cmd"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("+420 777 123 456", "+420 777 123 456"), ("-15", "-15"), ("Nováková", "Nováková"), ("a=b", "a=b"),
    (None, ""), ("", ""),
])
def test_formula_safe_table(value, expected):
    assert formula_safe(value) == expected


def test_the_outbox_uses_the_one_formula_guard():
    """Issue 16 item 1: one function neutralises cells everywhere; the outbox's name for it is that function."""
    from adapters.shared.outbox import safe_cell

    assert safe_cell is formula_safe
