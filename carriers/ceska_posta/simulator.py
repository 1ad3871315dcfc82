"""A local Česká pošta ParcelHistory: ``GET /services/ParcelHistory/getDataAsJson``, at most 10 numbers
(extra ones dropped, as ČP does), one object per number in request order, state ``-3`` for an unknown number,
dates without a time of day, HTTP 400 without ``idParcel``."""

from __future__ import annotations

from carriers.base import PRAGUE
from carriers.simulator import CarrierSimulator, Response, json_response

STATES = {  # event kind -> (state id, text)
    "accepted": ("21", "Podání zásilky."), "in_transit": ("-B", "Zásilka v přepravě."),
    "at_pickup": ("P2", "Zásilka uložena v Balíkovně."), "attempt": ("82", "Zásilka uložena, adresát nezastižen."),
    "delivered": ("91", "Dodání zásilky."), "returning": ("97", "Vrácení zásilky - uplynula úložní doba."),
    "returned": ("9V", "Doručená odesílateli."),
}


class CeskaPostaSimulator(CarrierSimulator):
    name = "ceska_posta"
    garbage_body = b'[{"id": "DR'

    def api(self, method, path, query, headers, body) -> Response:
        if method != "GET" or path != "/services/ParcelHistory/getDataAsJson":
            return Response(404, b"Not Found", "text/plain")
        raw = dict(query).get("idParcel", "")
        ids = [i.strip().upper() for i in raw.split(";") if i.strip()][:10]
        if not ids:
            return json_response(400, {"error": "idParcel is required"})
        out = []
        for pid in ids:
            events = self.history(pid)
            if not events:
                states = [{"id": "-3", "date": None, "text": "Zásilka tohoto podacího čísla není v evidenci."}]
            else:
                states = []
                for ev in events:
                    sid, text = STATES[ev.kind]
                    states.append({"id": sid, "date": ev.at.astimezone(PRAGUE).date().isoformat(), "text": text,
                                   "postcode": "77072", "postoffice": "Depo Olomouc 72", "idIcon": None,
                                   "publicAccess": 1, "timeDeliveryAttempt": None})
            out.append({"id": pid, "attributes": {"parcelType": pid[:2], "weight": 1.0, "dobirka": 0.0},
                        "states": {"state": states}})
        return json_response(200, out)
