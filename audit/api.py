"""JSON API views of the audit app (one view per operation)."""
