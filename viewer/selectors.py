"""Reads of the viewer app (keyword-only, typed, named <entity>_<action>)."""
