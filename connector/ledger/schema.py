"""Ledger tables (SQLAlchemy Core). Portable SQL: nothing SQLite-only outside engine set-up.

The ledger is the connector's memory: what each order looks like on both sides, every change
with its deterministic key and state, the webhook inbox, outbox hand-offs, needs-action items
and alert state. All durable state lives here (no pickled scheduler jobs).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

orders = Table(
    "orders",
    metadata,
    Column("mall_order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("shop_order_id", String(64)),
    # What MALL says (from our last read or our own successful PUT).
    Column("mall_status", String(16)),
    Column("mall_confirmed", Boolean),
    Column("mall_read_at", DateTime),
    Column("mdp", Boolean, nullable=False, default=False),
    Column("test", Boolean, nullable=False, default=False),
    Column("purchase_id", BigInteger),
    Column("customer", String(200)),
    Column("delivery_method", String(64)),
    Column("branch_id", BigInteger),
    Column("ship_date", String(10)),
    Column("mall_delivered_at", String(19)),  # MALL local time "YYYY-MM-DD HH:MM:SS", sortable
    Column("snapshot", Text),  # the full order JSON from the last GET
    # What the shop says (last row seen in the feed).
    Column("shop_status", String(100)),
    Column("shop_fingerprint", String(64)),
    Column("shop_seen_at", DateTime),
    Column("shop_tracking_number", String(100)),
    Column("shop_tracking_url", String(500)),
    Column("shop_carrier", String(100)),
    Column("shop_location", String(100)),
    # What the shop was handed (inbound).
    Column("handed_at", DateTime),
    Column("handed_status", String(16)),
    Column("handed_branch_id", BigInteger),
    Column("needs_confirm", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_orders_mall_status", "mall_status"),
    Index("ix_orders_mall_delivered_at", "mall_delivered_at"),
    Index("ix_orders_needs_confirm", "needs_confirm"),
)

changes = Table(
    "changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(120), nullable=False, unique=True),
    Column("mall_order_id", BigInteger, ForeignKey("orders.mall_order_id"), nullable=False),
    Column("origin", String(8), nullable=False),  # "shop" (outbound) | "mall" (inbound)
    Column("kind", String(16), nullable=False),  # "status" | "new_order" | "branch"
    Column("shop_status", String(100)),
    Column("target_status", String(16)),
    Column("payload", Text),  # JSON: tracking, dates, note
    Column("state", String(10), nullable=False),  # pending sending retry done skipped failed
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime),
    Column("last_error", Text),
    Column("handoff_id", Integer, ForeignKey("handoffs.id")),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("done_at", DateTime),
    Index("ix_changes_state_next", "state", "next_attempt_at"),
    Index("ix_changes_order", "mall_order_id"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("mall_order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("source", String(16), nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime),
    Column("last_error", Text),
    Index("ix_inbox_next", "next_attempt_at"),
)

handoffs = Table(
    "handoffs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(80), nullable=False, unique=True),
    Column("kind", String(10), nullable=False),  # "orders" | "changes"
    Column("state", String(10), nullable=False),  # sending staged done
    Column("created_at", DateTime, nullable=False),
    Column("done_at", DateTime),
    Index("ix_handoffs_state", "state"),
)

actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(120), nullable=False, unique=True),
    Column("mall_order_id", BigInteger),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("done_at", DateTime),
    Column("done_note", Text),
    Column("alerted_at", DateTime),
    # issue 14 (migration 0004): how the item closes by itself (see connector/ledger/needs_action.py), and
    # who closed it: "hand" (ledger done) or "itself" (the evidence appeared).
    Column("closes_on", String(32)),
    Column("closed_by", String(8)),
    Index("ix_actions_done", "done_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mall_order_id", BigInteger, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_events_order", "mall_order_id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("state", String(10), nullable=False),  # open | resolved
    Column("message", Text, nullable=False),
    Column("first_at", DateTime, nullable=False),
    Column("last_sent_at", DateTime),
    Column("resolved_at", DateTime),
    Column("count", Integer, nullable=False, default=1),
    # issue 14 (migration 0004): urgent problems skip the digest; last_seen_at is the latest evaluation that
    # saw the problem (``count`` is how many evaluations, i.e. polls, saw it).
    Column("urgent", Boolean, nullable=False, default=False),
    Column("last_seen_at", DateTime),
    # Resolved problems stay (a restart must not re-announce them): the digest and the rules read by state.
    Index("ix_alerts_state_last_sent_at", "state", "last_sent_at"),
)

kv = Table(
    "kv",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text),
    Column("updated_at", DateTime, nullable=False),
)


# -- 0002: per-item containment and quarantine (typed outcomes instead of text prefixes) ---------
# Appended, not edited into the tables above, so the first release's definitions stay as they were.
# The policy outcome of an item's last failure (connector/sync/policy.py), the error's class, and
# whether MALL refused a PUT outright (then it certainly did not apply it).
changes.append_column(Column("error_class", String(80)))
changes.append_column(Column("outcome", String(10)))
changes.append_column(Column("refused", Boolean))
# An inbox id that keeps failing is quarantined (state failed) instead of blocking the queue.
inbox.append_column(Column("state", String(10), nullable=False, default="waiting", server_default="waiting"))
inbox.append_column(Column("error_class", String(80)))
inbox.append_column(Column("reason", Text))
# A hand-off batch that keeps failing: its attempts, backoff and, once failed, where it stood.
handoffs.append_column(Column("attempts", Integer, nullable=False, default=0, server_default="0"))
handoffs.append_column(Column("next_attempt_at", DateTime))
handoffs.append_column(Column("error_class", String(80)))
handoffs.append_column(Column("last_error", Text))
handoffs.append_column(Column("reason", Text))
handoffs.append_column(Column("resume_state", String(10)))

# A confirmation (PUT confirmed: true) that failed: one row per order while it is retried or quarantined;
# removed when the order is confirmed. Orders waiting for their first try have none (orders.needs_confirm).
confirms = Table(
    "confirms",
    metadata,
    Column("mall_order_id", BigInteger, ForeignKey("orders.mall_order_id"), primary_key=True, autoincrement=False),
    Column("state", String(10), nullable=False),  # retry | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime),
    Column("error_class", String(80)),
    Column("last_error", Text),
    Column("reason", Text),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_confirms_state", "state"),
)

# -- carriers (issue 15): one row per shipped order whose delivery the connector watches -------------
parcels = Table(
    "parcels",
    metadata,
    Column("mall_order_id", BigInteger, ForeignKey("orders.mall_order_id"), primary_key=True, autoincrement=False),
    Column("tracking_number", String(100)),
    Column("feed_carrier", String(100)),  # the shop feed's carrier column, as written
    Column("carrier", String(32)),  # the tracker chosen (registry name); null = none fits
    Column("carrier_by", String(16)),  # how it was chosen: feed | delivery_method | number; "none" = nothing fits
    # The shop's own delivery dates (MALL local time "YYYY-MM-DD HH:MM:SS").
    Column("shop_delivered_at", String(19)),
    Column("shop_first_attempt", String(19)),
    # What the carrier reported (MALL local time), and whether it gave a date only.
    Column("carrier_outcome", String(16)),  # delivered | returned | in_transit | not_found
    Column("carrier_delivered_at", String(19)),
    Column("carrier_first_attempt", String(19)),
    Column("carrier_date_only", Boolean, nullable=False, default=False),
    Column("carrier_detail", String(200)),
    Column("shipped_at", String(19)),  # MALL's `shipped` datetime (Prague local)
    # open: watched; delivered: the delivered change exists; returned; expired (max_age_days); mall (MALL moved it on)
    Column("state", String(12), nullable=False),
    Column("polls", Integer, nullable=False, default=0),  # calls to the carrier about this parcel
    Column("failures", Integer, nullable=False, default=0),  # failed calls in a row
    Column("next_poll_at", DateTime),
    Column("last_polled_at", DateTime),
    Column("last_error", Text),
    Column("refused", Text),  # why a reported delivery time was not used (future, before shipped)
    Column("change_id", Integer),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_parcels_state_next", "state", "next_poll_at"),
)


# -- MALL Delivery labels and serial numbers (issue 21; queries in connector/ledger/labels.py) --------------------

mdp_parcels = Table(
    "mdp_parcels",
    metadata,
    Column("mall_order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("parcel_count", Integer, nullable=False),  # the shop feed's parcel_count (1 when it has none)
    Column("seen_at", DateTime, nullable=False),
)

mdp_labels = Table(
    "mdp_labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mall_order_id", BigInteger, nullable=False),
    Column("parcel_count", Integer, nullable=False),
    # pending (to ask) | sending (asked, answer not recorded) | done | refused (never asked: a rule) | failed
    Column("state", String(10), nullable=False),
    Column("batch", String(40)),  # one POST /v1/orders/labels: the orders asked for together
    Column("labels_type", String(3)),
    Column("barcodes", Text),  # JSON list
    Column("file", Text),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_mdp_labels_order", "mall_order_id"),
    Index("ix_mdp_labels_state", "state"),
)

mdp_serials = Table(
    "mdp_serials",
    metadata,
    Column("mall_order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("item_id", String(100), primary_key=True),
    Column("wanted", Text, nullable=False),  # JSON list from the shop's serials source
    Column("sent", Text),  # JSON list MALL accepted last
    Column("state", String(10), nullable=False),  # pending | done | failed
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", DateTime, nullable=False),
)


# Who did what in the admin console (and the ledger commands that steer changes): every action, with its
# actor and time, shown on the order's history. Never holds a secret (passwords and tokens are not actions).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("actor", String(64), nullable=False),  # console user name, or "cli:<unix user>"
    Column("role", String(16)),  # viewer | operator | admin (console), empty for the CLI
    Column("source", String(16), nullable=False),  # console | cli
    Column("action", String(32), nullable=False),  # login, login_failed, retry, skip, done, mapping_save, ...
    Column("mall_order_id", BigInteger),
    Column("target", String(200)),  # "change 42", "item 7", a mapping file, an export
    Column("detail", Text),
    Index("ix_audit_log_order", "mall_order_id"),
    Index("ix_audit_log_at", "at"),
)


# -- issue 18: several MALL accounts (migration 0009; queries in connector/ledger/accounts.py) --------------------
# Every row about an order carries the MALL account it belongs to. A ledger of one account (the single
# [mall] client_id) keeps everything in "default"; so does a row whose account is not known yet (an order
# first seen in the shop feed), until its account is learned and ``ledger.accounts.stamp`` fills it in.
DEFAULT_ACCOUNT = "default"
ACCOUNT_TABLES = (orders, changes, inbox, actions, events, confirms, parcels, mdp_parcels, mdp_labels, mdp_serials,
                  audit_log)
for _table in ACCOUNT_TABLES:
    _table.append_column(Column("account", Text, nullable=False, default=DEFAULT_ACCOUNT,
                                server_default=DEFAULT_ACCOUNT))
    Index(f"ix_{_table.name}_account", _table.c.account)
del _table

# Which account owns each MALL order id the connector learned about: from the webhook's token, the account's
# sweep, or a lookup (an order the shop's feed names and the ledger never saw is asked of each account once).
# account NULL: every account in ``asked`` answered 404; a newly configured account is still asked.
order_accounts = Table(
    "order_accounts",
    metadata,
    Column("mall_order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("account", Text),
    Column("source", String(16), nullable=False),  # webhook | sweep | lookup | list
    Column("asked", Text),  # the accounts a lookup asked, comma-separated
    Column("updated_at", DateTime, nullable=False),
    Index("ix_order_accounts_account", "account"),
)


# Replicas on one PostgreSQL ledger (issue 18, docs/scaling.md): who leads the singleton jobs (sweep,
# housekeeping, alerts) and until when. A leader renews its row; a SIGKILLed one stops renewing and
# another replica takes the row once it expires. Times are the database server's UTC clock.
leases = Table(
    "leases",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("holder", String(64), nullable=False),  # the replica: host, pid and a random instance id
    Column("acquired_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)


# -- issue 17 (quota): confirmations to verify, and MALL calls per day and kind -------------------------
# An order confirmed without a re-read (MALL may have changed it between the connector's read and its PUT) is
# checked once by a batched list read (connector/sync/inbound.py::InboundSync.verify); the row goes when it is.
verifications = Table(
    "verifications",
    metadata,
    Column("mall_order_id", BigInteger, ForeignKey("orders.mall_order_id"), primary_key=True, autoincrement=False),
    Column("account", Text, nullable=False, default="default", server_default="default"),
    Column("confirmed_at", DateTime, nullable=False),
    Index("ix_verifications_confirmed_at", "confirmed_at"),
)

# MALL API calls per day (in [shop] timezone) and kind (push, confirm, read, sweep, list, verify, ...), for
# `mall-connector stats`: added to in the transactions the engines write anyway, never one commit per call.
mall_calls = Table(
    "mall_calls",
    metadata,
    Column("account", Text, nullable=False, default="default", server_default="default", primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD
    Column("kind", String(16), primary_key=True),
    Column("calls", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),  # answers >= 400 and calls without an answer
)
