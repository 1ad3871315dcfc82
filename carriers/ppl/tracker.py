"""PPL's CPL API: ``POST /login/getAccessToken`` (client credentials) then
``GET /shipment?ShipmentNumbers=…&Limit=…&Offset=0`` with ``Authorization: Bearer``.

Delivered: an event in phase ``Delivered`` whose code is not ``Delivered.BackToSender``, or
``shipmentState`` ``Delivered``; the time is ``deliveryFeature.delivDate``, else that event's ``eventDate``.
Returned: phase ``BackToSender``, code ``Delivered.BackToSender`` or ``backShipmentFeature.backDate``.
First attempt: ``deliveryFeature.notDelivDate``, else the first ``NotDelivered`` / pickup-point event.
Times without an offset are Europe/Prague (docs/reference/carriers.md §PPL lists what stays uncertain).
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Sequence

from pydantic import SecretStr

from carriers.base import CarrierError, CarrierSettings, TrackResult, Tracker, parse_carrier_time

PICKUP_CODES = ("DeliveredToPickupPoint", "Delivered.Parcelshop")


class PplSettings(CarrierSettings):
    base_url: str = "https://api.dhl.com/ecs/ppl/myapi2"
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None


class PplTracker(Tracker):
    name = "ppl"
    title = "PPL CZ"
    aliases = ("ppl", "ppl cz", "ppl parcel", "dhl ppl")
    number_re = re.compile(r"^\d{11}$")
    batch_size = 50
    settings_model = PplSettings
    simulator = "carriers.ppl.simulator:PplSimulator"
    secret_keys = ("client_id", "client_secret")

    def __init__(self, settings, **kw):
        super().__init__(settings, **kw)
        self._token: str | None = None
        self._token_until = 0.0

    @classmethod
    def normalize(cls, number: str) -> str:
        return number.strip().replace(" ", "")  # digits kept as text: leading zeros matter

    def _access_token(self, *, renew: bool = False) -> str:
        s = self.settings
        if s.client_id is None or s.client_secret is None:
            raise CarrierError(self.name, "auth", "no client_id/client_secret: set them in [carriers.ppl] or env "
                                                  "MALL_CARRIER_PPL_CLIENT_ID / MALL_CARRIER_PPL_CLIENT_SECRET")
        if self._token and not renew and time.monotonic() < self._token_until:
            return self._token
        resp = self.request("POST", "/login/getAccessToken", data={
            "grant_type": "client_credentials", "client_id": s.client_id.get_secret_value(),
            "client_secret": s.client_secret.get_secret_value(), "scope": "myapi2"})
        if resp.status_code in (400, 401, 403):
            raise CarrierError(self.name, "auth", f"PPL refused the client credentials ({resp.status_code})")
        try:
            data = resp.json()
            token = data["access_token"]
            assert isinstance(token, str) and token
        except (ValueError, KeyError, TypeError, AssertionError):
            raise CarrierError(self.name, "garbage", "the token answer has no access_token") from None
        lifetime = _lifetime_s(data, token)
        self._token, self._token_until = token, time.monotonic() + max(0.0, lifetime - 40)  # renew 40 s early
        return token

    def track(self, numbers: Sequence[str]) -> dict[str, TrackResult | CarrierError]:
        numbers = list(numbers)[: self.batch_size]
        wanted = {self.normalize(n): n for n in numbers}
        params = [("ShipmentNumbers", n) for n in wanted] + [("Limit", str(len(wanted))), ("Offset", "0")]
        resp = None
        for renew in (False, True):
            token = self._access_token(renew=renew)
            resp = self.request("GET", "/shipment", params=params, headers={"Authorization": f"Bearer {token}"})
            if resp.status_code != 401:
                break
        if resp.status_code in (401, 403):
            raise CarrierError(self.name, "auth", f"PPL refused the access token ({resp.status_code})")
        if resp.status_code != 200:
            raise CarrierError(self.name, "server", f"/shipment answered {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise CarrierError(self.name, "garbage", "the answer is not JSON") from None
        if not isinstance(data, list):
            raise CarrierError(self.name, "garbage", "the answer is not a JSON array of shipments")
        out: dict[str, TrackResult | CarrierError] = {}
        for item in data:
            if not isinstance(item, dict) or str(item.get("shipmentNumber")) not in wanted:
                continue  # match by number, never by position
            original = wanted[str(item["shipmentNumber"])]
            out[original] = self._parse(original, item)
        for number in numbers:
            out.setdefault(number, TrackResult(number, "not_found", detail="PPL: not in the answer"))
        return out

    def _parse(self, number: str, item: dict) -> TrackResult | CarrierError:
        try:
            events = (item.get("trackAndTrace") or {}).get("events") or []
            feature = item.get("deliveryFeature") or {}
            back = item.get("backShipmentFeature") or {}
            parsed = sorted(((parse_carrier_time(e.get("eventDate"), carrier=self.name), str(e.get("code") or ""),
                              str(e.get("phase") or "")) for e in events), key=lambda e: e[0])
            first = None
            if feature.get("notDelivDate"):
                first = parse_carrier_time(feature["notDelivDate"], carrier=self.name)
            else:
                tries = [w for w, code, phase in parsed if code.startswith("NotDelivered") or code in PICKUP_CODES]
                first = tries[0] if tries else None
            if back.get("backDate") or any(p == "BackToSender" or c == "Delivered.BackToSender" for _, c, p in parsed):
                return TrackResult(number, "returned", detail="PPL BackToSender")
            delivered = [w for w, c, p in parsed if p == "Delivered" and c not in PICKUP_CODES]
            if feature.get("delivDate") and (delivered or item.get("shipmentState") == "Delivered"):
                when = parse_carrier_time(feature["delivDate"], carrier=self.name)
                return TrackResult(number, "delivered", delivered_at=when, first_attempt=first, detail="PPL Delivered")
            if delivered:
                return TrackResult(number, "delivered", delivered_at=delivered[0], first_attempt=first,
                                   detail="PPL Delivered")
        except CarrierError as e:
            return e
        except (AttributeError, TypeError):
            return CarrierError(self.name, "garbage", f"shipment {number}: unexpected shape")
        last = parsed[-1][1] if parsed else str(item.get("shipmentState") or "")
        return TrackResult(number, "in_transit", first_attempt=first, detail=f"PPL {last}"[:80])


def _lifetime_s(data: dict, token: str) -> float:
    """Seconds the token lives: ``expires_in``, else the JWT's ``exp`` (as PPL's own plugin reads it), else 30 min."""
    if isinstance(data.get("expires_in"), (int, float)):
        return float(data["expires_in"])
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - time.time()
    except (IndexError, ValueError, KeyError, TypeError):
        return 1800.0
