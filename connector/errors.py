"""Mapping any exception onto a one-line message and a CLI exit code."""

from __future__ import annotations

EXIT_FAILURE = 1


def describe_error(e: BaseException) -> tuple[int, str]:
    """(exit code, one human line) for an exception that reached the CLI."""
    code = getattr(e, "exit_code", EXIT_FAILURE)
    if not isinstance(code, int):
        code = EXIT_FAILURE
    message = str(e) or e.__class__.__name__
    return code, message
