"""Writes and workflows of the reviews app (keyword-only, typed, named <entity>_<action>)."""
