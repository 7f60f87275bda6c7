"""Reads of the inference app (keyword-only, typed, named <entity>_<action>)."""
