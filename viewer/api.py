"""JSON API views of the viewer app (one view per operation)."""
