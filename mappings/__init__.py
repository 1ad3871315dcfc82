"""Default status mapping files shipped with the package (data only)."""

from pathlib import Path

MAPPINGS_DIR = Path(__file__).resolve().parent


def default_mapping_path(adapter: str) -> Path:
    """The shipped mapping file for an adapter name (``generic_csv`` or ``fastcentrik``)."""
    return MAPPINGS_DIR / f"{adapter}.toml"
