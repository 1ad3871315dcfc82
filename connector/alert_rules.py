"""Every state that needs a human, as ONE table of rules (docs/alerts.md shows the same table).

After each job the daemon builds ``Facts`` and calls ``evaluate``: each rule returns the problems
it sees now; each is observed (raised once, counted as "seen on N polls"); a problem of a rule
that is no longer seen is cleared ("resolved", once); then the Alerter sends its digest when due.

A rule only reads: the ledger (through connector/ledger/alerting.py and needs_action.py), the
config, the mapping in force and what the daemon noticed about MALL's answers. Adding a state is
adding a row to RULES.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from adapters.base import FEED_PROBLEM_KINDS
from connector.ledger import alerting as q
from connector.ledger import needs_action

log = logging.getLogger("mall_connector.alerts")

URGENT_DEADLINE_H = 2.0  # an order due within this many hours goes out at once
DEADLINE_LIMIT_H = 24.0
EXAMPLES = 3  # file:line examples per kind of rejected row


@dataclass
class Facts:
    """What the rules look at. ``mall_rejected`` is 401 or 403 while MALL rejects the account, else None."""

    ledger: object
    config: object
    mapping: object | None = None
    #: issue 18: account -> its own mapping ([accounts.<name>] mapping); its orders are read against it.
    account_mappings: dict = field(default_factory=dict)
    mall_rejected: int | None = None
    rate_limited_for_s: float | None = None
    #: issue 18 (several [accounts.*]): per account, 401/403 while MALL rejects it, and how long it has seen 429s.
    account_rejected: dict[str, int] = field(default_factory=dict)
    account_rate_limited_for_s: dict[str, float] = field(default_factory=dict)
    quota: object | None = None  # issue 17: the MALL client's QuotaReading (connector/mall/quota.py), if any
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    open_keys: set[str] = field(default_factory=set)  # problems open before this evaluation (set by evaluate)


@dataclass(frozen=True)
class Problem:
    """What a rule sees now. A Problem with no title only keeps an open one as it is (the rule could not
    look this time, e.g. the feed was unreadable, so its rejected rows are neither re-counted nor resolved)."""

    key: str
    title: str
    message: str
    urgent: bool = False


def keep(key: str) -> Problem:
    return Problem(key, "", "")


@dataclass(frozen=True)
class Rule:
    """One row of the table. ``key`` is an exact key, or a prefix ending in ':' for one problem per thing."""

    key: str
    state: str  # the state, in plain words
    raised: str  # when it is raised
    resolved: str  # when it is resolved
    urgent: str  # "yes", "no" or when
    check: Callable[[Facts], list[Problem]]
    resolution: str = "The problem has cleared."
    #: Its evidence changes only when the feed is polled: evaluations after other jobs leave it as it is.
    after_poll: bool = False

    def owns(self, key: str) -> bool:
        return key.startswith(self.key) if self.key.endswith(":") else key == self.key


def _key_part(text: str) -> str:
    """A stable key fragment for free text (a status name): readable when short, hashed when long."""
    norm = " ".join(text.split()).casefold()
    return norm if len(norm) <= 100 else hashlib.sha256(norm.encode()).hexdigest()[:32]


# -- the checks --------------------------------------------------------------------------------------
def check_unmapped(f: Facts) -> list[Problem]:
    if f.mapping is None:
        return []
    own = dict(f.account_mappings or {})
    out = _unmapped(f, f.mapping, "", q.unmapped_statuses(f.ledger, f.mapping, not_accounts=tuple(own)))
    for name, mapping in own.items():  # issue 18: an account's orders against its own mapping
        out += _unmapped(f, mapping, name, q.unmapped_statuses(f.ledger, mapping, account=name))
    return out


def _unmapped(f: Facts, mapping, account: str, found) -> list[Problem]:
    out = []
    path = mapping.path
    for u in found:
        ignore_line = "statuses = [" + ", ".join(f'"{x}"' for x in (*mapping.ignored, u.status)) + "]"
        orders = f"{u.orders} order{'s' if u.orders != 1 else ''}"
        whose = f" of account {account}" if account else ""
        out.append(Problem(
            f"unmapped_status:{account + ':' if account else ''}{_key_part(u.status)}",
            f"shop status {u.status!r} is not in the mapping{whose} ({orders})",
            f"{orders} {'have' if u.orders != 1 else 'has'} the shop status {u.status!r} (for example order "
            f"{u.example_order}), which {path} neither maps nor ignores, so they are not synced to MALL.\n"
            f"To leave it alone, make the [ignore] line of {path} read:\n    {ignore_line}\n"
            f"or, to push it to MALL, add under [to_mall]:\n    \"{u.status}\" = \"shipping\"\n"
            f"(the MALL status it means: shipping, shipped, delivered or cancelled). "
            f"Then: systemctl reload mall-connector",
        ))
    return out


def check_feed_rows(f: Facts) -> list[Problem]:
    state = q.read_feed_state(f.ledger)
    if q.feed_failures(f.ledger) > 0:  # nothing was read: keep what the last read said
        return [keep(k) for k in sorted(f.open_keys) if k.startswith("feed_rows:")]
    out = []
    for kind, n in sorted((state.problem_counts or {}).items()):
        examples = [p for p in state.problems if p.get("kind") == kind][:EXAMPLES]
        lines = "\n".join(f"    {p['source']}{':' + str(p['line']) if p.get('line') else ''}: {p['message']}"
                          for p in examples)
        what = FEED_PROBLEM_KINDS.get(kind, kind)
        out.append(Problem(
            f"feed_rows:{kind}",
            f"shop feed: {n} row{'s' if n != 1 else ''} rejected ({what})",
            f"{n} row{'s' if n != 1 else ''} of the shop feed {'were' if n != 1 else 'was'} rejected: {what}. "
            f"Those orders are not synced until the rows are fixed; the rest of the feed counts. "
            f"Examples:\n{lines}",
        ))
    return out


def check_feed_unreadable(f: Facts) -> list[Problem]:
    failures = q.feed_failures(f.ledger)
    state = q.read_feed_state(f.ledger)
    if failures < f.config.shop.unreadable_polls_alert:
        return []
    why = f" The last error: {state.last_error}." if state.last_error else ""
    return [Problem("feed_unreadable", "shop feed unreadable",
                    f"The shop feed could not be read for {failures} polls in a row.{why} Check the feed file or "
                    "URL in [shop]; nothing from the shop reaches MALL meanwhile.", urgent=True)]


def check_feed_unusable(f: Facts) -> list[Problem]:
    state = q.read_feed_state(f.ledger)
    if state.state != q.FEED_UNUSABLE:
        return []
    if q.feed_failures(f.ledger) > 0:  # unreadable now: the last verdict on what was read stands
        return [keep("feed_unusable")]
    return [Problem("feed_unusable", "shop feed unusable",
                    f"The shop feed was read but cannot be used: {state.message}. Nothing from the shop reaches "
                    "MALL until the export is fixed.", urgent=True)]


def check_failed(f: Facts) -> list[Problem]:
    return [Problem(item.alert_key,
                    f"order {item.mall_order_id}: {item.kind} failed" if item.kind == "change"
                    else f"order {item.mall_order_id}: {item.kind} quarantined",
                    f"{item.kind.capitalize()} {item.id} (order {item.mall_order_id}, {item.detail}): {item.reason}. "
                    f"Fix it, then: {item.fix}")
            for item in q.failed_items(f.ledger)]


def check_mall_rejected(f: Facts) -> list[Problem]:
    if f.mall_rejected is None:
        return []
    what = "401 (the client_id is wrong or revoked)" if f.mall_rejected == 401 else \
        "403 (the account may not use this API: disabled, or not approved for it)"
    title = "MALL rejects the account" if f.mall_rejected == 401 else "MALL refuses the account (403)"
    return [Problem("mall_unauthorized", title,
                    f"MALL answers {what}. Check [mall] client_id and the account in the MALL Partner portal. "
                    "Nothing can be synced until it is fixed.", urgent=True)]


def check_deadlines(f: Facts) -> list[Problem]:
    from connector.sync.inbound import order_from_snapshot

    now = f.now if f.now.tzinfo else f.now.replace(tzinfo=timezone.utc)
    out = []
    for item in q.open_deadline_items(f.ledger):
        left_h = None
        if item["snapshot"]:
            try:
                opened = order_from_snapshot(item["snapshot"]).open
            except ValueError:
                opened = None
            if opened is not None:
                left_h = (opened + timedelta(hours=DEADLINE_LIMIT_H) - now).total_seconds() / 3600
        urgent = left_h is not None and left_h <= URGENT_DEADLINE_H
        due = (f"due in {left_h:.1f} h" if left_h is not None and left_h > 0
               else "past MALL's 24-hour limit" if left_h is not None else "close to MALL's 24-hour limit")
        out.append(Problem(f"deadline:{item['mall_order_id']}", f"order {item['mall_order_id']} {due}",
                           f"{item['message']}\nWhen done it clears by itself; or: mall-connector ledger done "
                           f"{item['id']}", urgent=urgent))
    return out


def check_actions(f: Facts) -> list[Problem]:
    out = []
    for item in needs_action.open_items(f.ledger):
        if item.kind == "deadline":
            continue  # its own rule, with the time left
        closes = needs_action.CLOSES_ON.get(item.closes_on or "", needs_action.BY_HAND)
        out.append(Problem(f"action:{item.id}", f"order {item.mall_order_id} needs a human",
                           f"{item.message}\nThis item closes {closes}. When done: mall-connector ledger done "
                           f"{item.id}"))
    return out


def check_handoffs(f: Facts) -> list[Problem]:
    stuck = f.ledger.handoffs.open()
    if not stuck:
        return []
    error = q.last_handoff_error(f.ledger)
    why = f" The last error: {error}." if error else ""
    return [Problem("handoff_failing", "cannot hand MALL orders to the shop",
                    f"{len(stuck)} batch(es) could not be written to the shop outbox (e.g. {stuck[0][1]}).{why} "
                    "Check the outbox folder exists and is writable; the connector retries, and nothing is lost "
                    "meanwhile.")]


def check_rate_limited(f: Facts) -> list[Problem]:
    s = f.rate_limited_for_s
    if s is None or s < f.config.alerts.rate_limit_alert_after_s:
        return []
    return [Problem("rate_limited", "MALL rate limit persists",
                    f"MALL has answered 429 (rate limited) for {int(s)} s. Check the API usage in the MALL Partner "
                    "portal; the connector slows down and keeps trying.")]


def check_account_rejected(f: Facts) -> list[Problem]:
    """issue 18: one problem per MALL account that MALL rejects (the others go on syncing)."""
    out = []
    for account, code in sorted(f.account_rejected.items()):
        what = "401 (the client_id is wrong or revoked)" if code == 401 else \
            "403 (the account may not use this API: disabled, or not approved for it)"
        out.append(Problem(f"mall_unauthorized:{account}", f"MALL rejects account {account!r}",
                           f"MALL answers {what} for account {account!r}. Check [accounts.{account}] client_id and "
                           "the account in its MALL Partner portal.", urgent=True))
    return out


def check_account_rate_limited(f: Facts) -> list[Problem]:
    return [Problem(f"rate_limited:{account}", f"MALL rate limit persists for account {account!r}",
                    f"MALL has answered 429 (rate limited) to account {account!r} for {int(s)} s. Check its API usage "
                    "in the MALL Partner portal; the connector slows down and keeps trying.")
            for account, s in sorted(f.account_rate_limited_for_s.items())
            if s >= f.config.alerts.rate_limit_alert_after_s]
def check_quota_reserve(f: Facts) -> list[Problem]:
    """issue 17: the daily budget is in the reserve: optional calls wait, pushes and confirmations go on."""
    q, share = f.quota, f.config.mall.reserve_share
    day_limit, left = getattr(q, "day_limit", None), getattr(q, "day_remaining", None)
    if day_limit is None or left is None:
        return [keep("mall_quota_reserve")] if "mall_quota_reserve" in f.open_keys else []
    if share <= 0 or left >= share * day_limit:
        return []
    return [Problem("mall_quota_reserve", "MALL daily call budget in the reserve",
                    f"MALL's daily call budget is nearly spent: {left} of {day_limit} calls left today (below "
                    f"[mall] reserve_share = {share:g}). Pushes and confirmations go on; sweeps more often than "
                    "hourly, verification reads and `orders list --refresh` wait until the budget recovers. See "
                    "`mall-connector stats` for what used it.")]


def check_carrier_auth(f: Facts) -> list[Problem]:
    """Issue 15: a carrier refusing our credentials means its parcels' deliveries never reach MALL."""
    return [Problem(f"carrier_auth:{carrier}", f"carrier {carrier} refuses the credentials",
                    f"The {carrier} tracking API refuses the connector's credentials, so {n} parcel(s) cannot be "
                    f"tracked and their delivery does not reach MALL (MALL pays only for delivered orders). Check "
                    f"[carriers.{carrier}] (or env MALL_CARRIER_{str(carrier).upper()}_…); `mall-connector check` "
                    "shows what is set.")
            for carrier, n in sorted(f.ledger.parcels.auth_refused_per_carrier().items())]


#: THE table: every state that needs a human. docs/alerts.md shows the same rows (a test compares them).
RULES: tuple[Rule, ...] = (
    Rule("unmapped_status:", "an unmapped shop status",
         "orders have a shop status the mapping neither maps nor ignores; per status: how many orders, one "
         "example, the exact line to add to the mapping file",
         "no order has it any more, or the mapping (reloaded) maps or ignores it", "no", check_unmapped,
         "The shop status is mapped or ignored now (or no order has it).", after_poll=True),
    Rule("feed_rows:", "rows rejected from the feed",
         "the last read of the feed rejected rows; per kind of problem, with file:line examples",
         "a read of the feed has no rejected row of that kind", "no", check_feed_rows,
         "The shop feed has no rejected rows of this kind any more.", after_poll=True),
    Rule("feed_unreadable", "the feed is unreadable",
         "the feed could not be read (missing file, permissions, HTTP error, refused XML) for [shop] "
         "unreadable_polls_alert polls in a row", "the feed is read again", "yes", check_feed_unreadable,
         "The shop feed is readable again.", after_poll=True),
    Rule("feed_unusable", "the feed is unusable",
         "the feed was read but a required column is missing, or it has no order rows while the previous "
         "read had some", "a read of the feed is usable again", "yes", check_feed_unusable,
         "The shop feed is usable again.", after_poll=True),
    Rule("change_failed:", "a change failed, or an item was quarantined",
         "a change gave up (state failed), or an item (inbox id, change, hand-off, confirmation) was set aside "
         "after failing again and again; one problem per item (read through ledger/alerting.py failed_items)",
         "it is retried successfully, skipped or released by hand", "no", check_failed,
         "It is no longer failed."),
    Rule("mall_unauthorized", "MALL answered 401 or 403", "MALL rejects the client_id or the account",
         "MALL answers a call successfully again", "yes", check_mall_rejected, "MALL accepts the account again."),
    Rule("deadline:", "an order is close to MALL's 24-hour limit",
         "an order is still open on MALL [sync] confirm_deadline_warn_h hours after it opened",
         "the order moves (on MALL, or a shop change on its way) or the item is done by hand",
         "when due within 2 hours", check_deadlines, "The order has moved on."),
    Rule("action:", "a needs-action item", "a human must do something in the shop (credit note, cancel after "
         "shipped, a MALL-side change the shop cannot apply itself, a new pickup branch)",
         "the item closes by itself (see ledger list --needs-action) or `ledger done`", "no", check_actions,
         "The needs-action item is closed."),
    Rule("handoff_failing", "a hand-off cannot be written",
         "a batch of orders or changes could not be written to the shop's outbox",
         "every batch is written", "no", check_handoffs, "The shop outbox is writable again."),
    Rule("rate_limited", "MALL keeps rate-limiting",
         "MALL has answered 429 for [alerts] rate_limit_alert_after_s", "a call succeeds without 429", "no",
         check_rate_limited, "MALL no longer rate-limits the connector."),
    Rule("mall_unauthorized:", "MALL answered 401 or 403 to one account (several [accounts.*])",
         "MALL rejects the client_id of that account", "MALL answers that account successfully again", "yes",
         check_account_rejected, "MALL accepts the account again."),
    Rule("rate_limited:", "MALL keeps rate-limiting one account (several [accounts.*])",
         "MALL has answered 429 to that account for [alerts] rate_limit_alert_after_s",
         "a call of that account succeeds without 429", "no", check_account_rate_limited,
         "MALL no longer rate-limits the account."),
    Rule("mall_quota_reserve", "MALL's daily call budget is in the reserve",
         "the daily budget left (X-RateLimit-Remaining of the day window) is below [mall] reserve_share of the "
         "daily limit: optional calls wait", "the budget is above the reserve again (e.g. the day window reset)",
         "no", check_quota_reserve, "MALL's daily call budget is out of the reserve."),
    Rule("carrier_auth:", "a carrier refuses the credentials",
         "a carrier's tracking API answers that the connector's [carriers.<name>] credentials are wrong",
         "the carrier accepts them again", "no", check_carrier_auth, "The carrier accepts the credentials again."),
)


def evaluate(alerter, facts: Facts, *, seen: bool = True, rules: tuple[Rule, ...] = RULES) -> None:
    """Observe what every rule sees now, clear what it no longer sees, then send the digest when due.

    ``seen``: this evaluation follows a poll of the feed (it counts as one more poll that saw each problem,
    and the feed's rules look; after other jobs they leave their problems as they are). A rule that fails
    is logged and skipped: one broken check must not silence the others (its open problems stay open
    rather than being reported resolved). One ledger transaction records what every rule saw."""
    facts.open_keys = alerter.open_keys()
    if facts.mapping is not None:
        try:
            needs_action.close_by_evidence(facts.ledger, facts.mapping)
        except Exception:  # noqa: BLE001 - alerting must go on
            log.exception("could not close needs-action items by evidence")
    seen_now: list[tuple[str, str, str, bool]] = []
    gone: list[tuple[str, str]] = []
    for rule in rules:
        if rule.after_poll and not seen:
            continue
        try:
            problems = rule.check(facts)
        except Exception:  # noqa: BLE001
            log.exception("alert rule %s failed", rule.key)
            continue
        kept = {p.key for p in problems}
        seen_now += [(p.key, p.title, p.message, p.urgent) for p in problems if p.title]
        gone += [(k, rule.resolution) for k in sorted(facts.open_keys) if rule.owns(k) and k not in kept]
    alerter.observe_many(seen_now, seen=seen)
    for key, resolution in gone:
        alerter.clear(key, resolution)
    alerter.flush()
