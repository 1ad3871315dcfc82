"""`mall-connector check` lines for delivery tracking (issue 15): which carriers are asked, with which
credentials present, and how many carrier calls were made (in all and at most for one parcel, against
``[carriers] max_calls_per_parcel``)."""

from __future__ import annotations

from connector.checks import BAD, NA, OK, Line
from connector.config import Config
from connector.logs import redact


def check_carriers(config: Config) -> list[Line]:
    from carriers import registry

    cfg = config.carriers
    known = registry()
    lines: list[Line] = []
    active = cfg.active()
    if not active:
        lines.append(Line(NA, "carrier tracking is off (no [carriers.<name>] table, or [carriers] enabled = false); "
                              "delivery dates from the shop feed are still pushed"))
    for name, settings in active.items():
        cls = known[name]
        missing = [k for k in cls.secret_keys if getattr(settings, k, None) is None]
        if missing:
            env = ", ".join(f"MALL_CARRIER_{name.upper()}_{k.upper()}" for k in missing)
            lines.append(Line(BAD, f"carrier {name} ({cls.title}): no {', '.join(missing)}; set it in "
                                   f"[carriers.{name}] or env {env}"))
        else:
            creds = f"credentials set ({', '.join(cls.secret_keys)})" if cls.secret_keys else "needs no credentials"
            lines.append(Line(OK, f"carrier {name} ({cls.title}): {redact(settings.base_url)}, {creds}, "
                                  f"at most {cls.batch_size} number(s) per call, {settings.min_interval_s:g} s between calls"))
    for method, name in cfg.delivery_methods.items():
        if name not in active:
            lines.append(Line(BAD, f"[carriers] delivery_methods maps {method!r} to {name}, which has no "
                                   f"[carriers.{name}] table: those parcels are not tracked"))
    lines.append(_calls_line(config))
    return lines


def _calls_line(config: Config) -> Line:
    """Carrier calls so far, from an existing, migrated ledger; `check` never creates or migrates one."""
    from connector.ledger import open_ledger
    from connector.ledger.db import current_revision, head_revision
    from connector.ledger.location import sqlite_path

    path = sqlite_path(config.ledger.url)
    if path is not None and not path.exists():
        return Line(OK, "delivery tracking: no ledger yet, so no carrier calls so far")
    ledger = open_ledger(config.ledger.url, migrate_schema=False)
    try:
        if current_revision(ledger.engine) != head_revision():
            return Line(OK, "delivery tracking: carrier calls are counted once the service has migrated the ledger")
        stats = ledger.parcels.call_stats()
    finally:
        ledger.close()
    cap = config.carriers.max_calls_per_parcel
    per_state = stats["per_state"]
    watched = per_state.get("open", 0)
    per_carrier = ", ".join(f"{k} {v}" for k, v in sorted(stats["per_carrier"].items())) or "none"
    text = (f"delivery tracking: {watched} parcel(s) watched, {per_state.get('delivered', 0)} delivered; "
            f"{stats['calls']} carrier call(s) so far ({per_carrier}); most for one parcel "
            f"{stats['most_calls_one_parcel']} of at most {cap} ([carriers] max_calls_per_parcel)")
    return Line(OK if stats["most_calls_one_parcel"] <= cap else BAD, text)


class ParcelGauges:
    """Prometheus collector (issue 15): parcels watched per state and the most carrier calls made about one
    parcel, read from the ledger at scrape time (``max_calls_per_parcel`` bounds the second)."""

    def __init__(self, metrics) -> None:
        self.metrics = metrics

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        ledger = self.metrics.ledger
        if ledger is None:
            return
        try:
            stats = ledger.parcels.call_stats()
        except Exception:  # noqa: BLE001 - a scrape never fails because of the ledger
            return
        g = GaugeMetricFamily("mall_connector_parcels", "Parcels whose delivery the connector watches, by state.",
                              labels=["state"])
        for state in ("open", "delivered", "returned", "expired", "mall"):
            g.add_metric([state], float(stats["per_state"].get(state, 0)))
        yield g
        yield GaugeMetricFamily("mall_connector_carrier_calls_max_per_parcel",
                                "The most carrier calls made about one parcel.", value=float(stats["most_calls_one_parcel"]))
