"""Česká pošta's public ``GET /services/ParcelHistory/getDataAsJson?idParcel=A;B&language=cz``.

Up to 10 numbers joined with ``;`` (more are silently dropped by ČP); a JSON array, one object per number in
request order. State ids (ČP's "Stav zásilky" table): 91 delivered, 9V delivered back to the sender
(returned), 95–9E on the way back, 82 stored at the post office / P2 deposited in Balíkovna (the first
delivery attempt), -3 not in ČP's records, -4 not shown. **Dates only**: ČP gives no time of day here, so
results carry ``date_only`` and the delivery job places them (see connector/sync/delivery.py).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Sequence

from carriers.base import PRAGUE, CarrierError, CarrierSettings, TrackResult, Tracker

DELIVERED, RETURNED = "91", "9V"
ATTEMPT = ("82", "P2")
NOT_FOUND = ("-3", "-4")


class CeskaPostaSettings(CarrierSettings):
    base_url: str = "https://b2c.cpost.cz"


class CeskaPostaTracker(Tracker):
    name = "ceska_posta"
    title = "Česká pošta"
    aliases = ("ceska posta", "česká pošta", "ceska_posta", "cp", "čp", "balikovna", "balíkovna", "cpost")
    number_re = re.compile(r"^[A-Z]{2}(\d{10}[A-Z]|\d{9}[A-Z]{2})$", re.IGNORECASE)
    batch_size = 10
    settings_model = CeskaPostaSettings
    simulator = "carriers.ceska_posta.simulator:CeskaPostaSimulator"

    def track(self, numbers: Sequence[str]) -> dict[str, TrackResult | CarrierError]:
        numbers = list(numbers)[: self.batch_size]
        ids = [self.normalize(n) for n in numbers]
        resp = self.request("GET", "/services/ParcelHistory/getDataAsJson",
                            params={"idParcel": ";".join(ids), "language": "cz"})
        if resp.status_code != 200:
            raise CarrierError(self.name, "server", f"ParcelHistory answered {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise CarrierError(self.name, "garbage", "the answer is not JSON") from None
        if not isinstance(data, list):
            raise CarrierError(self.name, "garbage", "the answer is not a JSON array")
        out: dict[str, TrackResult | CarrierError] = {}
        for i, number in enumerate(numbers):
            item = data[i] if i < len(data) else None
            if not isinstance(item, dict) or str(item.get("id", ids[i])).upper() != ids[i]:
                out[number] = CarrierError(self.name, "garbage", f"no entry for parcel {ids[i]} in the answer")
                continue
            out[number] = self._parse(number, item)
        return out

    def _parse(self, number: str, item: dict) -> TrackResult | CarrierError:
        states = (item.get("states") or {}).get("state") if isinstance(item.get("states"), dict) else None
        if isinstance(states, dict):
            states = [states]
        if not isinstance(states, list) or not states:
            return CarrierError(self.name, "garbage", f"parcel {number}: no states")
        seen: list[tuple[date, str]] = []
        for st in states:
            if not isinstance(st, dict):
                return CarrierError(self.name, "garbage", f"parcel {number}: a state is not an object")
            sid = str(st.get("id") or "")
            if sid in NOT_FOUND:
                return TrackResult(number, "not_found", detail=f"ČP {sid} {str(st.get('text') or '')[:80]}".strip())
            try:
                day = date.fromisoformat(str(st.get("date")))
            except ValueError:
                return CarrierError(self.name, "garbage", f"parcel {number}: unreadable date")
            seen.append((day, sid))
        midnight = lambda d: datetime(d.year, d.month, d.day, tzinfo=PRAGUE)  # noqa: E731
        attempts = sorted(d for d, sid in seen if sid in ATTEMPT)
        first = midnight(attempts[0]) if attempts else None
        # The highest state reached, not the last listed: designation records (BG…) can follow 91.
        delivered = sorted(d for d, sid in seen if sid == DELIVERED)
        if delivered:
            return TrackResult(number, "delivered", delivered_at=midnight(delivered[0]), first_attempt=first,
                               date_only=True, detail="ČP 91 Dodání zásilky")
        if any(sid == RETURNED for _, sid in seen):
            return TrackResult(number, "returned", detail="ČP 9V Doručená odesílateli")
        last = max(seen)[1]
        return TrackResult(number, "in_transit", first_attempt=first, date_only=True, detail=f"ČP {last}")
