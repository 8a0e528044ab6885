"""Serving logic: load and hot-swap model versions; state -> score -> mask -> top-k."""
