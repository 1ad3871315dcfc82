"""Outbox files get outbox_mode and outbox_group whatever the umask; the published file is checked;
planted symlinks never make the connector write outside the outbox."""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adapters.base import HandoffError, MallChange
from adapters.shared.outbox import Outbox

NAME = "changes-20261201T100000Z-000001"
RECORD = [MallChange(1001, "cancelled", "Stornována", "2026-12-01 10:00:00", None, "cancelled on MALL")]


@pytest.fixture
def umask_077():
    old = os.umask(0o077)
    yield
    os.umask(old)


def _other_gid() -> int:
    """A group this process may give files to but which is not its primary group."""
    if os.geteuid() == 0:
        return grp.getgrnam("nogroup").gr_gid if _has_group("nogroup") else 65534
    others = [g for g in os.getgroups() if g != os.getegid()]
    if not others:
        pytest.skip("this user belongs to one group only, so no other group can be tested without root")
    return others[0]


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_default_mode_0640_and_the_folders_group_despite_umask_077(tmp_path, umask_077):
    gid = _other_gid()
    folder = tmp_path / "outbox"
    folder.mkdir()
    os.chown(folder, -1, gid)
    os.chmod(folder, 0o2770)  # setgid folder shared with the shop's import user
    box = Outbox(folder)
    box.stage(NAME, "changes", RECORD)
    assert box.publish(NAME) is True
    st = os.stat(folder / f"{NAME}.csv")
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_gid == gid


def test_folders_group_is_used_without_setgid_too(tmp_path, umask_077):
    gid = _other_gid()
    os.chown(tmp_path, -1, gid)
    os.chmod(tmp_path, 0o0770)  # no setgid bit: files would get our primary group, fchown fixes it
    box = Outbox(tmp_path, mode=0o660)
    box.stage(NAME, "changes", RECORD)
    box.publish(NAME)
    st = os.stat(tmp_path / f"{NAME}.csv")
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, gid)


def test_configured_group_by_gid_wins_over_the_folders(tmp_path, umask_077):
    gid = _other_gid()
    box = Outbox(tmp_path, mode=0o600, group=str(gid))
    box.stage(NAME, "changes", RECORD)
    box.publish(NAME)
    st = os.stat(tmp_path / f"{NAME}.csv")
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o600, gid)


def test_unknown_group_is_a_handoff_error_naming_it(tmp_path):
    with pytest.raises(HandoffError, match="outbox_group 'no-such-group-xyz' does not exist"):
        Outbox(tmp_path, group="no-such-group-xyz").stage(NAME, "changes", RECORD)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_a_group_the_connector_is_not_in_fails_the_handoff_with_what_to_do(open_tmp, request):
    """Real EPERM from fchown: as root the check runs in a child that dropped to nobody."""
    code = textwrap.dedent(f"""
        import os, sys
        from adapters.base import HandoffError, MallChange
        from adapters.shared.outbox import Outbox
        box = Outbox({str(open_tmp / 'box')!r}, group=0)
        try:
            box.stage("x-1", "changes", [MallChange(1, "cancelled", "", "", None, "")])
        except HandoffError as e:
            print(e); sys.exit(3)
        sys.exit(0)
    """)
    box = open_tmp / "box"
    box.mkdir()
    kwargs = {}
    if os.geteuid() == 0:
        os.chown(box, 65534, 65534)
        kwargs = {"user": 65534, "group": 65534, "extra_groups": []}
    elif 0 in os.getgroups():
        pytest.skip("this user is in group 0, so giving a file group 0 is allowed")
    python = sys.executable
    if os.geteuid() == 0:
        python = str(request.getfixturevalue("world_bin") / "python")
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd="/", **kwargs)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "is not a member of it" in r.stdout and "adduser" in r.stdout
    assert [p.name for p in box.iterdir()] == []


def test_mismatch_after_publish_fails_then_the_retry_repairs_it(tmp_path, monkeypatch):
    """A file system that ignores chmod (unit test: fchmod made a no-op) must not count as handed over."""
    real_fchmod = os.fchmod
    monkeypatch.setattr(os, "fchmod", lambda fd, mode: real_fchmod(fd, 0o600))
    box = Outbox(tmp_path, mode=0o640)
    box.stage(NAME, "changes", RECORD)
    with pytest.raises(HandoffError, match="published with mode 0600 instead of 0640"):
        box.publish(NAME)
    monkeypatch.setattr(os, "fchmod", real_fchmod)  # "the folder is fixed"
    assert box.publish(NAME) is False  # already renamed; the check now passes
    assert stat.S_IMODE(os.stat(tmp_path / f"{NAME}.csv").st_mode) == 0o640


def _victims(tmp_path: Path) -> dict[Path, tuple[bytes, int]]:
    out = {}
    for name in ("ledger.db", "config.toml", "authorized_keys"):
        p = tmp_path / "outside" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"precious " + name.encode())
        os.chmod(p, 0o600)
        out[p] = (p.read_bytes(), os.stat(p).st_mode)
    return out


def test_symlinks_planted_at_every_name_change_nothing_outside(tmp_path):
    folder = tmp_path / "outbox"
    folder.mkdir()
    victims = _victims(tmp_path)
    targets = list(victims)
    # Every predictable name the outbox could use for this batch, plus many guesses at the random one.
    planted = [f".{NAME}.csv.tmp", f"{NAME}.csv"] + [f".{NAME}.{i:08d}.new" for i in range(200)]
    for i, n in enumerate(planted):
        os.symlink(targets[i % len(targets)], folder / n)
    box = Outbox(folder)
    box.stage(NAME, "changes", RECORD)
    assert box.publish(NAME) is True  # the rename replaced the link planted at the final name
    final = folder / f"{NAME}.csv"
    assert not final.is_symlink() and final.read_text(encoding="utf-8").startswith("mall_order_id,")
    for p, (data, mode) in victims.items():
        assert p.read_bytes() == data and os.stat(p).st_mode == mode, p


def test_a_link_swapped_in_after_staging_is_refused_and_nothing_outside_changes(tmp_path):
    folder = tmp_path / "outbox"
    folder.mkdir()
    victims = _victims(tmp_path)
    box = Outbox(folder)
    temp = box.stage(NAME, "changes", RECORD)
    os.unlink(temp)
    os.symlink(next(iter(victims)), temp)  # the shop's user swaps the staged file for a link
    with pytest.raises(HandoffError, match="not a regular file"):
        box.publish(NAME)
    for p, (data, mode) in victims.items():
        assert p.read_bytes() == data and os.stat(p).st_mode == mode, p


@pytest.mark.parametrize("adapter", ["generic_csv", "fastcentrik"])
def test_both_adapters_take_outbox_mode_and_group_from_the_config(tmp_path, umask_077, adapter):
    from adapters import make_adapter
    from connector.config import load_config

    gid = _other_gid()
    (tmp_path / "outbox").mkdir()
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(f'[mall]\nclient_id = "cid-12345678"\n[shop]\nadapter = "{adapter}"\n[shop.{adapter}]\n'
                        f'source = "feed.csv"\noutbox = "outbox"\noutbox_mode = "0660"\noutbox_group = {gid}\n')
    shop = make_adapter(load_config(cfg_path, environ={}))
    shop.stage_handoff(NAME, "changes", RECORD)
    assert shop.publish_handoff(NAME) is True
    st = os.stat(tmp_path / "outbox" / f"{NAME}.csv")
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, gid)


@pytest.mark.parametrize("value", ["640", "0o640", "1777", "0044", "rw-r-----", ""])
def test_bad_outbox_mode_is_a_config_error_naming_the_key(tmp_path, value):
    from connector.config import ConfigError, load_config

    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(f'[shop.generic_csv]\noutbox_mode = "{value}"\n')
    if value == "640":  # three octal digits are a valid mode too
        assert load_config(cfg_path, environ={}).shop.generic_csv.outbox_mode == "640"
        return
    with pytest.raises(ConfigError) as e:
        load_config(cfg_path, environ={})
    assert e.value.key == "shop.generic_csv.outbox_mode" and e.value.line == 2
