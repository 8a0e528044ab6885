"""What the pages say when a form fails the admin API's own validation."""

from __future__ import annotations

from pydantic import ValidationError


def validation_problem(exc: ValidationError) -> str:
    """One line per error, ``field.path: message``, as the API's 422 body lists them."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'request'}: {error['msg']}"
        for error in exc.errors()
    )
