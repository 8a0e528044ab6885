"""A/B experiments: definitions in the database, assignment of users to variants on
the request path, and their results (counts, always-valid statistics)."""
