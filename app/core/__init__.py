"""Cross-cutting service plumbing: settings, database, cache, errors, metrics."""
