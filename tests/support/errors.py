"""One error of every MALL client class, for the error-policy tables (tests/unit/connector/test_policy.py and the
MALL Delivery rows in tests/integration/mdp/test_mdp_policy.py); the messages say what the endpoint would say."""

from __future__ import annotations

from connector.mall import errors as e


def mall_errors(endpoint: str, *, not_found: str, invalid: str, transport: str, bad: str) -> dict[str, Exception]:
    """Row name → error, in the order of the tables: 401, 403, 404, 400, 429, 5xx, transport, bad, unknown,
    mall-other (a MallError of no subclass)."""
    return {
        "401": e.MallUnauthorized(endpoint, 401, "bad key"),
        "403": e.MallForbidden(endpoint, 403, "not allowed"),
        "404": e.MallNotFound(endpoint, 404, not_found),
        "400": e.MallValidationError(endpoint, 400, invalid),
        "429": e.MallRateLimited(endpoint, 429, "slow down", reset_s=7),
        "5xx": e.MallServerError(endpoint, 503, "down"),
        "transport": e.MallTransportError(endpoint, 0, transport),
        "bad": e.MallBadResponse(endpoint, 200, bad),
        "unknown": e.MallOutcomeUnknown(endpoint, 0, "connection dropped after sending"),
        "mall-other": e.MallError(endpoint, 418, "teapot"),
    }
