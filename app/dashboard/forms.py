"""What the pages say when a form fails the admin API's own validation, how a form's
typed text is read before it is checked, and how large a form may be."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from app.schemas_catalog import MAX_TEXT

#: The largest body a dashboard request may send (``app.core.body_limit``): its largest
#: form, the Explore page's new item, is ``MAX_TEXT`` characters of at most 12 bytes each
#: once UTF-8 and %-encoded, plus the other fields. Forms are parsed before the session
#: is checked, so this, not ``GENREC_MAX_BODY_BYTES`` (64 MB), bounds what an anonymous
#: client can make the server parse here.
MAX_FORM_BYTES = 12 * MAX_TEXT + 2**16

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


async def large_form(request: Request) -> AsyncIterator[FormData]:
    """The request's form with fields up to ``MAX_FORM_BYTES`` (a dependency, declared
    before the CSRF check, which then reads this parse: Starlette caches it).

    Why: Starlette refuses any one field over 1 MiB with a bare 400, so a text too long
    for the page, but under the body limit, never reached the page's own check and its
    message; the body limit still bounds what is parsed."""
    form = await request.form(max_part_size=MAX_FORM_BYTES)
    try:
        yield form
    finally:
        await form.close()


def form_field(form: FormData, name: str) -> str:
    """A text field of ``form``; "" when it is missing or a file was sent in its place."""
    value = form.get(name, "")
    return "" if isinstance(value, UploadFile) else value
