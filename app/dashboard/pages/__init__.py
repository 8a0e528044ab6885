"""One router per dashboard page (and the login/logout routes)."""
