"""Several MALL accounts in one connector (issue 18; docs/accounts.md).

MALL has one API host for every country and tells the country by the ``client_id``: a partner selling on
MALL.cz and MALL.sk has two accounts and one shop. Each ``[accounts.<name>]`` is one account; the single
``[mall] client_id`` is one account named ``default``.

* ``accounts(config)``: the accounts in force, each with its secrets and its own options.
* ``token_account(config)``: which account a webhook token belongs to (the receiver's URL says it).
* ``AccountRouter``: one MallClient per account (its own rate-limit pacing and quota state) behind the
  MallClient methods the engines call. A call about one order goes to the account that owns the order
  (``ledger.accounts``); an order nobody knows yet is asked of each account once and the answer is kept;
  the sweep asks every account for its unconfirmed orders and remembers whose they are.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator

from connector.config import DEFAULT_ACCOUNT, Config
from connector.mall.errors import MallError, MallForbidden, MallNotFound, MallUnauthorized

log = logging.getLogger("mall_connector.accounts")


@dataclass(frozen=True)
class Account:
    name: str
    client_id: str = field(repr=False)
    tokens: tuple[str, ...] = field(default=(), repr=False)
    include_test_orders: bool = False


def is_multi(config: Config) -> bool:
    """True when the config has ``[accounts.*]`` (then ``[mall] client_id`` is not set)."""
    return bool(config.accounts)


def accounts(config: Config) -> list[Account]:
    """The accounts in force: every ``[accounts.<name>]`` in file order, else the one ``default``."""
    if not config.accounts:
        return [Account(DEFAULT_ACCOUNT, config.client_id, tuple(t.get_secret_value() for t in config.receiver.tokens),
                        config.mall.include_test_orders)]
    out = []
    for name, a in config.accounts.items():
        include = config.mall.include_test_orders if a.include_test_orders is None else a.include_test_orders
        out.append(Account(name, a.client_id.get_secret_value(), tuple(t.get_secret_value() for t in a.tokens),
                           include))
    return out


def include_test_by_account(config: Config) -> dict[str, bool]:
    """account -> whether its MALL test orders are synced (its own ``include_test_orders``, else ``[mall]``'s)."""
    return {a.name: a.include_test_orders for a in accounts(config)}


def include_test_of(config: Config, account: str | None) -> bool:
    """The ``include_test_orders`` in force for one account's orders; ``[mall]``'s for an unknown account."""
    a = config.accounts.get(account) if account else None
    if a is None or a.include_test_orders is None:
        return config.mall.include_test_orders
    return a.include_test_orders


def account_names(config: Config) -> list[str]:
    return list(config.accounts) or [DEFAULT_ACCOUNT]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


def token_account(config: Config) -> Callable[[str], str | None]:
    """``(token) -> account name`` for the receiver; None for a token of no account. Compared as digests in
    constant time against every token (the receiver has already checked the token is valid)."""
    table = [(_digest(t), a.name) for a in accounts(config) for t in a.tokens]

    def which(token: str) -> str | None:
        given = _digest(token)
        found = None
        for digest, name in table:
            if hmac.compare_digest(given, digest):
                found = name
        return found

    return which


class AccountRouter:
    """The engines' MALL client when there are several accounts: each call goes to the client of the account
    the order belongs to. Quota and pacing state stay on each account's own MallClient.

    ``clients`` maps account name to MallClient (file order). Methods not listed here are not routed:
    calling one raises AttributeError naming it (a new MallClient method must be taught here first)."""

    def __init__(self, ledger, clients: dict, *, include_test: dict[str, bool] | None = None):
        self.ledger = ledger
        self.clients = dict(clients)
        self.include_test = dict(include_test or {})
        #: Calls to MALL made by lookups (tests and the sync summary count them).
        self.lookups = 0
        #: `sync-once --account`: the sweep lists only this account's unconfirmed orders.
        self.sweep_only: str | None = None

    # -- whose order ------------------------------------------------------------------------------
    def account_of(self, order_id: int) -> str:
        """The account that owns the order: known from the ledger, or found by asking each account once.
        Raises MallNotFound when no account has it (the answer is recorded; nobody re-asks every pass)."""
        return self._owner(order_id)[0]

    def find_account(self, order_id: int) -> str | None:
        """Like ``account_of``, but None when no account has the order (the outbound poll then decides its row
        with ``[shop] mapping``); any other failure (MALL unreachable, an account rejected) is raised."""
        try:
            return self.account_of(order_id)
        except MallNotFound:
            return None

    def _owner(self, order_id: int):
        """(account, the order if a lookup just read it else None)."""
        oid = int(order_id)
        owner = self.ledger.accounts.owner(oid)
        if owner is not None and owner in self.clients:
            return owner, None
        return self._lookup(oid)

    def _lookup(self, oid: int):
        known = self.ledger.accounts.lookup(oid)
        asked = set(known.asked) if known is not None and known.account is None else set()
        rejected: MallError | None = None
        for name, client in self.clients.items():
            if name in asked:
                continue
            self.lookups += 1
            try:
                order = client.get_order(oid)
            except MallNotFound:
                asked.add(name)
                continue
            except (MallUnauthorized, MallForbidden) as e:  # this account cannot answer now: ask the others
                rejected = rejected or e
                continue
            except Exception:
                if asked:
                    with self.ledger.write() as c:
                        self.ledger.accounts.record_not_found(c, oid, asked)
                raise
            with self.ledger.write() as c:
                self.ledger.accounts.record(c, {oid: name}, "lookup")
                self.ledger.accounts.stamp(c)
            log.info("order %s belongs to MALL account %r (looked up)", oid, name, extra={"order_id": oid})
            return name, order
        if known is None or known.asked != frozenset(asked):
            with self.ledger.write() as c:
                self.ledger.accounts.record_not_found(c, oid, asked)
        if rejected is not None:  # not found so far, and an account that MALL rejects is still to be asked
            raise rejected
            log.warning("order %s is in none of the MALL accounts (asked %s)", oid, ", ".join(sorted(asked)),
                        extra={"order_id": oid})
        raise MallNotFound(f"/v1/orders/{oid}", 404,
                           f"order {oid} is in none of the MALL accounts ({', '.join(sorted(asked))})")

    def _client(self, order_id: int):
        return self.clients[self.account_of(order_id)]

    def _remember(self, owners: dict[int, str], source: str) -> None:
        if owners:
            with self.ledger.write() as c:
                self.ledger.accounts.record(c, owners, source)

    # -- the MallClient methods the engines call ------------------------------------------------------
    def get_order(self, order_id: int):
        oid = int(order_id)
        known = self.ledger.accounts.lookup(oid)
        name, order = self._owner(oid)
        if order is not None:
            return order
        order = self.clients[name].get_order(oid)
        if known is None or known.account != name:  # learned from the inbox row (the webhook's token): keep it
            self._remember({oid: name}, "webhook")
        return order

    def update_order(self, order_id: int, update) -> None:
        return self._client(order_id).update_order(order_id, update)

    def update_tracking(self, order_id: int, tracking_number: str, tracking_url: str) -> None:
        return self._client(order_id).update_tracking(order_id, tracking_number, tracking_url)

    def get_consignments(self, order_id: int):
        return self._client(order_id).get_consignments(order_id)

    def set_serial_numbers(self, order_id: int, item_id: str, serial_numbers: list[str]) -> None:
        return self._client(order_id).set_serial_numbers(order_id, item_id, serial_numbers)

    def create_labels(self, labels, **kwargs):
        """One label request goes to one account: a batch naming orders of two accounts is refused."""
        names = {self.account_of(label.order_id) for label in labels}
        if len(names) != 1:
            raise ValueError(f"one label request cannot name orders of several MALL accounts ({', '.join(sorted(names))})")
        return self.clients[names.pop()].create_labels(labels, **kwargs)

    def iter_orders(self, **kwargs) -> Iterator:
        """With ``id=[...]``: each account is asked for its own orders only; ids of no known account are left
        out (the engine then reads them one by one, which looks them up). Without: every account's list."""
        ids = kwargs.pop("id", None)
        if ids is not None:
            owners = self.ledger.accounts.owners(ids)
            for name, client in self.clients.items():
                mine = [i for i in ids if owners.get(int(i)) == name]
                if mine:
                    page = kwargs.get("page_size")
                    yield from client.iter_orders(**{**kwargs, "page_size": min(page or len(mine), len(mine))},
                                                  id=mine)
            return
        for name, client in self.clients.items():
            seen: dict[int, str] = {}
            for item in client.iter_orders(**kwargs):
                seen[int(getattr(item, "id", item))] = name
                yield item
            self._remember(seen, "list")

    def list_by_ids(self, ids: list[int], *, include_test: bool = True):
        """The batched verification read (issue 17), each account asked for its own orders only. An id of no
        known account is left out, so the caller reads it again (which looks it up). Honoured only if every
        account's MALL honoured the id filter."""
        owners = self.ledger.accounts.owners(ids)
        listed: dict = {}
        honoured = True
        for name, client in self.clients.items():
            mine = [i for i in ids if owners.get(int(i)) == name]
            if mine:
                part, ok = client.list_by_ids(mine, include_test=include_test)
                listed.update(part)
                honoured = honoured and ok
        return listed, honoured

    # -- quota (issue 17): each account's own reading ---------------------------------------------
    def quota_readings(self) -> dict:
        """account -> its client's last X-RateLimit reading (None until MALL answered it)."""
        return {name: client.quota_reading() for name, client in self.clients.items()}

    def quota_reading(self):
        """The reading of the account closest to its daily reserve: optional calls (sweeps more often than
        hourly, verification reads, --refresh) wait while any account is in its reserve, since those passes
        serve every account at once. Pushes and confirmations are never held back."""
        readings = [q for q in self.quota_readings().values() if q is not None]
        told = [q for q in readings if q.day_limit and q.day_remaining is not None]
        if told:
            return min(told, key=lambda q: q.day_remaining / q.day_limit)
        return readings[0] if readings else None

    def list_orders(self, **kwargs) -> list:
        return list(self.iter_orders(**kwargs))

    def list_unconfirmed(self, *, include_test: bool = False) -> list:
        """Every account's unconfirmed orders (each with its own include_test_orders), remembered as that
        account's. One account failing does not hide the others' orders; when all fail the first error is raised."""
        out, errors = [], []
        swept = {n: c for n, c in self.clients.items() if self.sweep_only in (None, n)}
        for name, client in swept.items():
            try:
                basics = client.list_unconfirmed(include_test=self.include_test.get(name, include_test))
            except MallError as e:
                log.warning("sweep of MALL account %r failed: %s", name, e)
                errors.append(e)
                continue
            self._remember({b.id: name for b in basics}, "sweep")
            out.extend(basics)
        if errors and len(errors) == len(swept):
            raise errors[0]
        return out

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"AccountRouter does not route MallClient.{name} yet: add it in connector/accounts.py")
