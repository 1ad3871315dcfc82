"""Fixtures for tests that run parts of the connector as other (unprivileged) users."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import runtime


@pytest.fixture
def open_tmp():
    """A temp folder other users can traverse (pytest's tmp_path lives under a 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix="mall-connector-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def world_bin():
    """bin/ of a venv any user can run (python, mall-connector); see tests/support/runtime.py."""
    path = Path(tempfile.mkdtemp(prefix="mall-connector-rt-"))
    try:
        yield runtime.build(path)
    except RuntimeError as e:
        pytest.skip(str(e))
    finally:
        shutil.rmtree(path, ignore_errors=True)
