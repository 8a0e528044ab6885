"""The one error type of the data readers.

Every reader (MovieLens, CSV/Parquet, the interaction log, the downloader)
raises ``DataError`` for input it cannot use, with a message that names the
file (or source), the column and the first offending row, so the CLI and the
retrain worker can show it to a person as is instead of a pandas traceback.
"""

from __future__ import annotations


class DataError(Exception):
    """Input data is missing, malformed or cannot be fetched; the message says which and why."""
