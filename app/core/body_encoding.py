"""A request body the server would misread is a 415 saying what to send.

Why: no route decodes a content coding or a charset. A JSON body sent with
``Content-Encoding: gzip`` (or ``deflate``, ``br``) was read as if it were plain, and
answered as unreadable JSON (a 400 "not UTF-8", or a 422 about its syntax), which sends
the client looking for a fault in its JSON; ``Content-Type: application/json;
charset=latin-1`` was decoded as UTF-8, so non-ASCII text was a 400, and Latin-1 bytes
that happen to be valid UTF-8 (``Ã©``) would have been stored as other characters; a
UTF-16 body was decoded by ``json``'s guess. RFC 8259 has JSON between systems in UTF-8,
and the dashboard's forms are UTF-8 as browsers send them, so:

- a ``Content-Encoding`` other than ``identity`` is a 415 naming it, with
  ``Accept-Encoding: identity`` (RFC 9110 15.5.16: what the server would take);
- a ``charset`` other than UTF-8 (``utf-8``, ``utf8``, any case, quoted or not) on JSON
  or on a form (``application/x-www-form-urlencoded``) is a 415 saying the body must be
  UTF-8. A multipart form names a charset per part, which Starlette decodes; it is left
  alone. A body labelled neither JSON nor a form is the route's to refuse (the 415 of
  ``app.core.errors`` for a body not labelled JSON).

How: the headers are checked when the request has a method with a body, and when one
of them is wrong, the app's first ``receive`` raises the 415, an ``HTTPException`` that
the app's error handlers answer (the API: ``{"error": "unsupported_media_type", ...}``;
the dashboard: its error page or fragment), as ``app.core.body_limit`` refuses a
streamed body. So only a route that reads its body refuses it: a DELETE or a GET that
sent one answers as it would have, and no byte of a refused body is read (a client
waiting on ``Expect: 100-continue`` is answered before it sends any).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.media_types import BODYLESS_METHODS, FORM, UTF8, charset, is_json, media_type
from app.core.text import clip

#: The stable error code of the answer (``app.core.errors`` maps a 415 to it).
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"


class UnreadableBody(HTTPException):
    """Raised from ``receive``: a body in an encoding the server does not decode."""

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(415, message, headers=headers)


class BodyEncodingMiddleware:
    """Refuses, when the route reads it, a body compressed or in another charset than
    UTF-8."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        refusal = unreadable(scope["headers"])
        if refusal is None:
            await self.app(scope, receive, send)
            return

        async def refused() -> Message:
            raise refusal

        await self.app(scope, refused, send)


def unreadable(headers: list[tuple[bytes, bytes]]) -> UnreadableBody | None:
    """Why a body with these headers would be misread, as the 415 to raise; None if it
    would not be."""
    content_type = None
    for name, value in headers:
        if name == b"content-encoding":
            codings = value.decode("latin-1")
            if any(c.strip().lower() not in ("", "identity") for c in codings.split(",")):
                return UnreadableBody(
                    f"body: Content-Encoding is '{clip(codings)}'; this server reads request "
                    "bodies as sent, not compressed: send the body without Content-Encoding "
                    "(or as identity)",
                    headers={"Accept-Encoding": "identity"},
                )
        elif name == b"content-type":
            content_type = value.decode("latin-1")
    declared = charset(content_type)
    if declared is None or declared in UTF8:
        return None
    if is_json(content_type):
        what = "JSON"
    elif media_type(content_type) == FORM:
        what = "forms"
    else:
        return None
    return UnreadableBody(
        f"body: Content-Type is '{clip(content_type or '')}': {what} must be UTF-8; send it as UTF-8, "
        "with charset=utf-8 or no charset"
    )
