"""The delivery method's name for people (issue 14: `orders list` shows it where MALL's data has one).

MALL's order carries only a code (``delivery_method``: ``"pplCz"``, ``"29"``) and ``delivery_method_id``.
A name comes from the order itself when MALL sends one (any of NAME_FIELDS, kept as extra fields of
the stored order), else from the MALL Delivery codes MALL documents (docs/reference: mall-api.md §7,
knowledge-base "tipy pro aktivaci MALL Doprava"); otherwise the code is shown as it is.
"""

from __future__ import annotations

#: Fields a MALL order may carry with the delivery's name (not in the documented API; read when present).
NAME_FIELDS = ("delivery_method_name", "delivery_name", "transport_name")

#: MALL Delivery carrier codes with the names MALL's knowledge base gives them (CZ and SK).
MALL_DELIVERY_NAMES = {
    "29": "MALL Delivery: Intime (to the address)",
    "20": "MALL Delivery: MALL Shop pickup point",
    "21": "MALL Delivery: MALL Point pickup point",
    "32": "MALL Delivery SK: DPD (to the address)",
    "119": "MALL Delivery SK: MALL Shop pickup point",
    "49": "MALL Delivery SK: Uloženka DPD Pickup",
    "125": "MALL Delivery SK: DEPO",
}


def delivery_label(order, code: str | None) -> str | None:
    """``"name (code)"`` when a name is known, else the code (None when there is neither)."""
    extra = getattr(order, "model_extra", None) or {}
    name = next((str(extra[f]).strip() for f in NAME_FIELDS if isinstance(extra.get(f), str) and extra[f].strip()),
                None)
    code = code or (getattr(order, "delivery_method", None) if order is not None else None)
    if name is None and code is not None and getattr(order, "mdp", False):
        name = MALL_DELIVERY_NAMES.get(str(code).strip())
    if name is None:
        return code
    return f"{name} ({code})" if code and code not in name else name
