"""A local PPL CPL API: ``POST /login/getAccessToken`` (form, client credentials → a JWT with ``exp``) and
``GET /shipment`` (Bearer; ``Limit``/``Offset`` required, at most 50 ``ShipmentNumbers``; paging headers;
``[]`` for unknown numbers; 401 for a missing, wrong or expired token)."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from urllib.parse import parse_qsl

from carriers.base import PRAGUE
from carriers.simulator import CarrierSimulator, Response, json_response

EVENTS = {  # event kind -> (statusId, code, phase)
    "accepted": (150, "PickedUpFromSender", "InTransport"), "in_transit": (300, "ShipmentInTransport", "InTransport"),
    "attempt": (454, "NotDelivered", "Delivering"), "at_pickup": (410, "DeliveredToPickupPoint", "PickupPoint"),
    "delivered": (450, "Delivered", "Delivered"), "returning": (500, "Returning", "Returning"),
    "returned": (500, "Delivered.BackToSender", "BackToSender"),
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class PplSimulator(CarrierSimulator):
    name = "ppl"
    garbage_body = b'{"shipmentNumber": [}'

    def __init__(self, client_id: str = "ppl-sim-client", client_secret: str = "ppl-sim-secret-0001",
                 token_lifetime_s: int = 1800, **kw):
        super().__init__(**kw)
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime_s = token_lifetime_s
        self.tokens: dict[str, float] = {}  # token -> expiry (unix time)

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def api(self, method, path, query, headers, body) -> Response:
        if method == "POST" and path == "/login/getAccessToken":
            form = dict(parse_qsl(body.decode("utf-8", "replace")))
            ok = (form.get("grant_type") == "client_credentials"
                  and hmac.compare_digest(form.get("client_id", "").encode(), self.client_id.encode())
                  and hmac.compare_digest(form.get("client_secret", "").encode(), self.client_secret.encode()))
            if not ok:
                return json_response(401, {"error": "invalid_client"})
            exp = int(time.time()) + self.token_lifetime_s
            token = ".".join([_b64(b'{"alg":"HS256","typ":"JWT"}'), _b64(json.dumps({"exp": exp}).encode()),
                              _b64(secrets.token_bytes(16))])
            with self._lock:
                self.tokens[token] = exp
            return json_response(200, {"token_type": "Bearer", "access_token": token})
        if method == "GET" and path == "/shipment":
            auth = headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
            with self._lock:
                exp = self.tokens.get(token)
            if exp is None or exp < time.time():
                return json_response(401, {"type": "Unauthorized", "title": "Unauthorized", "status": 401})
            numbers = [v for k, v in query if k == "ShipmentNumbers"]
            q = dict(query)
            if "Limit" not in q or "Offset" not in q:
                return json_response(400, {"errors": {"Limit": ["required"], "Offset": ["required"]}})
            if len(numbers) > 50:
                return json_response(400, {"errors": {"ShipmentNumbers": ["at most 50"]}})
            out = [self._shipment(n) for n in numbers if self.history(n)]
            resp = json_response(200, out)
            resp.headers = {"X-Paging-Total-Items-Count": str(len(out)), "X-Paging-Offset": q["Offset"],
                            "X-Paging-Limit": q["Limit"]}
            return resp
        return json_response(404, {"title": "Not Found"})

    def _shipment(self, number: str) -> dict:
        events = self.history(number) or []
        fmt = lambda dt: dt.astimezone(PRAGUE).strftime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
        feature: dict = {"deliveryToAccessPoint": False}
        back: dict = {}
        out_events = []
        for ev in events:
            sid, code, phase = EVENTS[ev.kind]
            out_events.append({"statusId": sid, "code": code, "phase": phase, "group": code.split(".")[0],
                               "eventDate": fmt(ev.at), "name": code})
            if ev.kind == "delivered":
                feature["delivDate"] = fmt(ev.at)
            if ev.kind == "attempt" and "notDelivDate" not in feature:
                feature["notDelivDate"] = fmt(ev.at)
            if ev.kind == "returned":
                back["backDate"] = fmt(ev.at)
        state = "Delivered" if "delivDate" in feature else ("BackToSender" if back else "Active")
        return {"shipmentNumber": number, "productType": "BUSS", "shipmentState": state,
                "trackAndTrace": {"events": out_events}, "deliveryFeature": feature, "backShipmentFeature": back}
