"""Mapping any exception that reaches the CLI onto one human line and an exit code."""

from __future__ import annotations

EXIT_FAILURE = 1


def describe_error(e: BaseException) -> tuple[int, str]:
    """(exit code, one human line) for an exception that reached the CLI."""
    from connector.ledger.db import LedgerError
    from connector.mall.errors import MallError, MallTransportError, MallUnauthorized

    code = getattr(e, "exit_code", EXIT_FAILURE)
    if not isinstance(code, int):
        code = EXIT_FAILURE
    message = str(e) or e.__class__.__name__
    if isinstance(e, MallUnauthorized):
        message = (f"MALL rejected the client_id (401): check [mall] client_id (the API key from the MALL Partner "
                   f"portal, Company profile → Information). {message}")
    elif isinstance(e, MallTransportError):
        message = f"cannot reach MALL (check [mall] base_url and the network): {message}"
    elif isinstance(e, MallError):
        message = f"MALL call failed: {message}"
    elif isinstance(e, LedgerError):
        message = f"ledger: {message}"
    elif isinstance(e, OSError):
        message = f"{e.strerror or message}{': ' + str(e.filename) if e.filename else ''}"
    return code, message
