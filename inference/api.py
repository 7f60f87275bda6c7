"""JSON API views of the inference app (one view per operation)."""
