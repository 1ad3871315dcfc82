"""Registering the test-only adapter (tests/integration/adapters/toy_shop) through a real entry point.

An installed package's entry points live in its ``*.dist-info/entry_points.txt`` on ``sys.path``;
this writes such a folder under tmp and puts it on ``sys.path``, exactly as ``pip install`` of a
third-party adapter would, so the registry finds it with no file outside tests/ changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from adapters import registry

TOY = "toy_shop"


def install_toy(site: Path) -> Path:
    dist = site / "toy_shop_adapter-0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-shop-adapter\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\n{TOY} = tests.integration.adapters.toy_shop:ADAPTER\n", encoding="utf-8")
    return site


@pytest.fixture
def toy_site(tmp_path_factory):
    """A site folder holding the toy adapter's dist-info, on sys.path for this test only."""
    site = install_toy(tmp_path_factory.mktemp("site"))
    sys.path.insert(0, str(site))
    registry.refresh()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        registry.refresh()
