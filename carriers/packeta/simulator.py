"""A local Packeta: ``POST /api/rest`` with ``packetTracking`` / ``packetStatus`` XML, the API password checked,
``PacketIdFault`` for an unknown packet, always HTTP 200 with the ``<response>`` envelope (as Packeta does)."""

from __future__ import annotations

import hmac
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET

from carriers.base import PRAGUE
from carriers.simulator import CarrierSimulator, Response

CODES = {  # simulator event kind -> (statusCode, codeText)
    "accepted": (1, "received data"), "in_transit": (4, "departed"), "at_pickup": (5, "ready for pickup"),
    "attempt": (16, "delivery attempt"), "delivered": (7, "delivered"), "returning": (9, "posted back"),
    "returned": (10, "returned"),
}


def _xml(root: Element) -> Response:
    return Response(200, b'<?xml version="1.0" encoding="utf-8"?>\n' + tostring(root, encoding="utf-8"),
                    "text/xml; charset=utf-8")


def _fault(name: str, text: str) -> Response:
    root = Element("response")
    SubElement(root, "status").text = "fault"
    SubElement(root, "fault").text = name
    SubElement(root, "string").text = text
    return _xml(root)


class PacketaSimulator(CarrierSimulator):
    name = "packeta"
    garbage_body = b"<response><status>ok</status><result><record><dateTime>yesterday"

    def __init__(self, api_password: str = "packeta-sim-password-0001", **kw):
        super().__init__(**kw)
        self.api_password = api_password

    def key(self, number: str) -> str:
        n = number.strip().upper()
        return n[1:] if n.startswith("Z") else n

    def api(self, method, path, query, headers, body) -> Response:
        if method != "POST" or path != "/api/rest":
            return Response(404, b"Not Found", "text/plain")
        try:
            req = SafeET.fromstring(body)
        except Exception:  # noqa: BLE001
            return _fault("XmlParseFault", "request is not valid XML")
        if req.tag not in ("packetTracking", "packetStatus"):
            return _fault("UnknownMethodFault", f"unknown method {req.tag}")
        given = (req.findtext("apiPassword") or "").encode()
        if not hmac.compare_digest(given, self.api_password.encode()):
            return _fault("IncorrectApiPasswordFault", "Incorrect API password.")
        events = self.history(req.findtext("packetId") or "")
        if not events:
            return _fault("PacketIdFault", "Packet id is not valid.")
        root = Element("response")
        SubElement(root, "status").text = "ok"
        result = SubElement(root, "result")
        shown = events if req.tag == "packetTracking" else events[-1:]
        for ev in shown:
            code, text = CODES[ev.kind]
            rec = SubElement(result, "record")
            SubElement(rec, "dateTime").text = ev.at.astimezone(PRAGUE).strftime("%Y-%m-%dT%H:%M:%S")
            SubElement(rec, "statusCode").text = str(code)
            SubElement(rec, "codeText").text = text
            SubElement(rec, "statusText").text = text
            SubElement(rec, "branchId").text = "4101"
            SubElement(rec, "destinationBranchId").text = "4101"
            SubElement(rec, "externalTrackingCode")
        return _xml(root)
