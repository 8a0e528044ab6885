"""``python -m app.cli``: the ``genrec`` command without the installed console script."""

from app.cli import app

app()
