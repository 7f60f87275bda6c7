"""Database models of the viewer app."""
