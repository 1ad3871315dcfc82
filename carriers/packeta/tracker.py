"""Packeta's ``packetTracking`` over its REST/XML API: one packet id per call, the API password in the body.

Codes (Packeta's own WooCommerce/PrestaShop modules, see docs/reference/carriers.md §Packeta): 7 delivered,
10 returned to the sender, 5 ready for pickup at the point and 16 an unsuccessful home-delivery attempt (both
the MALL ``first_delivery_attempt``), 9 on the way back. Times carry no offset: Europe/Prague.
"""

from __future__ import annotations

import re
from typing import Sequence
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET
from pydantic import SecretStr

from carriers.base import CarrierError, CarrierSettings, TrackResult, Tracker, parse_carrier_time

DELIVERED, RETURNED, POSTED_BACK = 7, 10, 9
ATTEMPT_CODES = (5, 16)  # ready for pickup / unsuccessful delivery attempt


class PacketaSettings(CarrierSettings):
    base_url: str = "https://www.zasilkovna.cz"
    api_password: SecretStr | None = None


class PacketaTracker(Tracker):
    name = "packeta"
    title = "Packeta / Zásilkovna"
    aliases = ("packeta", "zasilkovna", "zásilkovna", "zasielkovna", "zásielkovňa")
    number_re = re.compile(r"^(Z\d{10,}|\d{10})$", re.IGNORECASE)  # Z + packet id, or the bare 10-digit id
    batch_size = 1  # the WSDL has no multi-packet tracking operation
    settings_model = PacketaSettings
    simulator = "carriers.packeta.simulator:PacketaSimulator"
    secret_keys = ("api_password",)

    @classmethod
    def normalize(cls, number: str) -> str:
        n = number.strip().replace(" ", "").upper()
        return n[1:] if n.startswith("Z") else n  # the API wants the packet id; the barcode is Z + id

    def track(self, numbers: Sequence[str]) -> dict[str, TrackResult | CarrierError]:
        password = self.settings.api_password
        if password is None:
            raise CarrierError(self.name, "auth", "no api_password: set [carriers.packeta] api_password or env "
                                                  "MALL_CARRIER_PACKETA_API_PASSWORD")
        out: dict[str, TrackResult | CarrierError] = {}
        for number in numbers:
            req = Element("packetTracking")
            SubElement(req, "apiPassword").text = password.get_secret_value()
            SubElement(req, "packetId").text = self.normalize(number)
            resp = self.request("POST", "/api/rest", content=tostring(req, encoding="utf-8"),
                                headers={"Content-Type": "text/xml; charset=utf-8"})
            out[number] = self._parse(number, resp.content)
        return out

    def _parse(self, number: str, body: bytes) -> TrackResult | CarrierError:
        try:
            root = SafeET.fromstring(body)
        except Exception:  # noqa: BLE001 - any parse failure (incl. refused DTDs) is a garbage answer
            raise CarrierError(self.name, "garbage", "the answer is not Packeta's XML") from None
        if root.tag != "response":
            raise CarrierError(self.name, "garbage", f"unexpected root element <{root.tag[:40]}>")
        status = (root.findtext("status") or "").strip()
        if status == "fault":
            fault = (root.findtext("fault") or "").strip()
            if fault in ("PacketIdFault", "PacketIdsFault"):
                return TrackResult(number, "not_found", detail=f"Packeta {fault}")
            if fault == "IncorrectApiPasswordFault":
                raise CarrierError(self.name, "auth", "Packeta refused the API password (IncorrectApiPasswordFault)")
            raise CarrierError(self.name, "server", f"Packeta fault {fault[:60]!r}")
        if status != "ok":
            raise CarrierError(self.name, "garbage", "the answer has no <status>ok</status>")
        records = []
        for rec in root.iterfind("result/record"):
            try:
                code = int((rec.findtext("statusCode") or "").strip())
            except ValueError:
                return CarrierError(self.name, "garbage", f"packet {number}: a record has no numeric statusCode")
            try:
                when = parse_carrier_time(rec.findtext("dateTime"), carrier=self.name)
            except CarrierError as e:
                return e
            records.append((when, code, (rec.findtext("codeText") or "").strip()))
        if not records:
            return CarrierError(self.name, "garbage", f"packet {number}: no status records")
        records.sort(key=lambda r: r[0])
        attempts = [w for w, c, _ in records if c in ATTEMPT_CODES]
        last = records[-1]
        detail = f"Packeta {last[1]} {last[2]}".strip()
        delivered = [w for w, c, _ in records if c == DELIVERED]
        if delivered:
            return TrackResult(number, "delivered", delivered_at=delivered[0],
                               first_attempt=attempts[0] if attempts else None, detail=f"Packeta {DELIVERED} delivered")
        if any(c == RETURNED for _, c, _ in records):
            return TrackResult(number, "returned", detail=f"Packeta {RETURNED} returned")
        return TrackResult(number, "in_transit", first_attempt=attempts[0] if attempts else None, detail=detail)
