"""Database models of the inference app."""
