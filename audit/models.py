"""Database models of the audit app."""
