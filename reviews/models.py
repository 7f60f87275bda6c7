"""Database models of the reviews app."""
