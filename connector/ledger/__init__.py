"""The SQLite ledger: what has been seen, decided and sent. See repo.Ledger."""

from connector.ledger.db import LedgerError
from connector.ledger.repo import Ledger, open_ledger

__all__ = ["Ledger", "LedgerError", "open_ledger"]
