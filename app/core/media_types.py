"""What a request's ``Content-Type`` says: its media type, whether that is JSON, its charset.

Why one module: the routes that read JSON themselves (``app.api.body``) and the check
that refuses a body the server would misread (``app.core.body_encoding``) must agree
on what counts as JSON; a second copy of the rule would drift.
"""

from __future__ import annotations

#: The forms the dashboard takes, whose charset is checked as JSON's is.
FORM = "application/x-www-form-urlencoded"
#: How UTF-8 is spelled in a ``charset`` parameter that says UTF-8 (case-insensitive).
UTF8 = frozenset(("utf-8", "utf8"))


def media_type(content_type: str | None) -> str:
    """``"application/json; charset=utf-8"`` -> ``"application/json"``; "" for none."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """FastAPI's rule (strict content type, its default): ``application/json`` or
    ``application/*+json``; a body without a Content-Type is not read as JSON."""
    media = media_type(content_type)
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter, unquoted and lower-cased; None when there is none."""
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').strip().lower()
    return None


#: Methods whose request body no route reads (RFC 9110 gives it no meaning): the body
#: middlewares (``body_timeout``, ``body_encoding``) leave their ``receive`` as it is, so
#: a GET costs one set lookup there.
BODYLESS_METHODS = frozenset(("GET", "HEAD"))
