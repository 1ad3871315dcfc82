"""Where things are, for tests that read the repository's own files (docs, packaging, pyproject.toml)
or the shared MALL fixtures: one place, so a test keeps working wherever it sits in tests/."""

from __future__ import annotations

from pathlib import Path

#: The repository root.
ROOT = Path(__file__).resolve().parents[2]
#: tests/fixtures/: recorded MALL answers and third-party fixtures (tests/fixtures/mall/...).
FIXTURES = ROOT / "tests" / "fixtures"
