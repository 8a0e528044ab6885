"""What the pages say when a form fails the admin API's own validation, and how a form's
typed text is read before it is checked."""

from __future__ import annotations

import re

from pydantic import ValidationError

_LINE_BREAK = re.compile(r"\r\n?")


def validation_problem(exc: ValidationError) -> str:
    """One line per error, ``field.path: message``, as the API's 422 body lists them."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'request'}: {error['msg']}"
        for error in exc.errors()
    )


def form_text(value: str) -> str:
    """A ``<textarea>``'s text with LF line breaks.

    Why: the browser's ``maxlength`` counts a line break as one character, but a form
    submission sends every line break as CRLF (two), so a text the field allowed would
    be refused by a length check on what arrived. Checking (and using) the text with LF
    line breaks measures what the operator saw, and stores what the JSON API would."""
    return _LINE_BREAK.sub("\n", value)
