"""Detection: Sigma rules compiled to predicates, evaluated at ingest; alerts."""
