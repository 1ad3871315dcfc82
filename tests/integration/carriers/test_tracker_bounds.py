"""Every answer from a carrier is bounded: size, shape; a tracker names no secret in its errors."""

from __future__ import annotations

import pytest

from carriers.base import MAX_RESPONSE_BYTES, CarrierError
from carriers.ceska_posta.simulator import CeskaPostaSimulator
from carriers.ceska_posta.tracker import CeskaPostaSettings, CeskaPostaTracker
from carriers.packeta.simulator import PacketaSimulator
from carriers.packeta.tracker import PacketaSettings, PacketaTracker
from carriers.simulator import Response

pytestmark = pytest.mark.e2e

BOUNDS_API_SECRET = "bounds-packeta-password-77"


def test_an_oversized_answer_is_garbage_not_memory():
    class Huge(CeskaPostaSimulator):
        def api(self, *a):
            return Response(200, b"[" + b" " * (MAX_RESPONSE_BYTES + 10) + b"]")

    with Huge() as sim:
        t = CeskaPostaTracker(CeskaPostaSettings(base_url=sim.url, min_interval_s=0))
        with pytest.raises(CarrierError) as e:
            t.track(["DR0000000001C"])
        t.close()
    assert e.value.kind == "garbage" and "larger than" in str(e.value)


@pytest.mark.parametrize("body", [b"{}", b'[{"id": "X"}]', b"[1, 2]", b'[{"id": "DR0000000001C", "states": {"state": "x"}}]'])
def test_unexpected_json_shapes_are_contained(body):
    class Odd(CeskaPostaSimulator):
        def api(self, *a):
            return Response(200, body)

    with Odd() as sim:
        t = CeskaPostaTracker(CeskaPostaSettings(base_url=sim.url, min_interval_s=0))
        try:
            out = t.track(["DR0000000001C"])
            assert isinstance(out["DR0000000001C"], CarrierError)
        except CarrierError as e:
            assert e.kind == "garbage"
        finally:
            t.close()


def test_xml_bombs_and_wrong_roots_are_garbage_and_errors_name_no_secret():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            b"<response><status>&b;</status></response>")
    for body in (bomb, b"<html/>", b"not xml"):
        class Bad(PacketaSimulator):
            def api(self, *a, _body=body):
                return Response(200, _body, "text/xml")

        with Bad(api_password=BOUNDS_API_SECRET) as sim:
            t = PacketaTracker(PacketaSettings(base_url=sim.url, api_password=BOUNDS_API_SECRET, min_interval_s=0))
            with pytest.raises(CarrierError) as e:
                t.track(["Z1234567890"])
            t.close()
        assert e.value.kind == "garbage" and BOUNDS_API_SECRET not in str(e.value)
